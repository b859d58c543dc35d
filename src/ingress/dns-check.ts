// Does the Internet see the records cattery asks the association to publish? Each (name, type) is resolved once
// through the resolvers configured (CATTERY_DNS_RESOLVERS, else the system's), answers are compared with what is
// expected in a normalised form, and every record is said present, missing or different.
// - NXDOMAIN and NODATA (ENOTFOUND, ENODATA) are "missing": the name or the type is not there.
// - A resolver that does not answer, refuses, or fails (timeout, connection refused, REFUSED, SERVFAIL…) makes the
//   whole check a CATTERY_ERR_RESOLVER: without an answer nothing can be said, and calling every record "missing"
//   would send the association to fix records that may well be right.
import { Resolver } from 'node:dns/promises';
import { fail } from '../errors.js';
import { canonicalIpv6, type DnsRecord, type RecordType } from './dns-records.js';

export type CheckState = 'present' | 'missing' | 'different';
export type CheckedRecord = DnsRecord & { state: CheckState; found: string[] };

export interface CheckOptions {
  /** "ip" or "ip:port" ("[v6]:port"); empty: the system's resolvers. */
  resolvers: readonly string[];
  /** The longest one lookup may take, retries included. */
  timeoutMs: number;
  /** Lookups in flight at once: a small number, so that a check is not a burst against the association's resolver. */
  concurrency?: number;
}

/** The answers that mean "not there"; every other error code means the resolver did not give an answer. */
const ABSENT = new Set(['ENODATA', 'ENOTFOUND']);

const bare = (n: string) => n.toLowerCase().replace(/\.$/, '');
/** A target in canonical form; the root (an empty name from the resolver, or ".") stays ".". */
const target = (n: string) => (bare(n) === '' ? '.' : `${bare(n)}.`);

/** What one (name, type) holds, each answer in the form records are written in (dns-records.ts). */
async function lookup(r: Resolver, name: string, type: RecordType): Promise<string[]> {
  const n = bare(name);
  switch (type) {
    case 'A': return r.resolve4(n);
    case 'AAAA': return (await r.resolve6(n)).map(canonicalIpv6);
    case 'MX': return (await r.resolveMx(n)).map((m) => `${m.priority} ${target(m.exchange)}`);
    case 'SRV': return (await r.resolveSrv(n)).map((s) => `${s.priority} ${s.weight} ${s.port} ${target(s.name)}`);
    // The character-strings of one record are one value (RFC 7208 §3.3, RFC 6376 §3.6.2.2: joined without space).
    case 'TXT': return (await r.resolveTxt(n)).map((chunks) => chunks.join(''));
    case 'CAA': return (await r.resolveCaa(n)).map((c) => {
      const { critical, ...rest } = c;
      const [tag = '', value = ''] = Object.entries(rest)[0] ?? [];
      return `${critical} ${tag.toLowerCase()} "${String(value)}"`;
    });
  }
}

/** The `v=` tag that opens a TXT value (`v=spf1`, `v=DKIM1`, `v=DMARC1`, `v=STSv1`, `v=TLSRPTv1`), lower case. */
export function txtKind(value: string): string | undefined {
  return /^\s*v\s*=\s*([^;\s]+)/i.exec(value)?.[1]?.toLowerCase();
}

/** The form two values of the same type are compared in. SPF terms are case-insensitive and space-separated (RFC 7208
 * §4.6.1); tag lists (RFC 6376 §3.2, used by DMARC, MTA-STS and TLS-RPT too) ignore spaces around and inside values
 * (FWS) and the order of tags. A and the other types are compared as written, names without case. */
export function normalise(type: RecordType, value: string): string {
  if (type === 'TXT') {
    const kind = txtKind(value);
    if (kind === 'spf1') return value.trim().toLowerCase().split(/\s+/).join(' ');
    if (kind) {
      return value.split(';').map((t) => t.trim()).filter(Boolean).map((t) => {
        const eq = t.indexOf('=');
        return eq < 0 ? t.toLowerCase() : `${t.slice(0, eq).trim().toLowerCase()}=${t.slice(eq + 1).replace(/\s+/g, '')}`;
      }).sort().join(';');
    }
    return value;
  }
  if (type === 'AAAA') { try { return canonicalIpv6(value); } catch { return value; } }
  if (type === 'CAA') {
    const m = /^(\d+)\s+([A-Za-z0-9]+)\s+"(.*)"$/.exec(value.trim());
    return m ? `${Number(m[1])} ${m[2]!.toLowerCase()} "${m[3]}"` : value.trim();
  }
  // MX and SRV: numbers and a target name, whose case and final dot do not matter.
  if (type === 'MX' || type === 'SRV') {
    const parts = value.trim().split(/\s+/);
    const last = parts.pop() ?? '';
    return [...parts.map((p) => String(Number(p))), target(last)].join(' ');
  }
  return value.trim();
}

