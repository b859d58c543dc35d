// Placement never chooses a server whose Swarm node takes nothing new (orchestrator/placement.ts nodeUnavailable): a
// node an administrator set to drain or pause, one that is not ready (down, disconnected, unknown), a server no node
// carries the label of, or any swarm server while the manager does not answer. As properties over generated fleets of
// swarm and plain servers: a new instance, a drain's moves and a consolidation plan's moves all go to available
// servers only, and a refusal comes only when no available server has room.
import t from 'tap';
import fc from 'fast-check';
import {
  CPU_HEADROOM, consolidationPlans, nodeUnavailable, place, refusal, type NodeAvailability, type Placed, type ServerLoad,
} from '../../src/orchestrator/placement.js';
import { planDrain, type DrainCandidate } from '../../src/orchestrator/relocate.js';
import { isCatteryError } from '../../src/errors.js';

const energy = { idleWatts: 40, maxWatts: 200, embodiedKgCo2e: 1000, serviceLifeYears: 6 };
const AVAILABILITY = ['active', 'drain', 'pause'] as const;
const STATE = ['ready', 'down', 'unknown', 'disconnected'] as const;

/** A server as generated: its swarm role, its node as the manager lists it (or none), its load. */
interface Generated { load: ServerLoad; role: 'manager' | 'worker' | null; node: NodeAvailability | null }

const serverAt = (id: number) => fc.record({
  role: fc.constantFrom('manager', 'worker', null),
  node: fc.option(fc.record({ availability: fc.constantFrom(...AVAILABILITY), state: fc.constantFrom(...STATE) }), { freq: 5 }),
  cores: fc.integer({ min: 1, max: 16 }), memoryMb: fc.integer({ min: 256, max: 8192 }),
  busy: fc.double({ min: 0, max: 1, noNaN: true }), reserved: fc.double({ min: 0, max: 1, noNaN: true }),
  idle: fc.integer({ min: 5, max: 200 }),
}).map((r): Generated => ({
  role: r.role,
  node: r.node ? { server: `s${id}`, ...r.node } : null,
  load: {
    id, name: `s${id}`, energy: { ...energy, idleWatts: r.idle, maxWatts: r.idle + 160 }, cores: r.cores, memoryMb: r.memoryMb,
    busyCores: r.busy * r.cores * CPU_HEADROOM, memoryMbReserved: Math.floor(r.reserved * r.memoryMb),
  },
}));
const fleetOf = fc.integer({ min: 1, max: 6 }).chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => serverAt(i + 1))));
/** The manager answers (its node list) or not (undefined). */
const answers = fc.boolean();

/** The fleet as fleet() returns it: each server's `unavailable` from the nodes the manager listed. */
function loads(gs: readonly Generated[], managerAnswers: boolean): ServerLoad[] {
  const nodes = managerAnswers ? gs.flatMap((g) => (g.node ? [g.node] : [])) : undefined;
  return gs.map((g) => {
    const why = nodeUnavailable({ name: g.load.name, swarmRole: g.role }, nodes);
    return why === undefined ? { ...g.load } : { ...g.load, unavailable: why };
  });
}
/** Whether Swarm would start a task there: a plain server, or a node active and ready that the manager listed. */
const takesWork = (g: Generated, managerAnswers: boolean) => g.role === null || (managerAnswers && g.node?.availability === 'active' && g.node.state === 'ready');

const demand = fc.record({ busyCores: fc.double({ min: 0, max: 2, noNaN: true }), memoryMb: fc.integer({ min: 16, max: 4096 }) });

