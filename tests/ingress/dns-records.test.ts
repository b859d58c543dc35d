// The DNS records of a domain (ingress/dns-records.ts), pure: examples read against the RFCs, then properties over
// generated domains, hostnames and keys. The same records served by a real DNS server: dns-check.test.ts.
import crypto from 'node:crypto';
import t from 'tap';
import fc from 'fast-check';
import {
  DEFAULT_TTL, domainRecords, mtaStsId, mtaStsPolicy, mtaStsPolicyFor, quoteTxt, txtStrings, zoneSnippet, type DnsRecord,
} from '../../src/ingress/dns-records.js';
import { STANDARD_MAIL_PORTS } from '../../src/ingress/mail-client.js';
import { input } from './dns-gen.js';

/** A master file's character-strings read back (RFC 1035 §5.1): `\X` is X, `\DDD` the octet DDD. */
function unquote(rdata: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"\s*/gy;
  let m: RegExpExecArray | null;
  let at = 0;
  while ((m = re.exec(rdata)) !== null) {
    const bytes: number[] = [];
    const s = m[1]!;
    for (let i = 0; i < s.length; i++) {
      if (s[i] !== '\\') { bytes.push(s.charCodeAt(i)); continue; }
      if (/^\d{3}$/.test(s.slice(i + 1, i + 4))) { bytes.push(Number(s.slice(i + 1, i + 4))); i += 3; } else { bytes.push(s.charCodeAt(++i)); }
    }
    out.push(Buffer.from(bytes).toString('utf8'));
    at = re.lastIndex;
  }
  if (at !== rdata.length) throw new Error(`not a list of quoted strings: ${rdata}`);
  return out;
}

const LINE = /^([a-z0-9._-]+\.) (\d+) IN (A|AAAA|MX|TXT|SRV|CAA) (.+)$/;

t.test('an association with pads, files and mail: every record of the issue, as the RFCs write them', async (t) => {
  const key = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
  const records = domainRecords({
    domain: 'asso.example',
    hostnames: [{ name: 'pads.asso.example', service: 'pads' }, { name: 'fichiers.asso.example', service: 'files' }, { name: 'mail.asso.example', service: 'mail' }],
    ownHost: 'cattery.asso.example', ipv4: '192.0.2.10', ipv6: '2001:DB8:0:0::10',
    dkim: [{ selector: 'cattery2026', publicKey: key }],
    caaIssuer: 'letsencrypt.org',
  });
  const by = (name: string, type: string) => records.filter((r) => r.name === name && r.type === type).map((r) => r.value);
  for (const n of ['pads', 'fichiers', 'mail', 'mta-sts', 'autoconfig', 'cattery']) {
    t.same(by(`${n}.asso.example.`, 'A'), ['192.0.2.10'], `${n}: A`);
    t.same(by(`${n}.asso.example.`, 'AAAA'), ['2001:db8::10'], `${n}: AAAA in RFC 5952 form`);
  }
  t.same(by('asso.example.', 'MX'), ['10 mail.asso.example.']);
  t.same(by('asso.example.', 'TXT'), ['v=spf1 mx -all']);
  t.same(by('mail.asso.example.', 'TXT'), ['v=spf1 a -all'], 'the HELO name has SPF of its own (bounces)');
  t.same(by('cattery2026._domainkey.asso.example.', 'TXT'), [`v=DKIM1; k=rsa; p=${key}`]);
  t.same(by('_dmarc.asso.example.', 'TXT'), ['v=DMARC1; p=quarantine; adkim=s; aspf=s; rua=mailto:postmaster@asso.example']);
  t.same(by('_smtp._tls.asso.example.', 'TXT'), ['v=TLSRPTv1; rua=mailto:postmaster@asso.example']);
  const policy = mtaStsPolicyFor('asso.example', [{ name: 'mail.asso.example', service: 'mail' }]);
  t.equal(policy, 'version: STSv1\r\nmode: enforce\r\nmx: mail.asso.example\r\nmax_age: 604800\r\n', 'RFC 8461 §3.2, CRLF lines');
  t.same(by('_mta-sts.asso.example.', 'TXT'), [`v=STSv1; id=${mtaStsId(policy)}`]);
  t.match(mtaStsId(policy), /^[a-f0-9]{32}$/, 'RFC 8461 §3.1: 1 to 32 alphanumerics');
  t.same(by('_submissions._tcp.asso.example.', 'SRV'), ['0 1 465 mail.asso.example.']);
  t.same(by('_submission._tcp.asso.example.', 'SRV'), ['10 1 587 mail.asso.example.']);
  t.same(by('_imaps._tcp.asso.example.', 'SRV'), ['0 1 993 mail.asso.example.']);
  t.same(by('_imap._tcp.asso.example.', 'SRV'), ['10 1 143 mail.asso.example.']);
  t.same(by('_pop3._tcp.asso.example.', 'SRV'), ['0 0 0 .'], 'RFC 6186 §4: not offered');
  // The mail instance's own client ports when given (allocated ones before its standard ports are published), a
  // kind it does not publish said not offered.
  const allocated = domainRecords({ domain: 'asso.example', hostnames: [], dkim: [], mailPorts: { imaps: 20004, submissions: 20002, submission: 20001 } });
  const srv = (name: string) => allocated.filter((r) => r.name === name && r.type === 'SRV').map((r) => r.value);
  t.same(srv('_imaps._tcp.asso.example.'), ['0 1 20004 mail.asso.example.']);
  t.same(srv('_submissions._tcp.asso.example.'), ['0 1 20002 mail.asso.example.']);
  t.same(srv('_submission._tcp.asso.example.'), ['10 1 20001 mail.asso.example.']);
  t.same(srv('_imap._tcp.asso.example.'), ['0 0 0 .'], 'a kind not published: not offered');
  t.same(by('asso.example.', 'CAA'), ['0 issue "letsencrypt.org"', '0 issuewild ";"']);
  t.ok(records.every((r) => r.ttl === DEFAULT_TTL && r.why.fr.length > 10 && r.why.en.length > 10 && !/\n/.test(r.why.fr + r.why.en)), 'each says why, in one line, in both languages');

  const dkimLine = zoneSnippet(records).split('\n').find((l) => l.startsWith('cattery2026._domainkey'))!;
  const strings = unquote(LINE.exec(dkimLine)![4]!);
  t.equal(strings.length, 2, 'a 2048-bit key is more than one 255-octet string (RFC 6376 §3.6.2.2)');
  t.equal(strings.join(''), `v=DKIM1; k=rsa; p=${key}`);
  t.equal(records.filter((r) => r.name === 'mail.asso.example.' && r.type === 'A').length, 1, 'the mail instance\'s name and the mail host are one name');
});

