// The Swarm service spec, without an engine: for every service of the catalog and generated instances, each hardening
// of today's container (container-spec.ts) is carried over to the service, a stateful instance is pinned to its server
// and a stateless one is not, and what Swarm cannot carry is refused. tests/orchestrator/swarm.test.ts reads the same
// settings back from the running tasks' containers on their nodes.
import t from 'tap';
import fc from 'fast-check';
import { loadValidCatalog } from '../../src/catalog/load.js';
import { buildContainerSpec } from '../../src/orchestrator/docker/container-spec.js';
import { buildOverlaySpec, buildServiceSpec, serviceName } from '../../src/orchestrator/docker/swarm-spec.js';
import { isCatteryError } from '../../src/errors.js';
import { TEST_CATALOG } from '../helpers.js';

const catalog = loadValidCatalog(TEST_CATALOG);
const manifests = [...catalog.services.values()].map((s) => s.manifest);

const slug = fc.stringMatching(/^[a-z][a-z0-9-]{1,30}$/);
const server = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,20}$/);
const hoster = fc.stringMatching(/^t[0-9a-f]{8}$/);
const arbInstance = fc.record({
  manifest: fc.constantFrom(...manifests), slug, server, hoster, generation: fc.integer({ min: 1, max: 1000 }), encrypted: fc.boolean(),
  nodeId: fc.option(fc.stringMatching(/^[a-z0-9]{25}$/), { nil: undefined }),
});

t.test('every service, generated instances: the service carries every hardening of the container', async (t) => {
  t.ok(manifests.length >= 5, 'the whole catalog');
  fc.assert(fc.property(arbInstance, ({ manifest: m0, slug: s, server: srv, hoster: h, generation, encrypted, nodeId }) => {
    const m = { ...m0, network: { encrypted } };
    const secrets = Object.fromEntries(Object.entries(m.environment).filter(([, v]) => 'secret' in v).map(([k]) => [k, 'x'.repeat(24)]));
    const instance = { slug: s, generation, service: m.id, image: `cattery/${m.id}:0123456789ab`, config: { ports: {}, secrets, env: {} } };
    const spec = buildServiceSpec({ hosterId: h, manifest: m, instance, serverName: srv, nodeId });
    const ctr = buildContainerSpec({ hosterId: h, manifest: m, instance, server: { publishAddress: '127.0.0.1' } });
    const task = spec.TaskTemplate as { ContainerSpec: Record<string, unknown>; Resources: { Limits: Record<string, number> }; Placement: { Constraints: string[] }; Networks: { Target: string }[]; LogDriver: unknown };
    const c = task.ContainerSpec as { CapabilityDrop: string[]; CapabilityAdd: string[]; ReadOnly: boolean; Mounts: { Type: string; Source?: string; Target: string }[]; Env: string[]; User?: string; Command?: string[]; Privileges?: unknown; Image: string; Init: boolean };
    const hc = ctr.HostConfig!;
    if (JSON.stringify(c.CapabilityDrop) !== '["ALL"]') return false;
    if (JSON.stringify(c.CapabilityAdd) !== JSON.stringify(hc.CapAdd)) return false;
    if (c.ReadOnly !== hc.ReadonlyRootfs || c.Init !== false || c.Privileges !== undefined) return false;
    if (task.Resources.Limits.MemoryBytes !== hc.Memory || task.Resources.Limits.NanoCPUs !== hc.NanoCpus || task.Resources.Limits.Pids !== hc.PidsLimit) return false;
    if (JSON.stringify(c.Env) !== JSON.stringify(ctr.Env) || c.User !== ctr.User || JSON.stringify(c.Command) !== JSON.stringify(ctr.Cmd)) return false;
    if (c.Image !== ctr.Image) return false;
    // Only the instance's named volumes and its tmpfs: never a bind, never another's volume.
    const volumes = c.Mounts.filter((x) => x.Type === 'volume');
    if (c.Mounts.some((x) => x.Type !== 'volume' && x.Type !== 'tmpfs')) return false;
    if (JSON.stringify(volumes.map((v) => [v.Source, v.Target])) !== JSON.stringify((hc.Mounts ?? []).map((v) => [v.Source, v.Target]))) return false;
    if (JSON.stringify(c.Mounts.filter((x) => x.Type === 'tmpfs').map((x) => x.Target)) !== JSON.stringify(Object.keys(hc.Tmpfs ?? {}))) return false;
    // One network, the instance's own; no published port (a Swarm port would listen on every node).
    if (task.Networks.length !== 1 || task.Networks[0]!.Target !== hc.NetworkMode) return false;
    // No alias on the overlay: only the service's own name, unique in the swarm, resolves (the door is on many overlays).
    if ((task.Networks[0] as { Aliases?: string[] }).Aliases !== undefined) return false;
    if ((spec.EndpointSpec?.Ports ?? []).length !== 0) return false;
    if (JSON.stringify(task.LogDriver) !== JSON.stringify({ Name: hc.LogConfig!.Type, Options: hc.LogConfig!.Config })) return false;
    // Placement: only on nodes with no-new-privileges; pinned to its server exactly when it has a volume, and to
    // the node that server joined as when it is known (a server joined again is a new node, without the data).
    const cs = task.Placement.Constraints;
    if (!cs.includes('node.labels.cattery.no-new-privileges==true')) return false;
    const pinned = cs.includes(`node.labels.cattery.server==${srv}`);
    const toNode = nodeId !== undefined && cs.includes(`node.id==${nodeId}`);
    if (pinned !== m.volumes.length > 0 || toNode !== (pinned && nodeId !== undefined)) return false;
    if (cs.length !== 1 + (pinned ? 1 : 0) + (toNode ? 1 : 0)) return false;
    if (spec.EndpointSpec?.Mode !== 'dnsrr') return false;
    if (spec.Name !== serviceName(h, s) || spec.Labels['cattery.hoster'] !== h || spec.Labels['cattery.generation'] !== String(generation)) return false;
    if (spec.Mode?.Replicated?.Replicas !== 1) return false;
    const net = buildOverlaySpec(h, m, instance);
    return net.Name === hc.NetworkMode && net.Attachable === (m.http !== undefined) && (net.Options.encrypted === 'true') === encrypted && net.Labels['cattery.hoster'] === h;
  }), { numRuns: 300 });
});

