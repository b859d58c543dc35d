// Which names the front door accepts for an instance. A hostname reaches Caddy's configuration, a certificate
// request to a public CA and the DNS records the association publishes, so it is checked here once, whole, and
// stored only in its checked form. What is refused, and why:
// - anything but LDH labels (RFC 1123 §2.1, RFC 5890 §2.3.1): no wildcard (`*`), no empty label (`..`), no `_`,
//   no upper case kept (names are compared lower-cased), at most 63 octets a label and 253 a name;
// - a name outside the association's own domains (CATTERY_DOMAINS): cattery would ask a CA for a name it does not
//   hold, or serve another association's name;
// - an IDN label (`xn--`) that is not valid Punycode, that does not come back to itself through UTS #46, or that
//   mixes scripts (Latin `a` beside Cyrillic `а`: the homograph trick of UTS #39 §5). Latin with accents is kept:
//   French associations have names like `café-asso.fr`;
// - the names the front door keeps for itself: cattery's own, and `mta-sts.`, `autoconfig.`, `autodiscover.` under
//   each domain (mail clients and MTA-STS look there).
import { domainToASCII, domainToUnicode } from 'node:url';
import { fail } from '../errors.js';

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
/** Labels whose third and fourth characters are `--` are reserved for IDNA (RFC 5891 §4.2.3.1) unless `xn--`. */
const RESERVED_HYPHENS = /^..--/;
export const RESERVED_PREFIXES = ['mta-sts', 'autoconfig', 'autodiscover'] as const;

/** One script per label, Latin (with its accents) or none: digits and the hyphen belong to every script. */
const SCRIPTS = [/\p{Script=Latin}/u, /\p{Script=Cyrillic}/u, /\p{Script=Greek}/u, /\p{Script=Han}/u, /\p{Script=Arabic}/u,
  /\p{Script=Hebrew}/u, /\p{Script=Armenian}/u, /\p{Script=Georgian}/u, /\p{Script=Hiragana}/u, /\p{Script=Katakana}/u,
  /\p{Script=Hangul}/u, /\p{Script=Thai}/u, /\p{Script=Devanagari}/u, /\p{Script=Cherokee}/u];

function idnProblem(label: string): string | undefined {
  const unicode = domainToUnicode(label);
  if (!unicode || unicode === label || domainToASCII(unicode) !== label) return 'is not valid Punycode';
  if (!/^[\p{L}\p{M}\p{Nd}-]+$/u.test(unicode)) return 'holds characters that are not letters or digits';
  const scripts = SCRIPTS.filter((s) => [...unicode].some((c) => s.test(c)));
  if (scripts.length !== 1) return 'mixes scripts (a look-alike name)';
  if (!SCRIPTS[0]!.test(unicode)) return 'is not in Latin script';
  return undefined;
}

/** Why a name is not a hostname, or undefined. The name must already be lower case and end without a dot. */
export function hostnameProblem(name: string): string | undefined {
  if (name.length < 1 || name.length > 253) return 'must be 1 to 253 characters';
  const labels = name.split('.');
  if (labels.length < 2) return 'must have at least two labels';
  for (const label of labels) {
    if (!LABEL.test(label)) return `label "${label.slice(0, 63)}" is not letters, digits and inner hyphens (1 to 63)`;
    if (RESERVED_HYPHENS.test(label)) {
      if (!label.startsWith('xn--')) return `label "${label}" has "--" in third and fourth place (reserved)`;
      const why = idnProblem(label);
      if (why) return `label "${label}" ${why}`;
    }
  }
  if (/^\d+$/.test(labels.at(-1)!)) return 'ends with a number (an address, not a name)';
  return undefined;
}

/** The domain of `domains` a name is under (the longest), or undefined. */
export function domainOf(name: string, domains: readonly string[]): string | undefined {
  return [...domains].sort((a, b) => b.length - a.length).find((d) => name === d || name.endsWith(`.${d}`));
}

/** The names the front door keeps for itself under each domain, and cattery's own. */
export function reservedNames(domains: readonly string[], ownHost?: string): Set<string> {
  const out = new Set<string>(ownHost ? [ownHost] : []);
  for (const d of domains) for (const p of RESERVED_PREFIXES) out.add(`${p}.${d}`);
  return out;
}

/** A name as given by an administrator → its checked, stored form; anything else is a clear 400. */
export function checkHostname(given: string, domains: readonly string[], ownHost?: string): string {
  if (typeof given !== 'string' || given.length > 254) throw fail('CATTERY_ERR_VALIDATION', 'hostname: must be a name of at most 253 characters');
  // One final dot is how DNS writes a full name; it is the same name.
  const name = given.toLowerCase().replace(/\.$/, '');
  const problem = hostnameProblem(name);
  if (problem) throw fail('CATTERY_ERR_VALIDATION', `hostname "${given.slice(0, 80)}" ${problem}`);
  if (!domainOf(name, domains)) {
    throw fail('CATTERY_ERR_VALIDATION', domains.length
      ? `hostname "${name}" is not under the association's domains (${domains.join(', ')})`
      : `hostname "${name}": the association has no domain yet (CATTERY_DOMAINS)`);
  }
  if (reservedNames(domains, ownHost).has(name)) throw fail('CATTERY_ERR_VALIDATION', `hostname "${name}" is kept for cattery itself`);
  return name;
}
