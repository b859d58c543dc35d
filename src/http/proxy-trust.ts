// Which peers may tell cattery who the client is (X-Forwarded-For, X-Request-Id): the reverse proxy in front of it,
// and nobody else, so that rate limits and sign-in throttles key on the real client behind the proxy while a client
// that reaches cattery directly cannot choose its own address. Config: CATTERY_TRUST_PROXY (config.ts validates it).
import net from 'node:net';
import type { Config } from '../config.js';

/** proxy-addr's names, with the ranges it gives them. */
const NAMED: Record<string, string[]> = {
  loopback: ['127.0.0.0/8', '::1/128'],
  linklocal: ['169.254.0.0/16', 'fe80::/10'],
  uniquelocal: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7'],
};

/** `::ffff:10.0.0.1` is the IPv4 address 10.0.0.1 seen through an IPv6 socket. */
function normalise(addr: string): { addr: string; family: 'ipv4' | 'ipv6' } | undefined {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(addr);
  const a = mapped ? mapped[1]! : addr;
  const f = net.isIP(a);
  return f === 4 ? { addr: a, family: 'ipv4' } : f === 6 ? { addr: a, family: 'ipv6' } : undefined;
}

/** The peer address cattery gives the front door's unix-socket connections (runtime.ts), the one peer trusted for
 * X-Forwarded-For without being configured: only the door's user and root can open that socket. A TCP connection
 * always carries a real address (one that lost it is closed at once, http/app.ts), so it cannot pass for it. */
export const DOOR_PEER = 'unix:front-door';

/** Fastify's trustProxy function: is the address at this hop (0 = the socket's peer) a proxy cattery trusts? */
export type ProxyTrust = (addr: string, hop: number) => boolean;

export function compileProxyTrust(setting: Config['trustProxy']): ProxyTrust {
  if (setting === false) return () => false;
  if (typeof setting === 'number') return (_addr, hop) => hop < setting;
  const list = new net.BlockList();
  for (const entry of setting.flatMap((e) => NAMED[e] ?? [e])) {
    const [addr = '', prefix] = entry.split('/');
    const family = net.isIP(addr) === 4 ? 'ipv4' : 'ipv6';
    if (prefix === undefined) list.addAddress(addr, family);
    else list.addSubnet(addr, Number(prefix), family);
  }
  return (addr) => {
    const n = normalise(addr);
    return n !== undefined && list.check(n.addr, n.family);
  };
}

/** A client's own request id is kept only when a trusted proxy passed it on and it is plainly an id: one token of
 * safe characters, short, so that it cannot forge log lines, flood them or pass for another request's id. */
export const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

/** The key a client's limits are counted under: an IPv4 address as it is, an IPv6 address by its /64. One home or
 * one server gets a whole /64 (RFC 6177; RFC 7381), so keying on the full address would give anyone 2^64 budgets. */
export function clientKey(ip: string): string {
  const n = normalise(ip);
  if (!n) return ip;
  if (n.family === 'ipv4') return n.addr;
  // Expand "::" so that the first four groups are the prefix, whatever the spelling.
  const [head = '', tail = ''] = n.addr.toLowerCase().split('::');
  const h = head ? head.split(':') : [];
  const tl = n.addr.includes('::') ? (tail ? tail.split(':') : []) : [];
  // An embedded IPv4 tail (64:ff9b::1.2.3.4) fills two groups.
  const tailGroups = tl.length + (tl.at(-1)?.includes('.') ? 1 : 0);
  const groups = n.addr.includes('::') ? [...h, ...Array(Math.max(0, 8 - h.length - tailGroups)).fill('0'), ...tl] : h;
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`;
}
