// One server's links, converged after its instances in each reconcile pass (level-triggered like the rest): every
// link whose two instances are meant to exist has its network, with exactly its two containers on it (a container
// made again for a new generation joins again), and cattery's firewall opening only the declared ports; every link
// network no link wants any more (either instance deleted, a link changed) has its containers let go and is
// removed. What a broken link means for the linking instance (its observed error) is instance-pass.ts's.
import type { Catalog } from '../catalog/load.js';
import type { Instance } from '../db/schema.js';
import type { Logger } from '../log.js';
import {
  LABEL_LINK_SOURCE, LABEL_LINK_TARGET, LABEL_ROLE, ROLE_LINK, containerName, ensureLinkMembers, ensureLinkNetwork, isLocalEndpoint,
  linkAddresses, linkNetworkName, removeLinkNetwork, type Engine, type LinkNetworkWanted, type Managed,
} from './docker/index.js';
import { bridgeOf, type Firewall, type LinkRule } from './firewall.js';
import type { LinkHostOf } from './links.js';
import type { ServerContext } from './instance-pass.js';

export interface LinkPassDeps {
  catalog: Catalog;
  hosterId: string;
  log: Logger;
  firewall?: Firewall | undefined;
  linkHostOf?: LinkHostOf | undefined;
}

export interface WantedLink { network: LinkNetworkWanted; rule: LinkRule }

/** The link networks this server's rows want (pure): one per link whose two instances are both meant to exist. */
export function wantedLinks(deps: Pick<LinkPassDeps, 'catalog' | 'hosterId' | 'linkHostOf'>, rows: readonly Instance[]): WantedLink[] {
  const live = new Map(rows.filter((r) => r.desired !== 'deleted').map((r) => [r.id, r]));
  const out: WantedLink[] = [];
  for (const source of live.values()) {
    for (const link of source.config.links ?? []) {
      const target = live.get(link.targetId);
      const decl = deps.catalog.services.get(source.service)?.manifest.links?.find((d) => d.name === link.name);
      const tm = target && deps.catalog.services.get(target.service)?.manifest;
      if (!target || !decl || !tm || !deps.linkHostOf) continue;
      const ips = linkAddresses(link.subnet);
      out.push({
        network: {
          name: linkNetworkName(deps.hosterId, source.slug, link.name),
          subnet: link.subnet,
          source: { slug: source.slug, container: containerName(deps.hosterId, source.slug) },
          target: { slug: target.slug, container: containerName(deps.hosterId, target.slug), alias: deps.linkHostOf(target) },
        },
        rule: {
          source: ips.source, target: ips.target,
          ports: tm.ports.filter((p) => decl.ports.includes(p.name)).map((p) => ({ port: p.container, protocol: p.protocol ?? 'tcp' })),
        },
      });
    }
  }
  return out;
}

/** Converge the server's link networks to `rows` (read at the start of the pass, deletions included). A link that
 * cannot be made now is logged and tried again next pass; it never holds up the others. */
export async function convergeLinks(deps: LinkPassDeps, ctx: Pick<ServerContext, 'engine' | 'server'>, rows: readonly Instance[], managed: Managed): Promise<boolean> {
  const wanted = wantedLinks(deps, rows);
  const names = new Set(wanted.map((w) => w.network.name));
  const local = isLocalEndpoint(ctx.server.dockerEndpoint);
  let ok = true;
  for (const n of managed.networks.filter((x) => x.Labels?.[LABEL_ROLE] === ROLE_LINK && !names.has(x.Name))) {
    const members = [n.Labels?.[LABEL_LINK_SOURCE], n.Labels?.[LABEL_LINK_TARGET]].flatMap((s) => (s ? [containerName(deps.hosterId, s)] : []));
    try {
      await removeLinkNetwork(ctx.engine, n.Id, n.Name, members);
      if (local) await deps.firewall?.releaseLink(bridgeOf(n.Id));
      deps.log.info({ network: n.Name }, 'link network removed');
    } catch (err) {
      ok = false;
      deps.log.warn({ err, network: n.Name }, 'link network not removed');
    }
  }
  for (const w of wanted) {
    try {
      const id = await ensureLinkNetwork(ctx.engine, w.network);
      // Before either container joins: only the declared ports are open between them.
      if (local) await deps.firewall?.guardLink(bridgeOf(id), w.rule);
      const missing = await ensureLinkMembers(ctx.engine, id, w.network);
      if (missing.length) deps.log.debug({ network: w.network.name, missing }, 'link waits for its containers');
    } catch (err) {
      ok = false;
      deps.log.warn({ err, network: w.network.name }, 'link network not converged');
    }
  }
  return ok;
}