/** "ip" / "ip:port" / "[v6]:port" as c-ares takes them; anything else is a configuration mistake. */
function resolverFor(servers: readonly string[], timeoutMs: number): Resolver {
  // c-ares waits longer on a retry than on the first try: 2 tries of a third of the budget end about within it, and
  // the per-lookup deadline in checkRecords holds whatever c-ares does.
  const r = new Resolver({ timeout: Math.max(50, Math.floor(timeoutMs / 3)), tries: 2 });
  if (servers.length) {
    try { r.setServers([...servers]); } catch (err) { throw fail('CATTERY_ERR_CONFIG', `CATTERY_DNS_RESOLVERS: ${servers.join(', ')} is not a list of addresses`, err); }
  }
  return r;
}

/** Resolve every record and say, for each, whether what is published matches. */
export async function checkRecords(records: readonly DnsRecord[], opts: CheckOptions): Promise<CheckedRecord[]> {
  const resolver = resolverFor(opts.resolvers, opts.timeoutMs);
  const who = opts.resolvers.length ? opts.resolvers.join(', ') : 'the system resolver';
  const keys = [...new Set(records.map((r) => `${bare(r.name)} ${r.type}`))];
  const answers = new Map<string, string[]>();
  let failure: Error | undefined;

  const one = async (key: string): Promise<void> => {
    const [name = '', type] = key.split(' ') as [string, RecordType];
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(Object.assign(new Error('deadline'), { code: 'ETIMEOUT' })), opts.timeoutMs);
    });
    try {
      answers.set(key, await Promise.race([lookup(resolver, name, type), deadline]));
    } catch (err) {
      const code = String((err as { code?: unknown }).code ?? 'EUNKNOWN');
      if (ABSENT.has(code)) { answers.set(key, []); return; }
      failure ??= fail('CATTERY_ERR_RESOLVER', `${who}: ${code} for ${name} ${type}`, err);
    } finally {
      clearTimeout(timer);
    }
  };

  // A small pool of workers; the first resolver failure stops them and cancels what is in flight.
  const queue = [...keys];
  const worker = async () => {
    for (let key = queue.shift(); key !== undefined && !failure; key = queue.shift()) {
      await one(key);
      if (failure) resolver.cancel();
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(opts.concurrency ?? 4, keys.length)) }, worker));
  if (failure) throw failure;
  return records.map((r) => judge(r, records, answers.get(`${bare(r.name)} ${r.type}`) ?? []));
}

/** One record against what its (name, type) holds. For TXT only the answers of the same kind count (an apex holds
 * other TXT records: site verifications…). Present: ours is there and nothing else of its kind is, since two SPF,
 * DMARC, MTA-STS or TLS-RPT records void each other (RFC 7208 §4.5, RFC 7489 §6.6.3, RFC 8461 §3.1, RFC 8460 §3) and a
 * second A or MX sends part of the traffic elsewhere. CAA is a set of permissions: another CA's line beside ours is
 * the association's choice. */
function judge(r: DnsRecord, all: readonly DnsRecord[], answers: readonly string[]): CheckedRecord {
  const kind = r.type === 'TXT' ? txtKind(r.value) : undefined;
  const sameKind = (v: string) => r.type !== 'TXT' || kind === undefined || txtKind(v) === kind;
  const found = [...new Set(answers.filter(sameKind))];
  const mine = normalise(r.type, r.value);
  const expected = new Set(all.filter((x) => bare(x.name) === bare(r.name) && x.type === r.type && sameKind(x.value)).map((x) => normalise(x.type, x.value)));
  const seen = found.map((v) => normalise(r.type, v));
  let state: CheckState;
  if (found.length === 0) state = 'missing';
  else if (!seen.includes(mine)) state = 'different';
  else state = r.type === 'CAA' || seen.every((v) => expected.has(v)) ? 'present' : 'different';
  return { ...r, state, found };
}
