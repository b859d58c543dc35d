// Placement that saves energy (orchestrator/placement.ts), as properties over generated servers and instances: a new
// instance goes to a server it fits on where it adds the fewest watts; a consolidation plan moves every instance of the
// emptied server onto the others within their room, conserves the load, and says what it saves from the same curves.
import t from 'tap';
import fc from 'fast-check';
import { CPU_HEADROOM, addedWatts, consolidationPlans, place, refusal, wattsNow, type Placed, type ServerLoad } from '../../src/orchestrator/placement.js';
import { curveWatts } from '../../src/metering/power.js';
import { isCatteryError } from '../../src/errors.js';

const energy = fc.oneof(
  fc.record({ idle: fc.integer({ min: 5, max: 200 }), span: fc.integer({ min: 0, max: 400 }) })
    .map(({ idle, span }) => ({ idleWatts: idle, maxWatts: idle + span, embodiedKgCo2e: 1000, serviceLifeYears: 6 })),
  // A SPECpower-style curve: 11 non-decreasing points.
  fc.tuple(fc.integer({ min: 5, max: 200 }), fc.array(fc.integer({ min: 0, max: 40 }), { minLength: 10, maxLength: 10 }))
    .map(([idle, steps]) => {
      const curve = [idle];
      for (const s of steps) curve.push(curve[curve.length - 1]! + s);
      return { idleWatts: idle, maxWatts: curve[10]!, curve, embodiedKgCo2e: 1000, serviceLifeYears: 6 };
    }),
);
const demand = fc.record({ busyCores: fc.double({ min: 0, max: 2, noNaN: true }), memoryMb: fc.integer({ min: 16, max: 4096 }) });
const server = (id: number) => fc.record({
  energy, cores: fc.integer({ min: 1, max: 32 }), memoryMb: fc.integer({ min: 512, max: 65536 }),
  busyFraction: fc.double({ min: 0, max: 1, noNaN: true }), reservedFraction: fc.double({ min: 0, max: 1, noNaN: true }),
}).map((r): ServerLoad => ({
  id, name: `s${id}`, energy: r.energy, cores: r.cores, memoryMb: r.memoryMb,
  busyCores: r.busyFraction * r.cores * CPU_HEADROOM, memoryMbReserved: Math.floor(r.reservedFraction * r.memoryMb),
}));
const servers = fc.integer({ min: 1, max: 5 }).chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => server(i + 1))));

t.test('a new instance goes where it fits and adds the fewest watts, or a clear refusal', async (t) => {
  fc.assert(fc.property(servers, demand, (ss, d) => {
    const fitting = ss.filter((s) => refusal(s, d) === undefined);
    let p;
    try { p = place(ss, d); } catch (err) {
      if (!isCatteryError(err) || err.code !== 'CATTERY_ERR_CAPACITY') throw err;
      return fitting.length === 0;
    }
    if (refusal(p.server, d) !== undefined) return false;
    if (fitting.some((s) => addedWatts(s, d) < p.addedWatts - 1e-9)) return false;
    // What it says it adds is the curve's own difference, and never negative on a curve that does not go down.
    const curveSays = curveWatts(p.server.energy, Math.min(1, (p.server.busyCores + d.busyCores) / p.server.cores)) - wattsNow(p.server);
    return Math.abs(curveSays - p.addedWatts) < 1e-9 && p.addedWatts >= -1e-9 && p.candidates.length === ss.length;
  }), { numRuns: 2000 });
  t.pass('2,000 generated cases');

  // The classic case: an old server that draws much at rest, a newer one with a flat curve.
  const old: ServerLoad = { id: 1, name: 'ancien', energy: { idleWatts: 120, maxWatts: 300, embodiedKgCo2e: 1000, serviceLifeYears: 6 }, cores: 8, memoryMb: 16384, busyCores: 1, memoryMbReserved: 2048 };
  const neuf: ServerLoad = { id: 2, name: 'neuf', energy: { idleWatts: 40, maxWatts: 120, embodiedKgCo2e: 1000, serviceLifeYears: 6 }, cores: 8, memoryMb: 16384, busyCores: 1, memoryMbReserved: 2048 };
  const p = place([old, neuf], { busyCores: 0.5, memoryMb: 256 });
  t.equal(p.server.name, 'neuf', 'the flatter curve takes the new instance');
  t.equal(Math.round(p.addedWatts * 100) / 100, 5, '80 W over 8 cores: 0.5 core adds 5 W');
  t.same(p.candidates.map((c) => c.addedWatts), [11.25, 5]);
  const full = { ...neuf, memoryMbReserved: 16300 };
  t.equal(place([old, full], { busyCores: 0.5, memoryMb: 256 }).server.name, 'ancien', 'a server without the memory is passed over');
  t.throws(() => place([{ ...old, memoryMbReserved: 16300 }, full], { busyCores: 0.5, memoryMb: 256 }), { code: 'CATTERY_ERR_CAPACITY' });
});