t.test('a new instance never goes to a drained, paused or absent node, and is refused only when no available server has room', async (t) => {
  fc.assert(fc.property(fleetOf, answers, demand, (gs, up, d) => {
    const ls = loads(gs, up);
    for (const [i, g] of gs.entries()) if ((ls[i]!.unavailable === undefined) !== takesWork(g, up)) return false;
    const roomy = ls.filter((s, i) => takesWork(gs[i]!, up) && s.memoryMbReserved + d.memoryMb <= s.memoryMb && s.busyCores + d.busyCores <= CPU_HEADROOM * s.cores);
    let p;
    try { p = place(ls, d); } catch (err) {
      if (!isCatteryError(err) || err.code !== 'CATTERY_ERR_CAPACITY') throw err;
      return roomy.length === 0;
    }
    const chosen = gs.find((g) => g.load.id === p.server.id)!;
    return takesWork(chosen, up) && p.candidates.filter((c) => c.refused === 'unavailable').length === ls.filter((s) => s.unavailable !== undefined).length;
  }), { numRuns: 2000 });
  t.pass('2,000 generated fleets');

  // The cases by name: each reason is said, and a plain engine is never judged by a swarm it is not in.
  const nodes: NodeAvailability[] = [
    { server: 'a', availability: 'active', state: 'ready' }, { server: 'b', availability: 'drain', state: 'ready' },
    { server: 'c', availability: 'pause', state: 'ready' }, { server: 'd', availability: 'active', state: 'down' },
  ];
  t.equal(nodeUnavailable({ name: 'a', swarmRole: 'worker' }, nodes), undefined);
  t.match(nodeUnavailable({ name: 'b', swarmRole: 'worker' }, nodes), /drain/);
  t.match(nodeUnavailable({ name: 'c', swarmRole: 'manager' }, nodes), /pause/);
  t.match(nodeUnavailable({ name: 'd', swarmRole: 'worker' }, nodes), /down/);
  t.match(nodeUnavailable({ name: 'e', swarmRole: 'worker' }, nodes), /no swarm node/);
  t.match(nodeUnavailable({ name: 'a', swarmRole: 'worker' }, undefined), /manager does not answer/);
  t.equal(nodeUnavailable({ name: 'b', swarmRole: null }, nodes), undefined, 'a plain server');
  const roomy: ServerLoad = { id: 1, name: 'b', energy, cores: 8, memoryMb: 8192, busyCores: 0, memoryMbReserved: 0, unavailable: 'its swarm node is set to drain' };
  t.equal(refusal(roomy, { busyCores: 0.1, memoryMb: 64 }), 'unavailable', 'room does not make a drained node available');
  t.throws(() => place([roomy], { busyCores: 0.1, memoryMb: 64 }), { code: 'CATTERY_ERR_CAPACITY', message: /b: its swarm node is set to drain/ }, 'and the refusal says why');
});

const candidates = fc.uniqueArray(fc.record({
  slug: fc.stringMatching(/^[a-z][a-z0-9-]{1,10}[a-z0-9]$/), busyCores: fc.double({ min: 0, max: 2, noNaN: true }),
  memoryMb: fc.integer({ min: 16, max: 4096 }), stateful: fc.boolean(), healthy: fc.boolean(),
}), { selector: (c) => c.slug, maxLength: 10 });

t.test('a drain and a consolidation plan move nothing onto a server that takes nothing new', async (t) => {
  fc.assert(fc.property(fleetOf, answers, candidates, (gs, up, cs: DrainCandidate[]) => {
    const ls = loads(gs, up);
    const closed = new Set(ls.filter((s) => s.unavailable !== undefined).map((s) => s.name));
    // The drained server is the first one, available or not (an administrator drains its node, then asks cattery).
    const plan = planDrain(ls[0]!.name, ls.slice(1), cs, true);
    if (plan.moves.some((m) => closed.has(m.to))) return false;
    const withInstances = ls.map((s, i) => ({ ...s, instances: i === 0 ? cs.map((c): Placed => ({ slug: c.slug, busyCores: c.busyCores, memoryMb: c.memoryMb, stateful: c.stateful })) : [] }));
    return consolidationPlans(withInstances).every((p) => p.moves.every((m) => !closed.has(m.to)));
  }), { numRuns: 1000 });
  t.pass('1,000 generated drains and plans');
});
