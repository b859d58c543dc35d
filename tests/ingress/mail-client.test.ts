// Mail client set-up and MTA-STS: the documents are well formed (libxml2's xmllint, a strict parser) and say what
// the protocols ask; the routes answer only for the association's own domains, compared whole, and never write what
// the request carried into their answer (generated hostile Host headers and addresses, fast-check).
import { execFileSync } from 'node:child_process';
import t from 'tap';
import fc from 'fast-check';
import { pino } from 'pino';
import { createInstance } from '../../src/orchestrator/instances.js';
import { setHostnames } from '../../src/ingress/store.js';
import { appleMailProfile, autoconfigXml, escapeXml, nameUuid, type MailSite } from '../../src/ingress/mail-client.js';
import { MTA_STS_MAX_AGE_LIMIT, mtaStsPolicy } from '../../src/ingress/mta-sts.js';
import { createRuntime } from '../../src/runtime.js';
import { testConfig } from '../helpers.js';

/** xmllint's verdict on a document: '' when well formed, its complaint otherwise. */
function xmllint(doc: string, ...args: string[]): string {
  try {
    return execFileSync('xmllint', ['--nonet', ...args, '-'], { input: doc, stdio: ['pipe', 'pipe', 'pipe'] }).toString();
  } catch (err) {
    throw new Error(`xmllint refused the document: ${String((err as { stderr?: Buffer }).stderr ?? err)}\n${doc}`);
  }
}
const xpath = (doc: string, expr: string) => xmllint(doc, '--xpath', expr).replace(/\n$/, '');

const SITE: MailSite = { domain: 'asso.example', host: 'mail.asso.example', ports: { imaps: 993, imap: 143, submissions: 465, submission: 587 } };

t.test('Thunderbird autoconfig: clientConfig 1.1 as the ISPDB writes it', async (t) => {
  const doc = autoconfigXml(SITE);
  xmllint(doc, '--noout');
  t.equal(xpath(doc, 'string(/clientConfig/@version)'), '1.1');
  t.equal(xpath(doc, 'string(/clientConfig/emailProvider/@id)'), 'asso.example');
  t.equal(xpath(doc, 'string(/clientConfig/emailProvider/domain)'), 'asso.example');
  const servers = (kind: string) => [1, 2].map((i) => ['hostname', 'port', 'socketType', 'authentication', 'username']
    .map((f) => xpath(doc, `string(/clientConfig/emailProvider/${kind}[${i}]/${f})`)).join(' '));
  t.same(servers('incomingServer[@type="imap"]'), [
    'mail.asso.example 993 SSL password-cleartext %EMAILADDRESS%', 'mail.asso.example 143 STARTTLS password-cleartext %EMAILADDRESS%']);
  t.same(servers('outgoingServer[@type="smtp"]'), [
    'mail.asso.example 465 SSL password-cleartext %EMAILADDRESS%', 'mail.asso.example 587 STARTTLS password-cleartext %EMAILADDRESS%']);
  t.notMatch(doc, /socketType>plain/, 'never a server without TLS');

  const starttlsOnly = autoconfigXml({ ...SITE, ports: { imap: 20143, submission: 20587 } });
  t.equal(xpath(starttlsOnly, 'count(//incomingServer)'), '1', 'a port the instance does not publish is left out');
  t.equal(xpath(starttlsOnly, 'string(//outgoingServer/port)'), '20587');
  t.throws(() => autoconfigXml({ ...SITE, ports: { imaps: 993 } }), 'no way out: no document');
});