t.test('a consolidation plan empties one server within the others\' room and says what it saves', async (t) => {
  const withInstances = servers.chain((ss) => fc.tuple(...ss.map((s) => fc.array(
    fc.record({ busyCores: fc.double({ min: 0, max: 1, noNaN: true }), memoryMb: fc.integer({ min: 16, max: 2048 }), stateful: fc.boolean() }),
    { maxLength: 6 },
  ).map((xs) => {
    const instances: Placed[] = xs.map((x, i) => ({ ...x, slug: `${s.name}-i${i}` }));
    // The server's load and reservations include its instances'.
    return { ...s, busyCores: s.busyCores + instances.reduce((a, i) => a + i.busyCores, 0), memoryMbReserved: s.memoryMbReserved + instances.reduce((a, i) => a + i.memoryMb, 0), instances };
  }))));
  fc.assert(fc.property(withInstances, (ss) => {
    const plans = consolidationPlans(ss);
    for (let i = 1; i < plans.length; i++) if (plans[i - 1]!.kWhPerMonthOff < plans[i]!.kWhPerMonthOff) return false;
    for (const plan of plans) {
      const emptied = ss.find((s) => s.name === plan.empties)!;
      // Every instance of the emptied server moves, once, to another server.
      if (plan.moves.length !== emptied.instances.length) return false;
      if (new Set(plan.moves.map((m) => m.slug)).size !== emptied.instances.length) return false;
      if (plan.moves.some((m) => m.to === plan.empties || m.from !== plan.empties)) return false;
      // Applied, the moves keep every other server within its room, and the load is conserved.
      const after = ss.filter((s) => s !== emptied).map((s) => ({ ...s }));
      for (const m of plan.moves) {
        const inst = emptied.instances.find((i) => i.slug === m.slug)!;
        const to = after.find((s) => s.name === m.to)!;
        if (refusal(to, inst) !== undefined) return false;
        to.busyCores += inst.busyCores; to.memoryMbReserved += inst.memoryMb;
        if (inst.stateful !== m.stateful) return false;
      }
      const moved = emptied.instances.reduce((a, i) => a + i.busyCores, 0);
      const othersBefore = ss.filter((s) => s !== emptied).reduce((a, s) => a + s.busyCores, 0);
      if (Math.abs(after.reduce((a, s) => a + s.busyCores, 0) - (othersBefore + moved)) > 1e-6) return false;
      // Its figures are the curves' at those loads: 730 hours a month.
      const off = after.reduce((a, s) => a + wattsNow(s), 0);
      if (Math.abs(plan.wattsOff - off) > 1e-6) return false;
      if (Math.abs(plan.kWhPerMonthOff - Math.round((plan.wattsNow - off) * 730 / 100) / 10) > 1e-9) return false;
      if (plan.kWhPerMonthOff <= 0 && plan.wattsNow - off > 0.07) return false;
    }
    return true;
  }), { numRuns: 1500 });
  t.pass('1,500 generated fleets');

  const mk = (id: number, name: string, idle: number, max: number, inst: Placed[]): ServerLoad & { instances: Placed[] } => ({
    id, name, energy: { idleWatts: idle, maxWatts: max, embodiedKgCo2e: 1000, serviceLifeYears: 6 }, cores: 8, memoryMb: 16384,
    busyCores: 0.2 + inst.reduce((a, i) => a + i.busyCores, 0), memoryMbReserved: inst.reduce((a, i) => a + i.memoryMb, 0), instances: inst,
  });
  const plans = consolidationPlans([
    mk(1, 'ancien', 120, 300, [{ slug: 'courriel', busyCores: 0.3, memoryMb: 512, stateful: true }, { slug: 'sonde', busyCores: 0.1, memoryMb: 32, stateful: false }]),
    mk(2, 'neuf', 40, 120, [{ slug: 'pads', busyCores: 0.4, memoryMb: 256, stateful: true }]),
  ]);
  t.equal(plans[0]!.empties, 'ancien', 'the old server is the one to empty');
  t.same(plans[0]!.moves, [{ slug: 'courriel', from: 'ancien', to: 'neuf', stateful: true }, { slug: 'sonde', from: 'ancien', to: 'neuf', stateful: false }]);
  // Before: ancien at 0.6/8 cores = 133.5 W, neuf at 0.6/8 = 46 W. After: neuf at 1.0/8 = 50 W; ancien off.
  t.equal(Math.round(plans[0]!.wattsNow * 10) / 10, 179.5);
  t.equal(plans[0]!.wattsOff, 50);
  t.equal(plans[0]!.kWhPerMonthOff, 94.5, '129.5 W less for 730 hours');
  t.equal(Math.round(plans[0]!.wattsIdle * 100) / 100, 50 + 124.5, 'left on at rest, ancien still draws its idle and the host\'s own work');
});
