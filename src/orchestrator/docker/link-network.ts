// The network that carries one declared link (orchestrator/links.ts): an internal bridge (no gateway out, Docker's
// `Internal`) holding exactly two containers, the linking instance's and the linked one's, the latter under the
// name on its certificate (a network alias). Like the front door's networks it belongs to no instance: it carries
// the role `link`, so the orphan sweep leaves it to the link pass (orchestrator/link-pass.ts), which removes it
// when either instance goes. Each container gets a fixed address in the link's /28, so that cattery's firewall can
// open only the declared ports from one to the other before either joins (orchestrator/firewall.ts).
import crypto from 'node:crypto';
import type Docker from 'dockerode';
import { LABEL_HOSTER, LABEL_ROLE, call, isOurs, statusOf, unless, type Engine } from './engine.js';
import { containerName } from './container-spec.js';

export const ROLE_LINK = 'link';
export const LABEL_LINK_SOURCE = 'cattery.link.source';
export const LABEL_LINK_TARGET = 'cattery.link.target';
const LABEL_SPEC = 'cattery.spec';

/** `--` after the hoster id never starts an instance's own names (ingressNames says why); `.` occurs in no slug nor
 * link name, so source and link name cannot run into each other. */
export function linkNetworkName(hosterId: string, sourceSlug: string, linkName: string): string {
  return `${hosterId}--link-${sourceSlug}.${linkName}`;
}

export interface LinkNetworkWanted {
  name: string;
  /** The link's /28 (orchestrator/subnets.ts). */
  subnet: string;
  source: { slug: string; container: string };
  target: { slug: string; container: string; alias: string };
}

/** The fixed addresses in a link's /28: the bridge (gateway, though nothing is routed out), the linked container,
 * the linking one. */
export function linkAddresses(subnet: string): { gateway: string; target: string; source: string } {
  const [base] = subnet.split('/');
  const o = base!.split('.').map(Number);
  const at = (n: number) => `${o[0]}.${o[1]}.${o[2]}.${o[3]! + n}`;
  return { gateway: at(1), target: at(2), source: at(3) };
}

function specHash(w: LinkNetworkWanted): string {
  return crypto.createHash('sha256').update(JSON.stringify([w.subnet, w.source, w.target])).digest('hex').slice(0, 16);
}

/** Idempotent: the link network exists as wanted (a network of an older spec, another alias or other members, is
 * removed first); returns its id. Its members are ensureLinkMembers'. */
export async function ensureLinkNetwork(engine: Engine, w: LinkNetworkWanted): Promise<string> {
  const labels = {
    [LABEL_HOSTER]: engine.hosterId, [LABEL_ROLE]: ROLE_LINK, [LABEL_LINK_SOURCE]: w.source.slug, [LABEL_LINK_TARGET]: w.target.slug,
    [LABEL_SPEC]: specHash(w),
  };
  const create = () => call(engine, `create link network ${w.name}`, (d) => d.createNetwork({
    Name: w.name, Driver: 'bridge', Internal: true, CheckDuplicate: true, Labels: labels,
    IPAM: { Driver: 'default', Config: [{ Subnet: w.subnet, Gateway: linkAddresses(w.subnet).gateway }] },
  }));
  try {
    return (await create()).id;
  } catch (err) {
    if (statusOf(err) !== 409) throw err;
  }
  const existing = await call(engine, `inspect network ${w.name}`, (d) => d.getNetwork(w.name).inspect()) as Docker.NetworkInspectInfo;
  if (!isOurs(engine, existing.Labels) || existing.Labels?.[LABEL_ROLE] !== ROLE_LINK) {
    throw new Error(`network ${w.name} exists and is not a cattery link network`);
  }
  if (existing.Labels?.[LABEL_SPEC] === labels[LABEL_SPEC]) return existing.Id;
  const was = [existing.Labels?.[LABEL_LINK_SOURCE], existing.Labels?.[LABEL_LINK_TARGET]];
  await removeLinkNetwork(engine, existing.Id, w.name, was.flatMap((s) => (s ? [containerName(engine.hosterId, s)] : [])));
  return (await create()).id;
}

/** The link network holds exactly its two containers: a missing one joins (the linked one under its alias, each at
 * its fixed address), anything else is let go. A container not made yet is left for the next pass; the names of the
 * ones still missing are returned. */
export async function ensureLinkMembers(engine: Engine, networkId: string, w: LinkNetworkWanted): Promise<string[]> {
  const net = await call(engine, `inspect link network ${w.name}`, (d) => d.getNetwork(networkId).inspect()) as Docker.NetworkInspectInfo;
  const present = new Map(Object.entries(net.Containers ?? {}).map(([id, c]) => [c.Name, id]));
  const ips = linkAddresses(w.subnet);
  const wanted = [
    { container: w.target.container, aliases: [w.target.alias], ip: ips.target },
    { container: w.source.container, aliases: [] as string[], ip: ips.source },
  ];
  for (const [name, id] of present) {
    if (wanted.some((m) => m.container === name)) continue;
    await call(engine, `disconnect ${name} from ${w.name}`, (d) => d.getNetwork(networkId).disconnect({ Container: id, Force: true })).catch(unless(404));
  }
  const missing: string[] = [];
  // The network lists running containers only: a stopped member is connected again (Docker takes that as a no-op).
  for (const m of wanted.filter((x) => !present.has(x.container))) {
    const joined = await call(engine, `connect ${m.container} to ${w.name}`, (d) => d.getNetwork(networkId).connect({
      Container: m.container, EndpointConfig: { Aliases: m.aliases, IPAMConfig: { IPv4Address: m.ip } },
    })).then(() => true, (err) => {
      // 404: the container is not made yet (or is being replaced): the next pass joins it. 403/409: joined already.
      const status = statusOf(err) ?? 0;
      if (status === 404) return false;
      if (status === 403 || status === 409) return true;
      throw err;
    });
    if (!joined) missing.push(m.container);
  }
  return missing;
}

/** Idempotent: every container let go, then the network removed (404 counts as done). `members`: the link's two
 * containers by name, let go as well even when stopped. Docker lists only running containers on a network and removes
 * a network a stopped container still names; that container would then never start again ("network not found"). */
export async function removeLinkNetwork(engine: Engine, id: string, name: string, members: readonly string[]): Promise<void> {
  const net = await call(engine, `inspect link network ${name}`, (d) => d.getNetwork(id).inspect()).catch(unless(404)) as Docker.NetworkInspectInfo | undefined;
  if (!net) return;
  for (const containerId of Object.keys(net.Containers ?? {})) {
    await call(engine, `disconnect ${containerId} from ${name}`, (d) => d.getNetwork(id).disconnect({ Container: containerId, Force: true })).catch(unless(404));
  }
  for (const container of members) {
    // Gone (404) or not on it (Docker says so with a 500): either way it no longer names this network.
    await call(engine, `disconnect ${container} from ${name}`, (d) => d.getNetwork(id).disconnect({ Container: container, Force: true })).catch(() => undefined);
  }
  await call(engine, `remove link network ${name}`, (d) => d.getNetwork(id).remove()).catch(unless(404));
}