t.test('Apple profile: a well-formed plist with one com.apple.mail.managed payload, no password', async (t) => {
  const doc = appleMailProfile(SITE, { address: 'lea.martin@asso.example', name: 'Léa Martin' });
  xmllint(doc, '--noout');
  t.equal(xpath(doc, 'string(/plist/@version)'), '1.0');
  const top = (key: string) => xpath(doc, `string(/plist/dict/key[.="${key}"]/following-sibling::*[1])`);
  const inner = (key: string) => xpath(doc, `string(/plist/dict/key[.="PayloadContent"]/following-sibling::array[1]/dict/key[.="${key}"]/following-sibling::*[1])`);
  const innerTag = (key: string) => xpath(doc, `name(/plist/dict/key[.="PayloadContent"]/following-sibling::array[1]/dict/key[.="${key}"]/following-sibling::*[1])`);
  t.equal(top('PayloadType'), 'Configuration');
  t.equal(top('PayloadVersion'), '1');
  t.match(top('PayloadUUID'), /^[0-9A-F]{8}-[0-9A-F]{4}-5[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}$/, 'a version 5 UUID');
  t.match(top('PayloadIdentifier'), /^example\.asso\.cattery\.mail\.[0-9a-f]{16}$/);
  t.match(top('PayloadDescription'), /mot de passe/, 'French texts');
  t.equal(xpath(doc, 'count(/plist/dict/key[.="PayloadContent"]/following-sibling::array[1]/dict)'), '1');
  for (const [key, value] of Object.entries({
    PayloadType: 'com.apple.mail.managed', EmailAccountType: 'EmailTypeIMAP', EmailAddress: 'lea.martin@asso.example',
    EmailAccountName: 'Léa Martin', IncomingMailServerHostName: 'mail.asso.example', IncomingMailServerPortNumber: '993',
    IncomingMailServerUsername: 'lea.martin@asso.example', IncomingMailServerAuthentication: 'EmailAuthPassword',
    OutgoingMailServerHostName: 'mail.asso.example', OutgoingMailServerPortNumber: '465',
    OutgoingMailServerUsername: 'lea.martin@asso.example', OutgoingMailServerAuthentication: 'EmailAuthPassword',
  })) t.equal(inner(key), value, key);
  t.equal(innerTag('IncomingMailServerPortNumber'), 'integer');
  t.equal(innerTag('IncomingMailServerUseSSL'), 'true');
  t.equal(innerTag('OutgoingMailServerUseSSL'), 'true');
  t.notMatch(doc, /Password<\/key>\s*<string>/, 'no password inside');
  t.notMatch(doc, /<key>(?:IncomingPassword|OutgoingPassword)<\/key>/, "neither of Apple's password keys");

  const again = appleMailProfile(SITE, { address: 'lea.martin@asso.example', name: 'Léa M.' });
  const other = appleMailProfile(SITE, { address: 'marc@asso.example', name: 'Léa Martin' });
  const ids = (d: string) => d.match(/<key>Payload(?:UUID|Identifier)<\/key>\s*<string>[^<]+/g);
  t.same(ids(again), ids(doc), 'the same address gets the same identifiers (a new download replaces the profile)');
  t.notSame(ids(other), ids(doc), 'another address gets its own');
  t.not(nameUuid('a'), nameUuid('b'));
});

