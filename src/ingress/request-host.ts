// Which of the association's domains a request speaks of, for the routes the front door sends by name
// (`autoconfig.<domain>`, `mta-sts.<domain>`). The answer is one of the configured domains or nothing: names are
// compared whole, after the one normalisation DNS allows (case, RFC 4343; one final dot), never by substring or
// suffix, so `autoconfig.asso.example.evil.tld` and `evilasso.example` are nobody's.

/** The name in a Host header (RFC 9110 §7.2: `uri-host [ ":" port ]`), lower-cased, without port or final dot; or
 * undefined for anything that is not a plain DNS name (an address literal, spaces, control characters, non-ASCII).
 * ASCII is checked before lower-casing: `'\u212A'.toLowerCase()` (the Kelvin sign) is a plain `k`. */
export function hostName(header: string | undefined): string | undefined {
  if (typeof header !== 'string' || header.length > 260 || !/^[\x21-\x7e]+$/.test(header)) return undefined;
  const m = /^([a-z0-9-]+(?:\.[a-z0-9-]+)*)\.?(?::\d{1,5})?$/.exec(header.toLowerCase());
  return m?.[1];
}

/** The configured domain `name` is, or is `<prefix>.<domain>` of (prefix '' meaning the domain itself). */
export function domainByName(name: string | undefined, domains: readonly string[], prefixes: readonly string[]): string | undefined {
  if (name === undefined) return undefined;
  return domains.find((d) => prefixes.some((p) => name === (p ? `${p}.${d}` : d)));
}

/** The configured domain of a mail address (the part after its last `@`, RFC 5321 §4.1.2), or undefined. */
export function domainOfAddress(address: string | undefined, domains: readonly string[]): string | undefined {
  if (typeof address !== 'string') return undefined;
  const at = address.lastIndexOf('@');
  if (at < 1) return undefined;
  const domain = address.slice(at + 1);
  // The same whole-name rule as a Host header, without the port a Host may carry.
  return domain.includes(':') ? undefined : domainByName(hostName(domain), domains, ['']);
}
