// The subnet pool: every /28 handed out lies in the pool, on a /28 boundary, is not one already held, and is never
// the front door's own (the pool's last), whatever the pool and whatever is already taken.
import fc from 'fast-check';
import t from 'tap';
import { allocateSubnet, ingressSubnet, parsePool } from '../../src/orchestrator/subnets.js';

const toNum = (cidr: string) => cidr.split('/')[0]!.split('.').reduce((n, o) => n * 256 + Number(o), 0);

const pools = fc.record({ a: fc.integer({ min: 1, max: 223 }), b: fc.integer({ min: 0, max: 255 }), prefix: fc.integer({ min: 16, max: 27 }) })
  .map(({ a, b, prefix }) => {
    const base = ((a * 256 + b) * 65536) >>> 0;
    const aligned = base - (base % 2 ** (32 - prefix));
    return `${aligned >>> 24}.${(aligned >>> 16) & 255}.${(aligned >>> 8) & 255}.${aligned & 255}/${prefix}`;
  });

t.test('a handed-out /28 is in the pool, aligned, free, and never the front door\'s', async (t) => {
  fc.assert(fc.property(pools, fc.array(fc.nat(4096), { maxLength: 40 }), (pool, picks) => {
    const { base, count } = parsePool(pool);
    const door = ingressSubnet(pool);
    const used = new Set<string>();
    for (const i of picks) {
      const n = base + (i % count) * 16;
      used.add(`${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}/28`);
    }
    let got: string;
    try { got = allocateSubnet(pool, used); } catch (err) {
      // Full only when every /28 but the door's is held.
      return (err as { code?: string }).code === 'CATTERY_ERR_CONFLICT' && [...used].filter((c) => c !== door).length === count - 1;
    }
    const n = toNum(got);
    return got !== door && !used.has(got) && n % 16 === 0 && n >= base && n < base + count * 16;
  }), { numRuns: 500 });
});

t.test('the door\'s /28 is the pool\'s last; a pool too small to hold an instance beside it is refused', async (t) => {
  t.equal(ingressSubnet('10.213.0.0/16'), '10.213.255.240/28');
  t.equal(allocateSubnet('10.0.0.0/27', []), '10.0.0.0/28');
  t.throws(() => allocateSubnet('10.0.0.0/27', ['10.0.0.0/28']), { code: 'CATTERY_ERR_CONFLICT' });
  t.throws(() => parsePool('10.0.0.0/28'), { code: 'CATTERY_ERR_CONFIG' });
  t.throws(() => parsePool('10.0.0.1/24'), { code: 'CATTERY_ERR_CONFIG' });
});
