// `cattery guard deploy` on the manager: the node guard on every Swarm node (agent/guard.ts: its image built here and
// carried to each node, the global service given the swarm's node addresses). Run again after a server joined or
// left (`cattery servers join` does it by itself when a guard is deployed); unchanged when nothing changed.
import { parseArgs } from 'node:util';
import { loadConfig } from '../config.js';
import { createLogger } from '../log.js';

const USAGE = `usage: cattery guard deploy [--interval S]     (on the manager: the node guard on every Swarm node)`;
const out = (line: string) => process.stdout.write(`${line}\n`);

export async function guardCommand(sub: string | undefined, rest: string[]): Promise<number> {
  if (sub !== 'deploy') { process.stderr.write(`${USAGE}\n`); return 2; }
  const { values } = parseArgs({ args: rest, options: { interval: { type: 'string' } } });
  const interval = values.interval !== undefined ? Number(values.interval) : undefined;
  if (interval !== undefined && !(Number.isInteger(interval) && interval >= 1 && interval <= 300)) { process.stderr.write(`--interval: whole seconds, 1 to 300\n${USAGE}\n`); return 2; }
  const config = loadConfig();
  const log = createLogger(config.logLevel);
  const [{ applyMigrations, openDb }, { ensureDefaultServer }, docker, { deployGuard }, { buildWorkDir }] = await Promise.all([
    import('../db/connection.js'), import('../orchestrator/servers.js'), import('../orchestrator/docker/index.js'), import('../agent/guard.js'),
    import('../orchestrator/docker/images.js'),
  ]);
  const db = openDb(config.dbFile);
  try {
    applyMigrations(db);
    const engineOf = (s: { dockerEndpoint: string; name: string }) => docker.connectEngine(s.dockerEndpoint, {
      hosterId: config.hosterId, timeoutSeconds: config.dockerTimeoutSeconds, log: log.child({ server: s.name }),
    });
    // The first server is the swarm's manager (`cattery servers swarm-init`) and this host's engine builds the image.
    const manager = engineOf(ensureDefaultServer(db, config.dockerEndpoint, config.publishAddress));
    const d = await deployGuard({
      db, manager, build: manager, engineOf, hosterId: config.hosterId, workDir: buildWorkDir(config.dataDir), log,
      progress: (l) => log.info(l), ...(interval ? { intervalSeconds: interval } : {}),
    });
    out(`guard image ${d.image}, service ${d.service}; nodes guarded against: ${d.nodeAddrs.join(' ') || '-'}`);
  } finally { db.$client.close(); }
  return 0;
}
