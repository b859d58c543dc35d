// Generated inputs of domainRecords, shared by the records and the check tests: domains, instance hostnames under them
// (the names ingress/hostnames.ts accepts), addresses, DKIM keys of every length, report addresses.
import fc from 'fast-check';
import type { DomainRecordsInput } from '../../src/ingress/dns-records.js';
import { hostnameProblem, reservedNames } from '../../src/ingress/hostnames.js';

/** LDH labels, hyphens inside only, never `xx--` (reserved for IDNA). */
export const label = fc.stringMatching(/^[a-z0-9](?:[a-z0-9-]{0,14}[a-z0-9])?$/).filter((l) => !/^..--/.test(l));
export const domain = fc.tuple(fc.array(label, { minLength: 1, maxLength: 3 }), fc.stringMatching(/^[a-z]{2,6}$/))
  .map(([ls, tld]) => [...ls, tld].join('.'))
  .filter((d) => hostnameProblem(d) === undefined);

const base64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');

export const input: fc.Arbitrary<DomainRecordsInput> = domain.chain((d) => fc.record({
  domain: fc.constant(d),
  hostnames: fc.uniqueArray(fc.record({
    name: fc.oneof(fc.constant(d), label.map((l) => `${l}.${d}`), fc.tuple(label, label).map(([a, b]) => `${a}.${b}.${d}`)),
    service: fc.constantFrom('pads', 'files', 'mail', 'webmail'),
  }), { maxLength: 8, selector: (h) => h.name }).map((hs) => hs.filter((h) => !reservedNames([d]).has(h.name) && hostnameProblem(h.name) === undefined)),
  ownHost: fc.option(label.map((l) => `${l}.${d}`).filter((h) => !reservedNames([d]).has(h)), { nil: undefined }),
  ipv4: fc.option(fc.ipV4(), { nil: undefined }),
  ipv6: fc.option(fc.ipV6(), { nil: undefined }),
  dkim: fc.uniqueArray(fc.record({
    selector: fc.oneof(label, fc.tuple(label, label).map(([a, b]) => `${a}.${b}`)),
    // 12 to 800 octets: below, at and well above one 255-octet TXT string once in base64 with its tags.
    publicKey: fc.uint8Array({ minLength: 12, maxLength: 800 }).map(base64),
    active: fc.boolean(),
  }), { maxLength: 3, selector: (k) => k.selector }),
  reportAddress: fc.option(label.map((l) => `${l}@${d}`), { nil: undefined }),
  caaIssuer: fc.option(fc.constant('letsencrypt.org'), { nil: undefined }),
  // The mail instance's client ports: none (the standard ones), allocated ones, some kinds not published.
  mailPorts: fc.option(fc.record({
    imaps: fc.integer({ min: 1, max: 65535 }), imap: fc.integer({ min: 1, max: 65535 }),
    submissions: fc.integer({ min: 1, max: 65535 }), submission: fc.integer({ min: 1, max: 65535 }),
  }, { requiredKeys: [] }), { nil: undefined }),
}));
