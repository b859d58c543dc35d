// One bridge network per instance needs more networks than Docker's default address pools give (about 30 on
// Engine 20.10: 172.17-31.0.0/16 and 192.168.0.0/16 cut in /20s). Cattery hands each instance a /28 (11 usable
// addresses: plenty for one service's containers) from a pool of its own, recorded with the instance.
import { fail } from '../errors.js';

const SIZE = 16; // a /28

export function parsePool(pool: string): { base: number; count: number } {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(pool);
  const octets = m ? m.slice(1, 5).map(Number) : [];
  const prefix = m ? Number(m[5]) : NaN;
  if (!m || octets.some((o) => o > 255) || prefix < 8 || prefix > 27) throw fail('CATTERY_ERR_CONFIG', `CATTERY_SUBNET_POOL ${pool} is not an IPv4 network between /8 and /27 (the front door holds its last /28, instances the others)`);
  const base = ((octets[0]! << 24) | (octets[1]! << 16) | (octets[2]! << 8) | octets[3]!) >>> 0;
  const hostBits = 32 - prefix;
  if (base % 2 ** hostBits !== 0) throw fail('CATTERY_ERR_CONFIG', `CATTERY_SUBNET_POOL ${pool} has host bits set`);
  return { base, count: 2 ** hostBits / SIZE };
}

function toCidr(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}/28`;
}

/** The front door's own network on each engine (orchestrator/docker/ingress.ts): the pool's last /28, never handed
 * to an instance or a link. From the pool rather than Docker's default pools, which a host shares with everything
 * else it runs and which hold about 30 networks. */
export function ingressSubnet(pool: string): string {
  const { base, count } = parsePool(pool);
  return toCidr(base + (count - 1) * SIZE);
}

/** The lowest /28 of the pool that no instance holds (the last one is the front door's). */
export function allocateSubnet(pool: string, used: Iterable<string>): string {
  const { base, count } = parsePool(pool);
  const taken = new Set(used);
  for (let i = 0; i < count - 1; i++) {
    const cidr = toCidr(base + i * SIZE);
    if (!taken.has(cidr)) return cidr;
  }
  throw fail('CATTERY_ERR_CONFLICT', `the subnet pool ${pool} is full`);
}
