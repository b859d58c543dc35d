// A drain's plan (orchestrator/relocate.ts planDrain), as properties over generated servers and instances: every
// instance is either moved or said to stay, once; no move goes to the drained server or past a target's room (all the
// plan's moves counted together); a stateful instance without a repository and an unhealthy one never move, each with
// its reason; and what is left for want of room finds none on any target once the plan's moves are counted.
import t from 'tap';
import fc from 'fast-check';
import { CPU_HEADROOM, type ServerLoad } from '../../src/orchestrator/placement.js';
import { planDrain, type DrainCandidate } from '../../src/orchestrator/relocate.js';

const energy = { idleWatts: 40, maxWatts: 200, embodiedKgCo2e: 1000, serviceLifeYears: 6 };
const server = (id: number) => fc.record({
  cores: fc.integer({ min: 1, max: 16 }), memoryMb: fc.integer({ min: 256, max: 8192 }),
  busy: fc.double({ min: 0, max: 1, noNaN: true }), reserved: fc.double({ min: 0, max: 1, noNaN: true }),
}).map((r): ServerLoad => ({
  id, name: `s${id}`, energy, cores: r.cores, memoryMb: r.memoryMb,
  busyCores: r.busy * r.cores * CPU_HEADROOM, memoryMbReserved: Math.floor(r.reserved * r.memoryMb),
}));
const others = fc.integer({ min: 0, max: 4 }).chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => server(i + 2))));
const candidates = fc.uniqueArray(fc.record({
  slug: fc.stringMatching(/^[a-z][a-z0-9-]{1,10}[a-z0-9]$/), busyCores: fc.double({ min: 0, max: 2, noNaN: true }),
  memoryMb: fc.integer({ min: 16, max: 4096 }), stateful: fc.boolean(), healthy: fc.boolean(),
}), { selector: (c) => c.slug, maxLength: 12 });

t.test('a drain plan moves within room, says why the rest stays, and leaves nothing out', async (t) => {
  fc.assert(fc.property(others, candidates, fc.boolean(), (ss, cs: DrainCandidate[], hasRepo) => {
    const plan = planDrain('s1', ss, cs, hasRepo);
    const seen = [...plan.moves.map((m) => m.slug), ...plan.cannot.map((c) => c.slug)].sort();
    if (JSON.stringify(seen) !== JSON.stringify(cs.map((c) => c.slug).sort())) return false;
    if (plan.moves.some((m) => m.to === 's1')) return false;
    const after = ss.map((s) => {
      const onIt = plan.moves.filter((m) => m.to === s.name).map((m) => cs.find((c) => c.slug === m.slug)!);
      return { ...s, memoryMbReserved: s.memoryMbReserved + onIt.reduce((a, c) => a + c.memoryMb, 0), busyCores: s.busyCores + onIt.reduce((a, c) => a + c.busyCores, 0) };
    });
    for (const s of ss) {
      const onIt = plan.moves.filter((m) => m.to === s.name).map((m) => cs.find((c) => c.slug === m.slug)!);
      if (s.memoryMbReserved + onIt.reduce((a, c) => a + c.memoryMb, 0) > s.memoryMb) return false;
      if (onIt.length && s.busyCores + onIt.reduce((a, c) => a + c.busyCores, 0) > CPU_HEADROOM * s.cores + 1e-9) return false;
    }
    for (const c of cs) {
      const why = plan.cannot.find((x) => x.slug === c.slug)?.why;
      if (c.stateful && !hasRepo && !/no backup repository/.test(why ?? '')) return false;
      if (!c.healthy && !(c.stateful && !hasRepo) && !/not healthy/.test(why ?? '')) return false;
      // Room only shrinks as the plan goes on: what found none at its turn finds none in the end either.
      if (why?.startsWith('no room') && after.some((s) => s.memoryMbReserved + c.memoryMb <= s.memoryMb && s.busyCores + c.busyCores <= CPU_HEADROOM * s.cores)) return false;
    }
    return true;
  }), { numRuns: 500 });
  t.pass('500 generated drains');
});

t.test('an example: one fits, one has no repository, one has no room', async (t) => {
  const s2: ServerLoad = { id: 2, name: 's2', energy, cores: 4, memoryMb: 1000, busyCores: 0, memoryMbReserved: 900 };
  const plan = planDrain('s1', [s2], [
    { slug: 'petit', busyCores: 0.1, memoryMb: 64, stateful: false, healthy: true },
    { slug: 'grand', busyCores: 0.1, memoryMb: 512, stateful: false, healthy: true },
    { slug: 'donnees', busyCores: 0.1, memoryMb: 32, stateful: true, healthy: true },
  ], false);
  t.same(plan.moves, [{ slug: 'petit', to: 's2', stateful: false }]);
  t.match(plan.cannot, [{ slug: 'grand', why: /^no room/ }, { slug: 'donnees', why: /no backup repository/ }]);
});
