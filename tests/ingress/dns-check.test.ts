// The DNS check (ingress/dns-check.ts) against a real DNS server: Knot DNS serving the zone cattery generated, on
// loopback only. All present; one record missing and one different; generated zones that kzonecheck accepts and
// that read back as present; and resolvers that do not answer, which must be an error and not "all missing".
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import t from 'tap';
import fc from 'fast-check';
import { checkRecords } from '../../src/ingress/dns-check.js';
import { domainRecords, zoneSnippet, type DnsRecord } from '../../src/ingress/dns-records.js';
import { input } from './dns-gen.js';
import { freePort, kzonecheck, startKnot, zoneFile } from './knot.js';

const DOMAIN = 'asso.example';
const key = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
const records = domainRecords({
  domain: DOMAIN,
  hostnames: [{ name: 'pads.asso.example', service: 'pads' }, { name: 'fichiers.asso.example', service: 'files' }, { name: 'mail.asso.example', service: 'mail' }],
  ownHost: 'cattery.asso.example', ipv4: '192.0.2.10', ipv6: '2001:db8::10',
  dkim: [{ selector: 'cattery2026', publicKey: key }, { selector: 'cattery2025', publicKey: key.slice(0, 200), active: false }],
  caaIssuer: 'letsencrypt.org',
});
const TIMEOUT = 2000;

t.test('the zone cattery generated, served by knotd: every record present', async (t) => {
  const zone = zoneFile(DOMAIN, zoneSnippet(records));
  const verdict = kzonecheck(DOMAIN, zone);
  t.ok(verdict.ok, `kzonecheck accepts it${verdict.output ? `: ${verdict.output}` : ''}`);
  const knot = await startKnot(DOMAIN, zone);
  t.teardown(knot.stop);
  const checked = await checkRecords(records, { resolvers: [knot.address], timeoutMs: TIMEOUT });
  t.equal(checked.length, records.length);
  t.same(checked.filter((r) => r.state !== 'present').map((r) => `${r.name} ${r.type} ${r.state} ${r.found.join(' | ')}`), [], 'all present');
  const dkim = checked.find((r) => r.name === 'cattery2026._domainkey.asso.example.')!;
  t.same(dkim.found, [`v=DKIM1; k=rsa; p=${key}`], 'the key read back whole from its strings');
});

t.test('one record missing, one different, and other people\'s records beside ours: exactly those states', async (t) => {
  const dmarc = (r: DnsRecord) => r.name === '_dmarc.asso.example.';
  const mx = (r: DnsRecord) => r.type === 'MX';
  const served = records.filter((r) => !dmarc(r)).map((r) => (mx(r) ? { ...r, value: '10 mx.elsewhere.example.' } : r));
  // Beside ours, what an apex usually holds too: a site verification (TXT of another kind), another CA allowed, and
  // a DKIM record written with other spaces and tag order (the same record, written differently).
  const extra = [
    'asso.example. 3600 IN TXT "google-site-verification=abc123"',
    'asso.example. 3600 IN CAA 0 issue "sectigo.com"',
  ].join('\n');
  const reformatted = served.map((r) => (r.name === 'cattery2026._domainkey.asso.example.' ? { ...r, value: `v=DKIM1;p=${key};  k=rsa` } : r));
  const knot = await startKnot(DOMAIN, zoneFile(DOMAIN, `${zoneSnippet(reformatted)}${extra}\n`));
  t.teardown(knot.stop);
  const checked = await checkRecords(records, { resolvers: [knot.address], timeoutMs: TIMEOUT });
  const notPresent = checked.filter((r) => r.state !== 'present').map((r) => ({ name: r.name, type: r.type, state: r.state, found: r.found }));
  t.same(notPresent, [
    { name: 'asso.example.', type: 'MX', state: 'different', found: ['10 mx.elsewhere.example.'] },
    { name: '_dmarc.asso.example.', type: 'TXT', state: 'missing', found: [] },
  ]);
  const spf = checked.find((r) => r.value === 'v=spf1 mx -all')!;
  t.same(spf.found, ['v=spf1 mx -all'], 'only TXT of the same kind is shown (not the site verification)');
});