t.test('what Swarm cannot carry is refused, never dropped', async (t) => {
  const m = catalog.services.get('probe')!.manifest;
  const base = { slug: 'p', generation: 1, service: 'probe', image: 'cattery/probe:x', config: { ports: {}, secrets: {}, env: {} } };
  const refused = (config: object, serverName = 'n1') => {
    try { buildServiceSpec({ hosterId: 'tabc', manifest: m, instance: { ...base, config: { ...base.config, ...config } }, serverName }); return undefined; } catch (err) { return err; }
  };
  const e1 = refused({ publicPorts: { address: '192.0.2.1', ports: { http: 80 } } });
  t.ok(isCatteryError(e1) && e1.code === 'CATTERY_ERR_MANIFEST_UNSAFE', 'well-known public ports');
  const e2 = refused({ links: [{ name: 'l', targetId: 1, targetSlug: 'x' }] });
  t.ok(isCatteryError(e2) && e2.code === 'CATTERY_ERR_MANIFEST_UNSAFE', 'links');
  // A server name that would change the meaning of the constraint (a second expression, a space) is refused.
  fc.assert(fc.property(fc.string({ minLength: 1, maxLength: 30 }).filter((s) => !/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(s)), (name) => {
    const e = refused({}, name);
    return isCatteryError(e) && e.code === 'CATTERY_ERR_VALIDATION';
  }));
  t.equal(refused({}), undefined, 'the plain probe is accepted');
});
