// The reconciler's decisions, without an engine or a database (src/orchestrator/converge.ts), and the parsing of
// Docker's event stream (src/orchestrator/docker/events.ts). The Docker tier (tests/docker/) runs them for real.
import t from 'tap';
import {
  adoption, backoffSeconds, isConverged, isDue, nextAction, observedOf, planUnits, unitsBySlug,
} from '../../src/orchestrator/converge.js';
import { parseEventChunk } from '../../src/orchestrator/docker/events.js';
import type { Unit, UnitState } from '../../src/orchestrator/docker/index.js';

const T0 = Date.parse('2030-01-01T00:00:00.000Z');
const state = (s: Partial<UnitState>): UnitState => ({ running: true, exitCode: 0, error: '', health: undefined, startedAt: new Date(T0).toISOString(), ...s });
const unit = (id: string, name: string, generation: string, extra: Record<string, string> = {}): Unit => ({
  id, names: [`/${name}`], labels: { 'cattery.hoster': 'h', 'cattery.instance': 'alpha', 'cattery.generation': generation, ...extra }, running: true,
});

t.test('backoff doubles from 2 s and stops at its cap', async (t) => {
  t.same([1, 2, 3, 8, 9, 20].map((a) => backoffSeconds(a)), [2, 4, 8, 256, 300, 300]);
  t.equal(backoffSeconds(5, 10), 10, 'a test may ask for a shorter cap');
});

t.test('an instance in backoff waits, unless named', async (t) => {
  const later = new Date(T0 + 60_000).toISOString();
  t.equal(isDue(null, false, T0), true);
  t.equal(isDue(later, false, T0), false);
  t.equal(isDue(later, true, T0), true, 'a change or an event naming it skips the backoff');
  t.equal(isDue(new Date(T0 - 1).toISOString(), false, T0), true);
});

t.test('observed state from what the engine shows', async (t) => {
  t.same(observedOf(state({ running: false }), 'stopped', 60, T0), { observed: 'stopped' });
  t.same(observedOf(state({ running: false, exitCode: 3, error: 'boom' }), 'running', 60, T0),
    { observed: 'failed', problem: 'container exited with code 3: boom' });
  t.same(observedOf(state({ running: false, exitCode: 1 }), 'running', 60, T0), { observed: 'failed', problem: 'container exited with code 1' });
  t.same(observedOf(state({ health: 'healthy' }), 'running', 60, T0), { observed: 'healthy' });
  t.same(observedOf(state({ health: 'unhealthy' }), 'running', 60, T0), { observed: 'unhealthy', problem: 'health check failing' });
  t.same(observedOf(state({ health: 'starting' }), 'running', 60, T0 + 30_000), { observed: 'starting' });
  t.same(observedOf(state({ health: 'starting' }), 'running', 60, T0 + 90_000), { observed: 'unhealthy', problem: 'not healthy 90 s after start' });
  t.same(observedOf(state({}), 'running', 60, T0), { observed: 'running' }, 'no health check: running is all there is');
});

t.test('converged means what was asked is shown', async (t) => {
  t.ok(isConverged('running', 'running'));
  t.ok(isConverged('running', 'healthy'));
  t.ok(isConverged('stopped', 'stopped'));
  for (const o of ['starting', 'unhealthy', 'failed', 'pending', 'creating'] as const) t.notOk(isConverged('running', o), o);
  t.notOk(isConverged('stopped', 'running'));
  t.notOk(isConverged('deleted', 'stopped'));
});

t.test('which containers stay, which go', async (t) => {
  const name = 'h-alpha';
  const cur = unit('c1', name, '2');
  const old = unit('c0', name, '1');
  const dup = unit('c2', 'h-alpha-copy', '2');
  const twin = unit('c3', name, '2');
  const plan = planUnits([old, cur, dup, twin], name, 2);
  t.equal(plan.current?.id, 'c1', 'the first of this generation under the name is kept');
  t.same(plan.remove.map((r) => [r.unit.id, r.kind]), [['c0', 'container-replaced'], ['c2', 'container-removed'], ['c3', 'container-removed']]);
  t.same(planUnits([], name, 1), { current: undefined, remove: [] });
});

t.test('adopt this generation, replace an older one, never touch a stranger', async (t) => {
  const want = { hosterId: 'h', slug: 'alpha', generation: 2 };
  t.equal(adoption(unit('x', 'h-alpha', '2').labels, want), 'adopt');
  t.equal(adoption(unit('x', 'h-alpha', '1').labels, want), 'replace');
  t.equal(adoption({}, want), 'foreign');
  t.equal(adoption({ ...unit('x', 'h-alpha', '2').labels, 'cattery.hoster': 'other' }, want), 'foreign');
  t.equal(adoption({ ...unit('x', 'h-alpha', '2').labels, 'cattery.instance': 'alphabet' }, want), 'foreign');
});

t.test('start, stop, restart or nothing', async (t) => {
  const started = new Date(T0).toISOString();
  t.equal(nextAction('running', { running: false, startedAt: started }), 'start');
  t.equal(nextAction('stopped', { running: true, startedAt: started }), 'stop');
  t.equal(nextAction('stopped', { running: false, startedAt: started }), 'none');
  t.equal(nextAction('running', { running: true, startedAt: started }), 'none');
  t.equal(nextAction('running', { running: true, startedAt: started }, true), 'restart', 'a pending restart of a running unit is due');
  t.equal(nextAction('running', { running: false, startedAt: started }, true), 'start', 'a stopped container is started, not restarted');
  t.equal(nextAction('stopped', { running: true, startedAt: started }, true), 'stop', 'a restart never overrides a stop');
  t.equal(nextAction('stopped', { running: false, startedAt: started }, true), 'none');
});

t.test('containers by instance, helpers left out', async (t) => {
  const a = unit('a', 'h-alpha', '1');
  const helper = unit('b', 'h-alpha-archive', '1', { 'cattery.role': 'archive' });
  const other = { ...unit('c', 'h-beta', '1'), labels: { 'cattery.instance': 'beta' } };
  const map = unitsBySlug([a, helper, other]);
  t.same([...map.keys()].sort(), ['alpha', 'beta']);
  t.same(map.get('alpha')!.map((u) => u.id), ['a']);
});

t.test('event stream: lines across chunks, noise skipped', async (t) => {
  const ev = (slug: string, action: string) => JSON.stringify({ Action: action, Actor: { Attributes: { 'cattery.instance': slug } } });
  const whole = `${ev('alpha', 'die')}\n${ev('beta', 'start')}\n`;
  const cut = 30;
  const first = parseEventChunk('', whole.slice(0, cut));
  t.same(first.events, []);
  const second = parseEventChunk(first.rest, whole.slice(cut));
  t.same(second.events, [{ slug: 'alpha', action: 'die' }, { slug: 'beta', action: 'start' }]);
  t.equal(second.rest, '');
  const noisy = parseEventChunk('', `not json\n\n${JSON.stringify({ Action: 'start', Actor: { Attributes: {} } })}\n${ev('gamma', 'oom')}\npartial`);
  t.same(noisy.events, [{ slug: 'gamma', action: 'oom' }], 'unlabelled events and garbage are skipped');
  t.equal(noisy.rest, 'partial');
});