t.test('escaping: whatever a text holds, the documents stay well formed and say it back', async (t) => {
  const decode = (s: string) => s.replace(/&(amp|lt|gt|quot|apos);/g, (_m, e: string) => ({ amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" })[e]!);
  const samples = fc.sample(fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.constantFrom('<&>"\'', ']]>', '\r\n\0\x1b\uFFFE', '\uD800x')), 300);
  const doc = `<?xml version="1.0" encoding="UTF-8"?>\n<r>${samples.map((s) => `<e a="${escapeXml(s)}">${escapeXml(s)}</e>`).join('')}</r>`;
  xmllint(doc, '--noout');
  for (const s of samples) {
    const expected = s.replace(/[^\t\n\r\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu, '\uFFFD');
    if (decode(escapeXml(s)) !== expected) t.fail(`escapeXml does not round-trip ${JSON.stringify(s)}`);
  }
  const hostile = { domain: 'a<b>&"c\'', host: '</hostname><x>', ports: { imap: 1, submission: 2 } };
  xmllint(autoconfigXml(hostile), '--noout');
  xmllint(appleMailProfile(hostile, { address: '<a@b>', name: ']]></string><true/>' }), '--noout');
  t.equal(xpath(appleMailProfile(hostile, { address: 'x', name: ']]></string><true/>' }), 'string(//key[.="EmailAccountName"]/following-sibling::*[1])'), ']]></string><true/>');
});

// RFC 8461 §3.2's ABNF, written out: fields `key: value` (`sts-policy-field-delim = ":" *WSP`), terms LF or CRLF.
const POLICY_FIELD = /^([A-Za-z0-9_]{1,32}):[ \t]*([\x21-\x3a\x3c\x3e-\x7e]{1,1024})[ \t]*$/;
function parsePolicy(text: string): [string, string][] {
  const lines = text.split(/\r?\n/);
  if (lines.at(-1) === '') lines.pop();
  return lines.map((l) => {
    const m = POLICY_FIELD.exec(l);
    if (!m) throw new Error(`not an RFC 8461 field: ${JSON.stringify(l)}`);
    return [m[1]!, m[2]!];
  });
}

t.test('MTA-STS policy: RFC 8461 §3.2 fields, CRLF terms, version first', async (t) => {
  const text = mtaStsPolicy({ mx: ['mail.asso.example', 'MX2.asso.example.', '*.mx.asso.example'], mode: 'enforce', maxAgeSeconds: 604800 });
  t.equal(text, 'version: STSv1\r\nmode: enforce\r\nmx: mail.asso.example\r\nmx: mx2.asso.example\r\nmx: *.mx.asso.example\r\nmax_age: 604800\r\n');
  t.notMatch(text.replace(/\r\n/g, ''), /[\r\n]/, 'no bare CR or LF: every term is CRLF');
  t.throws(() => mtaStsPolicy({ mx: [], mode: 'enforce', maxAgeSeconds: 604800 }), 'enforce needs an mx');
  t.ok(mtaStsPolicy({ mx: [], mode: 'none', maxAgeSeconds: 0 }), 'mode none may list none');
  t.throws(() => mtaStsPolicy({ mx: ['mail.asso.example'], mode: 'enforce', maxAgeSeconds: MTA_STS_MAX_AGE_LIMIT + 1 }), 'over a year');
  t.throws(() => mtaStsPolicy({ mx: ['mail.asso.example'], mode: 'enforce', maxAgeSeconds: 1.5 }));
  t.throws(() => mtaStsPolicy({ mx: ['mail.asso.example'], mode: 'sometimes' as never, maxAgeSeconds: 60 }));
  for (const bad of ['mail.asso.example\r\nmode: none', 'a b.example', '*.*.example', 'mail..example', '*', 'localhost', '-a.example']) {
    t.throws(() => mtaStsPolicy({ mx: [bad], mode: 'enforce', maxAgeSeconds: 60 }), `mx ${JSON.stringify(bad)} refused`);
  }
  const label = fc.stringMatching(/^[a-z0-9](?:[a-z0-9-]{0,10}[a-z0-9])?$/);
  const host = fc.tuple(fc.boolean(), fc.array(label, { minLength: 1, maxLength: 3 }), fc.stringMatching(/^[a-z]{2,6}$/))
    .map(([wild, labels, tld]) => `${wild ? '*.' : ''}${labels.join('.')}.${tld}`);
  fc.assert(fc.property(fc.array(host, { minLength: 1, maxLength: 5 }), fc.constantFrom('enforce', 'testing', 'none') as fc.Arbitrary<'enforce'>,
    fc.integer({ min: 0, max: MTA_STS_MAX_AGE_LIMIT }), (mx, mode, maxAge) => {
      const fields = parsePolicy(mtaStsPolicy({ mx, mode, maxAgeSeconds: maxAge }));
      const one = (k: string) => fields.filter(([f]) => f === k).map(([, v]) => v);
      return fields[0]![0] === 'version' && fields[0]![1] === 'STSv1' && one('mode').join() === mode
        && one('max_age').join() === String(maxAge) && /^\d{1,10}$/.test(one('max_age')[0]!)
        && new Set(one('mx')).size === new Set(mx).size && one('mx').every((m) => mx.includes(m));
    }), { numRuns: 300 });
});

t.test('the routes: only the association\'s domains, whole names, nothing echoed', async (t) => {
  // `ville-asso.example` ends like `asso.example`; `kiosque.example` has a k for the Kelvin sign to imitate;
  // `sans-courriel.example` is the association's but holds no mail instance.
  const DOMAINS = ['asso.example', 'ville-asso.example', 'kiosque.example', 'sans-courriel.example'];
  const config = testConfig(t, { domains: DOMAINS });
  const rt = await createRuntime(config, pino({ level: 'silent' }));
  t.teardown(() => rt.close());
  const deps = { db: rt.db, catalog: rt.catalog, portRange: config.portRange, subnetPool: config.subnetPool };
  const asso = createInstance(deps, { service: 'mail', slug: 'courriel', env: { MAIL_DOMAIN: 'asso.example' }, desired: 'stopped' }, 'test');
  createInstance(deps, { service: 'mail', slug: 'courriel-ville', env: { MAIL_DOMAIN: 'ville-asso.example' }, desired: 'stopped' }, 'test');
  createInstance(deps, { service: 'mail', slug: 'courriel-kiosque', env: { MAIL_DOMAIN: 'kiosque.example' }, desired: 'stopped' }, 'test');
  setHostnames(rt.db, asso.id, ['mx.asso.example', 'mail.asso.example'], DOMAINS);

  const get = (url: string, host: string) => rt.app.inject({ url, headers: { host } });
  const AUTOCONFIG = ['/mail/config-v1.1.xml', '/.well-known/autoconfig/mail/config-v1.1.xml'];
  const MTA_STS = '/.well-known/mta-sts.txt';

  // The right documents, asked the way the clients ask.
  const docs = new Map<string, string>();
  for (const d of DOMAINS.slice(0, 3)) {
    const r = await get(`/mail/config-v1.1.xml?emailaddress=${encodeURIComponent(`lea@${d}`)}`, `autoconfig.${d}`);
    t.equal(r.statusCode, 200, `autoconfig for ${d}`);
    t.match(r.headers['content-type'], /^application\/xml/);
    xmllint(r.body, '--noout');
    t.equal(xpath(r.body, 'string(//emailProvider/@id)'), d);
    t.equal((await get('/.well-known/autoconfig/mail/config-v1.1.xml', d)).body, r.body, 'the .well-known path on the domain itself');
    docs.set(d, r.body);
  }
  t.equal(xpath(docs.get('asso.example')!, 'string(//incomingServer/hostname)'), 'mail.asso.example', 'the instance\'s mail. name');
  t.equal(xpath(docs.get('asso.example')!, 'string(//incomingServer/port)'), String(asso.config.ports.imaps), 'its published port (implicit TLS first, RFC 8314)');
  t.equal(xpath(docs.get('ville-asso.example')!, 'string(//incomingServer/hostname)'), 'mail.ville-asso.example', 'no name yet: mail.<domain>');
  t.equal((await get(AUTOCONFIG[0]!, 'autoconfig.sans-courriel.example')).statusCode, 404, 'a domain without mail: nothing');

  const policies = new Map<string, string>();
  for (const d of DOMAINS.slice(0, 3)) {
    const r = await get(MTA_STS, `mta-sts.${d}`);
    t.equal(r.statusCode, 200, `policy for ${d}`);
    t.match(r.headers['content-type'], /^text\/plain/, 'RFC 8461 §3.3: text/plain');
    t.same(parsePolicy(r.body).filter(([k]) => k !== 'mx').map(([k, v]) => `${k}=${v}`), ['version=STSv1', 'mode=enforce', 'max_age=604800']);
    policies.set(d, r.body);
  }
  t.same(parsePolicy(policies.get('asso.example')!).filter(([k]) => k === 'mx').map(([, v]) => v), ['mail.asso.example'], 'the MX host, as the MX record names it (one function writes the served text and the hashed one)');
  t.same(parsePolicy(policies.get('ville-asso.example')!).filter(([k]) => k === 'mx').map(([, v]) => v), ['mail.ville-asso.example']);
  t.equal((await get(MTA_STS, 'asso.example')).statusCode, 404, 'the policy is served at mta-sts.<domain> only');
  t.equal((await get(MTA_STS, 'autoconfig.asso.example')).statusCode, 404);
  t.equal((await get(MTA_STS, 'mta-sts.sans-courriel.example')).statusCode, 404, 'no mail instance: no policy');
  const notFound = (await get(MTA_STS, 'nowhere.example')).body;
  // The Host decides; X-Forwarded-Host counts only from a proxy CATTERY_TRUST_PROXY names (none here).
  const forwarded = await rt.app.inject({ url: MTA_STS, headers: { host: 'cattery.example', 'x-forwarded-host': 'mta-sts.asso.example' } });
  t.equal(forwarded.statusCode, 404, 'an X-Forwarded-Host from an untrusted client is not believed');

  // Generated requests: a Host that names one of the domains (any case, a port, a final dot) gets that domain's
  // document; anything else gets the same 404 whatever it held, unless the address names one of the domains.
  const pick = fc.constantFrom(...DOMAINS);
  const mixCase = (s: string) => fc.array(fc.boolean(), { minLength: s.length, maxLength: s.length })
    .map((up) => [...s].map((c, i) => (up[i] ? c.toUpperCase() : c)).join(''));
  const dressed = (name: string) => fc.tuple(mixCase(name), fc.option(fc.integer({ min: 0, max: 65535 })), fc.boolean())
    .map(([n, port, dot]) => `${n}${dot ? '.' : ''}${port === null ? '' : `:${port}`}`);
  const junk = fc.oneof(fc.string({ maxLength: 12 }), fc.string({ unit: 'binary', maxLength: 6 }),
    fc.constantFrom('\r\nx-evil: 1', '\n', ' ', '\0', '..', '%2e', '\u212A', 'а', '。', '/', '@', ':99999999', '*', '\u200b'));
  // Look-alikes: a letter swapped for one that lower-cases or looks the same (Kelvin sign, Cyrillic а, Turkish İ).
  const swapped = (d: string, from: string, to: string) => (d.includes(from) ? [d.replace(from, to)] : []);
  const hostile = (d: string, prefix: string) => fc.oneof(
    fc.constantFrom(`${prefix}.${d}.evil.tld`, `evil${d}`, `${prefix}${d}`, `${prefix}-${d}`, `x${prefix}.${d}`, `${prefix}..${d}`,
      `${prefix}.${d}..`, `${d}.`.repeat(2), `.${prefix}.${d}`, `[::1]:443`, '127.0.0.1', '',
      ...[...swapped(d, 'k', '\u212A'), ...swapped(d, 'a', 'а'), ...swapped(d, 'i', 'İ')].map((x) => `${prefix}.${x}`),
      `${prefix}.sub.${d}`, `${prefix === 'mta-sts' ? 'autoconfig' : 'mta-sts'}.${d}`),
    // Junk around the right name; left out: nothing before it and only a final dot or a port after (the right name).
    fc.tuple(junk, junk).filter(([a, b]) => a !== '' || !/^\.?(?::\d{1,5})?$/.test(b)).map(([a, b]) => `${a}${prefix}.${d}${b}`));
  const address = (d: string) => fc.oneof(
    fc.tuple(fc.stringMatching(/^[a-z0-9.]{1,10}$/), mixCase(d)).map(([l, dd]) => ({ value: `${l}@${dd}`, domain: d as string | undefined })),
    fc.constantFrom(`x@${d}.evil.tld`, `x@evil${d}`, `x@${d}:25`, d, `@${d}`, `x@${d}\r\n`, `x@${d} `, `x@sub.${d}`, `x@autoconfig.${d}`)
      .map((value) => ({ value, domain: undefined as string | undefined })),
    fc.tuple(junk, junk).map(([a, b]) => ({ value: `${a}@${b}`, domain: undefined as string | undefined })));
  const request = (prefix: string, bare: boolean) => pick.chain((d) => fc.record({
    host: fc.oneof(
      dressed(`${prefix}.${d}`).map((value) => ({ value, domain: d as string | undefined })),
      ...(bare ? [dressed(d).map((value) => ({ value, domain: d as string | undefined }))] : []),
      hostile(d, prefix).map((value) => ({ value, domain: undefined as string | undefined }))),
    address: fc.option(pick.chain(address), { nil: undefined }),
  }));

  const headerEchoes = (headers: Record<string, unknown>, input: string) =>
    input.length >= 6 && Object.values(headers).some((v) => String(v).includes(input));
  let refusedByHttp = 0;
  const check = async (url: string, host: string, address: string | undefined, expected: string | undefined, documents: Map<string, string>) => {
    const q = address === undefined ? '' : `?emailaddress=${encodeURIComponent(address)}`;
    let r;
    try { r = await get(`${url}${q}`, host); } catch { refusedByHttp++; return true; } // Node's HTTP layer refuses it first
    const want = expected === undefined ? undefined : documents.get(expected);
    if (want === undefined) return r.statusCode === 404 && r.body === notFound && !headerEchoes(r.headers, host);
    return r.statusCode === 200 && r.body === want && !headerEchoes(r.headers, host);
  };
  await fc.assert(fc.asyncProperty(request('autoconfig', true), fc.constantFrom(...AUTOCONFIG), async ({ host, address }, url) =>
    check(url, host.value, address?.value, host.domain ?? address?.domain, docs)), { numRuns: 600 });
  await fc.assert(fc.asyncProperty(request('mta-sts', false), async ({ host, address }) =>
    check(MTA_STS, host.value, address?.value, host.domain, policies)), { numRuns: 400 });
  t.pass(`1000 generated requests (${refusedByHttp} refused by the HTTP layer before any route)`);
});

t.test('behind the front door: its X-Forwarded-Host is believed when CATTERY_TRUST_PROXY names it', async (t) => {
  const config = testConfig(t, { domains: ['asso.example'], trustProxy: ['loopback'] });
  const rt = await createRuntime(config, pino({ level: 'silent' }));
  t.teardown(() => rt.close());
  createInstance({ db: rt.db, catalog: rt.catalog, portRange: config.portRange, subnetPool: config.subnetPool },
    { service: 'mail', slug: 'courriel', env: { MAIL_DOMAIN: 'asso.example' }, desired: 'stopped' }, 'test');
  const ask = (remoteAddress: string) => rt.app.inject({ url: '/.well-known/mta-sts.txt', remoteAddress,
    headers: { host: 'cattery-upstream:8080', 'x-forwarded-host': 'mta-sts.asso.example' } });
  t.equal((await ask('127.0.0.1')).statusCode, 200, 'from the proxy on loopback');
  t.equal((await ask('203.0.113.7')).statusCode, 404, 'from anyone else');
  const plain = await rt.app.inject({ url: '/.well-known/mta-sts.txt', remoteAddress: '127.0.0.1', headers: { host: 'mta-sts.asso.example' } });
  t.equal(plain.statusCode, 200, 'and the original Host passed on as it is (Caddy\'s default)');
});
