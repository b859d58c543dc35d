// `cattery servers …`: the servers instances run on and, when one machine is not enough, the Docker Swarm they form
// (docs/swarm.md). Nothing here runs unless asked: a single server without Swarm works exactly as before.
import { parseArgs } from 'node:util';
import type { Config } from '../config.js';
import { fail } from '../errors.js';
import type { Logger } from '../log.js';
import type { Server } from '../db/schema.js';

const USAGE = `usage:
  cattery servers list          the servers and, on Swarm, each node's state and labels
  cattery servers swarm-init --advertise-addr ADDR [--disk CLASS] [--no-new-privileges] [--heartbeat-s N]
                                make the first server the swarm's manager and label its node (a node is seen
                                down after a few missed heartbeats: every N seconds, 5 unless said)
  cattery servers join-tokens   the tokens another engine joins with (a secret: whoever has it joins the swarm)
  cattery servers join NAME --endpoint URL --advertise-addr ADDR [--site SITE] [--disk CLASS] [--no-new-privileges]
                                [--insecure-plain-tcp]
                                add a server, join its engine to the swarm and label its node; URL is tcp://HOST:2376
                                (TLS: the client certificate in <data folder>/engine-certs/HOST/ca.pem, cert.pem,
                                key.pem); plain tcp:// to another machine only with --insecure-plain-tcp
  cattery servers label NAME [--site SITE] [--disk CLASS] [--no-new-privileges | --without-no-new-privileges]
                                set a node's labels (cattery.server, cattery.site, cattery.disk)
--no-new-privileges says that server's dockerd runs with "no-new-privileges": true (daemon.json): instances are only
placed on nodes that say so (Engine 20.10 cannot ask it per service; docs/swarm.md).`;

export type Out = (line: string) => void;
const stdout: Out = (line) => { process.stdout.write(`${line}\n`); };