t.test('the mail host: a mail instance\'s name wins over mail.<domain>; no address records without addresses', async (t) => {
  const records = domainRecords({ domain: 'asso.example', hostnames: [{ name: 'courriel.asso.example', service: 'mail' }], dkim: [] });
  t.same(records.filter((r) => r.type === 'MX').map((r) => r.value), ['10 courriel.asso.example.']);
  t.ok(records.filter((r) => r.type === 'SRV' && !r.value.endsWith(' .')).every((r) => r.value.endsWith(' courriel.asso.example.')));
  t.equal(records.filter((r) => r.type === 'A' || r.type === 'AAAA').length, 0);
  t.notOk(records.some((r) => r.type === 'CAA'), 'no CAA when the CA is not known');
  t.notOk(records.some((r) => r.name.includes('_domainkey')), 'no DKIM record while no key is known');
});

t.test('refused inputs', async (t) => {
  const base = { domain: 'asso.example', hostnames: [] };
  t.throws(() => domainRecords({ ...base, dkim: [{ selector: 'bad selector', publicKey: 'AAAAAAAAAAAAAAAAAAAA' }] }), { code: 'CATTERY_ERR_VALIDATION' });
  t.throws(() => domainRecords({ ...base, dkim: [{ selector: 's1', publicKey: 'AAAA"; evil' }] }), { code: 'CATTERY_ERR_VALIDATION' });
  t.throws(() => domainRecords({ ...base, dkim: [], reportAddress: 'a@b"; p=none' }), { code: 'CATTERY_ERR_VALIDATION' });
  t.throws(() => domainRecords({ ...base, dkim: [], ipv6: 'not:an:address:x' }), { code: 'CATTERY_ERR_VALIDATION' });
  t.throws(() => mtaStsPolicy({ mx: [], mode: 'enforce', maxAge: 60 }), { code: 'CATTERY_ERR_VALIDATION' });
  t.throws(() => mtaStsPolicy({ mx: ['mail.asso.example'], mode: 'enforce', maxAge: 31_557_601 }), { code: 'CATTERY_ERR_VALIDATION' });
});

t.test('the MTA-STS id follows the policy: the same while it does not change, another when it does', async (t) => {
  fc.assert(fc.property(fc.uniqueArray(fc.stringMatching(/^[a-z]{1,8}\.example$/), { minLength: 1, maxLength: 4 }), fc.constantFrom('enforce' as const, 'testing' as const),
    fc.integer({ min: 0, max: 31_557_600 }), (mx, mode, maxAge) => {
      const p = mtaStsPolicy({ mx, mode, maxAge });
      if (mtaStsId(p) !== mtaStsId(mtaStsPolicy({ mx: [...mx].reverse().map((h) => `${h.toUpperCase()}.`), mode, maxAge }))) return false;
      return mtaStsId(p) !== mtaStsId(mtaStsPolicy({ mx, mode: mode === 'enforce' ? 'testing' : 'enforce', maxAge }))
        && mtaStsId(p) !== mtaStsId(mtaStsPolicy({ mx: [...mx, 'other.example'], mode, maxAge }));
    }), { numRuns: 300, seed: 20261210 });
  t.pass('300 generated policies');
});

