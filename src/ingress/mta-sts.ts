// The MTA-STS policy a domain serves at `https://mta-sts.<domain>/.well-known/mta-sts.txt` (RFC 8461 §3.3): it tells
// sending servers to deliver to the listed MX hosts only, over TLS with a valid certificate.
//
// Format (RFC 8461 §3.2, its ABNF): `key: value` fields; `version: STSv1` first (the examples and every parser put it
// there), then `mode`, one `mx` per MX pattern ("at least once, except when mode is none"), `max_age` in seconds
// (at most 31557600, one year). Fields are separated by `sts-policy-term = LF / CRLF`; the prose says
// "CRLF-separated" (erratum 6253 notes the mismatch), so CRLF is written: it satisfies both readings. A final
// terminator is allowed (`[sts-policy-term]`).

export type MtaStsMode = 'enforce' | 'testing' | 'none';

export interface MtaStsInput { mx: string[]; mode: MtaStsMode; maxAgeSeconds: number }

/** RFC 8461 §3.2, max_age: "maximum value of 31557600". */
export const MTA_STS_MAX_AGE_LIMIT = 31_557_600;

/** One week, the shortest the issue accepts. RFC 8461 §3.2 expects max_age "in the range of weeks or greater" to
 * blunt attacks at refresh time; a week still lets a changed MX host reach every sender within days once the TXT
 * record's `id` changes (§3.1: senders fetch again when it does). */
export const MTA_STS_DEFAULT_MAX_AGE = 604_800;

/** An MX pattern: a host name, or `*.` and a domain (RFC 8461 §3.2 `sts-policy-mx-value = ["*."] Domain`; §4.1: the
 * wildcard matches one label). */
const MX_PATTERN = /^(\*\.)?(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** The policy text. Anything that would make an invalid or dangerous policy throws (a typo'd MX in an `enforce`
 * policy makes every MTA-STS sender refuse to deliver). */
export function mtaStsPolicy({ mx, mode, maxAgeSeconds }: MtaStsInput): string {
  if (!['enforce', 'testing', 'none'].includes(mode)) throw new Error(`MTA-STS mode "${String(mode)}" is not enforce, testing or none`);
  if (!Number.isInteger(maxAgeSeconds) || maxAgeSeconds < 0 || maxAgeSeconds > MTA_STS_MAX_AGE_LIMIT) {
    throw new Error(`MTA-STS max_age ${maxAgeSeconds} is not a whole number of seconds from 0 to ${MTA_STS_MAX_AGE_LIMIT}`);
  }
  const patterns = [...new Set(mx.map((m) => m.toLowerCase().replace(/\.$/, '')))];
  const bad = patterns.find((p) => !MX_PATTERN.test(p));
  if (bad !== undefined) throw new Error(`MTA-STS mx "${bad.slice(0, 80)}" is not a host name or *.domain`);
  if (mode !== 'none' && patterns.length === 0) throw new Error('an MTA-STS policy in enforce or testing mode needs at least one mx');
  const lines = ['version: STSv1', `mode: ${mode}`, ...patterns.map((p) => `mx: ${p}`), `max_age: ${maxAgeSeconds}`];
  return `${lines.join('\r\n')}\r\n`;
}