export async function serversCommand(sub: string | undefined, rest: string[], config: Config, log: Logger, out: Out = stdout): Promise<number> {
  const { values, positionals } = parseArgs({
    args: rest, allowPositionals: true,
    options: {
      'advertise-addr': { type: 'string' }, endpoint: { type: 'string' }, site: { type: 'string' }, disk: { type: 'string' },
      'no-new-privileges': { type: 'boolean' }, 'without-no-new-privileges': { type: 'boolean' }, 'heartbeat-s': { type: 'string' },
      'insecure-plain-tcp': { type: 'boolean' },
    },
  });
  if (!sub || !['list', 'swarm-init', 'join-tokens', 'join', 'label'].includes(sub)) {
    process.stderr.write(`${USAGE}\n`);
    return sub === undefined ? 0 : 2;
  }
  const [{ applyMigrations, openDb }, docker, servers, { instancesOn }] = await Promise.all([
    import('../db/connection.js'), import('../orchestrator/docker/index.js'), import('../orchestrator/servers.js'), import('../orchestrator/instances.js'),
  ]);
  const db = openDb(config.dbFile);
  try {
    applyMigrations(db);
    const engineOf = (s: Pick<Server, 'dockerEndpoint' | 'name'>) => docker.connectEngine(s.dockerEndpoint, {
      hosterId: config.hosterId, timeoutSeconds: config.dockerTimeoutSeconds, log: log.child({ server: s.name }), certsDir: docker.engineCertsDir(config.dataDir),
    });
    // The first server is the swarm's manager: the one cattery already ran on alone.
    const first = servers.ensureDefaultServer(db, config.dockerEndpoint, config.publishAddress);
    const manager = engineOf(first);
    const nnp = values['no-new-privileges'] ? true : values['without-no-new-privileges'] ? false : undefined;
    const named = (name: string | undefined) => {
      const s = servers.listServers(db).find((x) => x.name === name);
      if (!s) throw fail('CATTERY_ERR_NOT_FOUND', `No server "${name ?? ''}"`);
      return s;
    };
    // A node is found by its label, else by asking its own engine which node it is.
    const nodeIdOf = async (s: Server) => {
      const byLabel = (await docker.listNodes(manager)).find((n) => n.server === s.name);
      return byLabel?.id ?? (await docker.swarmState(engineOf(s))).nodeId;
    };

    if (sub === 'list') {
      const st = await docker.swarmState(manager).catch((err: Error) => err);
      const nodes = !(st instanceof Error) && st.manager ? await docker.listNodes(manager) : [];
      const none = st instanceof Error ? `the first server's engine (the swarm's manager) does not answer: ${st.message}` : st.manager ? 'not a swarm node' : 'no swarm';
      // The isolation check (docs/swarm.md): what the node's agent measured, and whether the node guard runs there.
      const guarded = nodes.length ? await docker.guardRunningNodes(manager) : undefined;
      const checked = (s: Server, nodeId: string) => {
        const i = s.isolation;
        const nnpSeen = !i ? 'unchecked' : i.noNewPrivs === 'failed' ? `FAILED(${i.missing.join(',')})` : i.noNewPrivs;
        return ` measured-no-new-privileges=${nnpSeen} guard=${!guarded ? 'not-deployed' : guarded.has(nodeId) ? 'running' : 'NOT-RUNNING'}`;
      };
      for (const s of servers.listServers(db)) {
        const n = nodes.find((x) => x.server === s.name);
        const swarm = n ? `node ${n.hostname} ${n.role}${n.leader ? ' (leader)' : ''} ${n.state}/${n.availability} site=${n.site ?? ''} disk=${n.disk ?? ''} no-new-privileges=${n.noNewPrivileges} engine ${n.engineVersion}${checked(s, n.id)}` : none;
        out(`${s.name}  ${s.dockerEndpoint}  site ${s.site || '-'}  ${swarm}`);
      }
      for (const n of nodes.filter((x) => !x.server)) out(`(unlabelled node ${n.hostname} ${n.id} ${n.state}: cattery servers label NAME)`);
      return 0;
    }
    if (sub === 'swarm-init') {
      const addr = values['advertise-addr'];
      if (!addr) throw fail('CATTERY_ERR_VALIDATION', '--advertise-addr ADDR: the address other servers reach this one on');
      const heartbeat = values['heartbeat-s'] ? Number(values['heartbeat-s']) : undefined;
      if (heartbeat !== undefined && !(Number.isInteger(heartbeat) && heartbeat >= 1 && heartbeat <= 60)) throw fail('CATTERY_ERR_VALIDATION', '--heartbeat-s: whole seconds, 1 to 60');
      const st = await docker.ensureSwarmInit(manager, { advertiseAddr: addr, ...(heartbeat ? { heartbeatSeconds: heartbeat } : {}) });
      await docker.labelNode(manager, st.nodeId, { server: first.name, site: first.site, ...(values.disk ? { disk: values.disk } : {}), ...(nnp !== undefined ? { noNewPrivileges: nnp } : {}) });
      // From now on the reconciler runs this server's instances as Swarm services (docs/swarm.md).
      servers.setSwarmRole(db, first.id, 'manager', st.nodeId);
      out(`swarm ready; ${first.name} is its manager (node ${st.nodeId})`);
      out('add a server: cattery servers join NAME --endpoint tcp://… --advertise-addr ADDR');
      return 0;
    }
    if (sub === 'join-tokens') {
      const t = await docker.joinTokens(manager);
      out(`worker  ${t.worker}`);
      out(`manager ${t.manager}`);
      out(`by hand on a server: docker swarm join --token <worker token> ${t.managerAddrs.join(' ')}`);
      return 0;
    }
    if (sub === 'join') {
      const [name] = positionals;
      if (!name || !values.endpoint || !values['advertise-addr']) throw fail('CATTERY_ERR_VALIDATION', 'cattery servers join NAME --endpoint URL --advertise-addr ADDR');
      const mine = await docker.swarmState(manager);
      if (!mine.manager) throw fail('CATTERY_ERR_CONFLICT', 'no swarm yet: cattery servers swarm-init first');
      servers.checkServerName(name);
      servers.checkEndpoint(values.endpoint, values['insecure-plain-tcp'] === true);
      const all = servers.listServers(db);
      const known = all.find((x) => x.name === name);
      // One engine is one server: joining it under a second name would relabel the first one's node, and the first
      // one's pinned instances would lose it.
      const other = all.find((x) => x.name !== name && x.dockerEndpoint === values.endpoint);
      if (other) throw fail('CATTERY_ERR_CONFLICT', `the engine ${values.endpoint} is already server ${other.name}`);
      if (known && known.dockerEndpoint !== values.endpoint) throw fail('CATTERY_ERR_CONFLICT', `server ${name} is known with another endpoint (${known.dockerEndpoint})`);
      const server = known ?? servers.addServer(db, { name, dockerEndpoint: values.endpoint, ...(values.site ? { site: values.site } : {}) });
      const t = await docker.joinTokens(manager);
      const st = await docker.ensureSwarmJoin(engineOf(server), { managerAddrs: t.managerAddrs, token: t.worker, advertiseAddr: values['advertise-addr'], ...(mine.clusterId ? { clusterId: mine.clusterId } : {}) });
      const owner = all.find((x) => x.name !== name && x.swarmNodeId === st.nodeId);
      if (owner) throw fail('CATTERY_ERR_CONFLICT', `that engine is node ${st.nodeId}, which is server ${owner.name}`);
      // A server that was another node (reinstalled, its swarm state lost) holds instances pinned to the old node,
      // whose data is on the old disk: the new node must not take them onto empty volumes.
      if (server.swarmNodeId && server.swarmNodeId !== st.nodeId && instancesOn(db, server.id).length) {
        throw fail('CATTERY_ERR_CONFLICT', `server ${name} was node ${server.swarmNodeId}, which holds its instances' data; this engine joined as a new node (${st.nodeId}). `
          + `Restore its instances on another server first (POST /api/instances/<slug>/restore-elsewhere), or bring the old node back; the new node was left unlabelled`);
      }
      await docker.labelNode(manager, st.nodeId, { server: name, site: server.site, ...(values.disk ? { disk: values.disk } : {}), ...(nnp !== undefined ? { noNewPrivileges: nnp } : {}) });
      // Labelled first: a pinned instance placed on it finds its node by this label.
      servers.setSwarmRole(db, server.id, 'worker', st.nodeId);
      out(`${name} joined the swarm (node ${st.nodeId})`);
      // A deployed node guard is given the new node's address (every node's tasks are then cut from it too).
      const { refreshGuardNodes } = await import('../agent/guard.js');
      const guard = await refreshGuardNodes(manager);
      if (guard !== 'no guard') out(`the node guard guards its address now; \`cattery guard deploy\` carries the guard's image to ${name} (until then no instance is placed there)`);
      return 0;
    }
    // label
    const server = named(positionals[0]);
    const id = await nodeIdOf(server);
    await docker.labelNode(manager, id, { server: server.name, ...(values.site ? { site: values.site } : {}), ...(values.disk ? { disk: values.disk } : {}), ...(nnp !== undefined ? { noNewPrivileges: nnp } : {}) });
    out(`${server.name}: node ${id} labelled`);
    return 0;
  } finally { db.$client.close(); }
}