t.test('a second SPF or a second address is "different": two SPF records void each other (RFC 7208 §4.5)', async (t) => {
  const extra = 'asso.example. 3600 IN TXT "v=spf1 include:_spf.elsewhere.example ~all"\npads.asso.example. 3600 IN A 198.51.100.7\n';
  const knot = await startKnot(DOMAIN, zoneFile(DOMAIN, `${zoneSnippet(records)}${extra}`));
  t.teardown(knot.stop);
  const checked = await checkRecords(records, { resolvers: [knot.address], timeoutMs: TIMEOUT });
  t.same(checked.filter((r) => r.state !== 'present').map((r) => `${r.name} ${r.type} ${r.state}`).sort(), ['asso.example. TXT different', 'pads.asso.example. A different']);
});

t.test('generated inputs: kzonecheck accepts every snippet, and served by knotd they read back as present', async (t) => {
  const samples = fc.sample(input, { numRuns: 40, seed: 20261210 });
  const started = Date.now();
  for (const [i, inp] of samples.entries()) {
    const recs = domainRecords(inp);
    const zone = zoneFile(inp.domain, zoneSnippet(recs));
    const verdict = kzonecheck(inp.domain, zone);
    if (!verdict.ok) { t.fail(`kzonecheck refused the zone of ${inp.domain}: ${verdict.output}\n${zone}`); continue; }
    // Serving costs a knotd start: a handful of the samples is enough to cover the comparison of long TXT keys.
    if (i % 8 !== 0) continue;
    const knot = await startKnot(inp.domain, zone);
    try {
      const checked = await checkRecords(recs, { resolvers: [knot.address], timeoutMs: TIMEOUT });
      const wrong = checked.filter((r) => r.state !== 'present');
      t.same(wrong.map((r) => `${r.name} ${r.type} ${r.state} ${r.found.join(' | ')}`), [], `${inp.domain}: ${recs.length} records present`);
    } finally {
      await knot.stop();
    }
  }
  t.pass(`${samples.length} generated zones checked in ${Date.now() - started} ms`);
  t.ok(Date.now() - started < 120_000, 'bounded time');
});

t.test('a resolver that does not answer is an error, within the timeout, not "all missing"', async (t) => {
  // Nothing listens: the kernel answers "port unreachable" at once.
  const closed = `127.0.0.1:${await freePort()}`;
  let started = Date.now();
  await t.rejects(checkRecords(records, { resolvers: [closed], timeoutMs: 1000 }), { code: 'CATTERY_ERR_RESOLVER', message: /127\.0\.0\.1/ });
  t.ok(Date.now() - started < 1500, `refused: ${Date.now() - started} ms`);

  // A socket that reads queries and never answers: only the timeout can end the wait.
  const silent = dgram.createSocket('udp4');
  await new Promise<void>((r) => silent.bind(0, '127.0.0.1', () => r()));
  t.teardown(() => silent.close());
  let queries = 0;
  silent.on('message', () => { queries++; });
  started = Date.now();
  await t.rejects(checkRecords(records, { resolvers: [`127.0.0.1:${silent.address().port}`], timeoutMs: 600 }), { code: 'CATTERY_ERR_RESOLVER', message: /ETIMEOUT/ });
  const took = Date.now() - started;
  t.ok(took >= 400 && took < 1500, `silent: ${took} ms for a 600 ms timeout`);
  t.ok(queries > 0 && queries <= 4 * 2 * 2, `the queries stopped at the first failure (${queries} sent)`);

  // A resolver that answers REFUSED (knotd asked for a zone it does not serve) is no answer either.
  const knot = await startKnot('other.example', zoneFile('other.example', ''));
  t.teardown(knot.stop);
  await t.rejects(checkRecords(records, { resolvers: [knot.address], timeoutMs: TIMEOUT }), { code: 'CATTERY_ERR_RESOLVER', message: /EREFUSED/ });
});