t.test('any string: split into ≤255-octet strings that join back, quoted so that a master-file reader gets it back', async (t) => {
  fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 1200 }), (s) => {
    const parts = txtStrings(s);
    return parts.every((p) => Buffer.byteLength(p) <= 255) && parts.join('') === s && unquote(parts.map(quoteTxt).join(' ')).join('') === s
      && parts.map(quoteTxt).every((q) => /^"[\x20-\x7e]*"$/.test(q));
  }), { numRuns: 500, seed: 20261210 });
  t.pass('500 generated strings');
});

t.test('generated domains, hostnames and keys', async (t) => {
  let runs = 0;
  fc.assert(fc.property(input, (inp) => {
    runs++;
    const records = domainRecords(inp);
    const d = `${inp.domain}.`;
    const under = (n: string) => n === d || n.endsWith(`.${d}`);
    const has = (name: string, type: string) => records.some((r) => r.name === name && r.type === type);
    // Every hostname (and the fixed names) has its A when an IPv4 is set, its AAAA when an IPv6 is.
    for (const n of [...inp.hostnames.map((h) => h.name), `mta-sts.${inp.domain}`, `autoconfig.${inp.domain}`, ...(inp.ownHost ? [inp.ownHost] : [])]) {
      if (has(`${n}.`, 'A') !== (inp.ipv4 !== undefined)) throw new Error(`${n}: A`);
      if (has(`${n}.`, 'AAAA') !== (inp.ipv6 !== undefined)) throw new Error(`${n}: AAAA`);
    }
    // One record per (name, type, value): a zone refuses duplicates silently, the check would count them twice.
    if (new Set(records.map((r) => `${r.name} ${r.type} ${r.value}`)).size !== records.length) throw new Error('duplicate record');
    // Nothing outside the domain: names, MX and SRV targets, report addresses.
    for (const r of records) {
      if (!under(r.name)) throw new Error(`name outside: ${r.name}`);
      if (r.type === 'MX' || r.type === 'SRV') { const target = r.value.split(' ').at(-1)!; if (target !== '.' && !under(target)) throw new Error(`target outside: ${r.value}`); }
      for (const m of r.value.matchAll(/mailto:[^@]+@([^;\s]+)/g)) if (!under(`${m[1]}.`)) throw new Error(`report outside: ${r.value}`);
      if (r.type === 'TXT') {
        const parts = txtStrings(r.value);
        if (!parts.every((p) => Buffer.byteLength(p) <= 255) || parts.join('') !== r.value) throw new Error(`TXT strings: ${r.value}`);
      }
    }
    // The clients' SRV records give the ports asked for, the standard ones by default, "." for a kind not offered.
    for (const [kind, std] of Object.entries(STANDARD_MAIL_PORTS) as [keyof typeof STANDARD_MAIL_PORTS, number][]) {
      const port = inp.mailPorts ? inp.mailPorts[kind] : std;
      const values = records.filter((r) => r.name === `_${kind}._tcp.${d}` && r.type === 'SRV').map((r) => r.value);
      if (values.length !== 1 || (port === undefined ? values[0] !== '0 0 0 .' : values[0]!.split(' ')[2] !== String(port))) throw new Error(`${kind} SRV: ${values.join(', ')}`);
    }
    if (inp.dkim.length !== records.filter((r) => r.name.endsWith(`._domainkey.${d}`)).length) throw new Error('one DKIM record per key');
    // The snippet: one well-formed line per record, giving the same record back.
    const lines = zoneSnippet(records).split('\n');
    if (lines.pop() !== '' || lines.length !== records.length) throw new Error('one line per record, ending with a newline');
    lines.forEach((line, i) => {
      const m = LINE.exec(line);
      const r: DnsRecord = records[i]!;
      if (!m || m[1] !== r.name || Number(m[2]) !== r.ttl || m[3] !== r.type) throw new Error(`bad line: ${line}`);
      if (r.type === 'TXT' ? unquote(m[4]!).join('') !== r.value : m[4] !== r.value) throw new Error(`rdata: ${line}`);
    });
    return true;
  }), { numRuns: 400, seed: 20261210 });
  t.equal(runs, 400);
});
