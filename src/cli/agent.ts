// `cattery agent run` on a node (agent/agent.ts); `cattery agent token SERVER` on the manager, to issue the one-time
// enrolment token a node joins with; `cattery agent deploy` on the manager, to run the agent on every Swarm node
// (agent/deploy.ts: its image, the tokens as a secret, the global service).
import { parseArgs } from 'node:util';
import { loadAgentConfig, loadConfig, type AgentConfig } from '../config.js';
import { createLogger } from '../log.js';

const USAGE = `usage: cattery agent run [--manager URL] [--token TOKEN | --token-file FILE] [--state-dir DIR] [--interval S] [--once]
       cattery agent token SERVER [--hours H]     (on the manager: a one-time enrolment token for SERVER)
       cattery agent deploy --manager-url https://HOST[:PORT] [--manager-ca FILE] [--interval S]
                                                  (on the manager: the agent on every Swarm node, enrolled)`;

const out = (line: string) => process.stdout.write(`${line}\n`);

export async function agentCommand(sub: string | undefined, rest: string[]): Promise<number> {
  if (sub === 'token') {
    const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { hours: { type: 'string' } } });
    if (!positionals[0]) { process.stderr.write(`${USAGE}\n`); return 2; }
    const config = loadConfig();
    const [{ applyMigrations, openDb }, { issueEnrolmentToken }] = await Promise.all([import('../db/connection.js'), import('../agent/enrolment.js')]);
    const db = openDb(config.dbFile);
    try {
      applyMigrations(db);
      const t = issueEnrolmentToken(db, positionals[0], values.hours !== undefined ? Number(values.hours) : undefined);
      out(`enrolment token for ${t.server} (once, until ${t.expiresAt}):`);
      out(t.token);
    } finally { db.$client.close(); }
    return 0;
  }
  if (sub === 'deploy') {
    const { values } = parseArgs({ args: rest, options: { 'manager-url': { type: 'string' }, 'manager-ca': { type: 'string' }, interval: { type: 'string' } } });
    if (!values['manager-url']) { process.stderr.write(`${USAGE}\n`); return 2; }
    const config = loadConfig();
    const log = createLogger(config.logLevel);
    const [{ applyMigrations, openDb }, { ensureDefaultServer }, docker, { deployAgents }, { buildWorkDir }, fs] = await Promise.all([
      import('../db/connection.js'), import('../orchestrator/servers.js'), import('../orchestrator/docker/index.js'), import('../agent/deploy.js'),
      import('../orchestrator/docker/images.js'), import('node:fs'),
    ]);
    const db = openDb(config.dbFile);
    try {
      applyMigrations(db);
      const engineOf = (s: { dockerEndpoint: string; name: string }) => docker.connectEngine(s.dockerEndpoint, {
        hosterId: config.hosterId, timeoutSeconds: config.dockerTimeoutSeconds, log: log.child({ server: s.name }), certsDir: docker.engineCertsDir(config.dataDir),
      });
      // The first server is the swarm's manager (`cattery servers swarm-init`) and this host's engine builds the image.
      const manager = engineOf(ensureDefaultServer(db, config.dockerEndpoint, config.publishAddress));
      const d = await deployAgents({
        db, manager, build: manager, engineOf, hosterId: config.hosterId, managerUrl: values['manager-url'],
        ...(values['manager-ca'] ? { managerCa: fs.readFileSync(values['manager-ca'], 'utf8') } : {}),
        ...(values.interval ? { intervalSeconds: Number(values.interval) } : {}),
        workDir: buildWorkDir(config.dataDir), log, progress: (l) => log.info(l),
      });
      out(`agent image ${d.image}`);
      for (const n of d.nodes) out(`${n.hostname}  ${n.server ?? '-'}  ${n.agent}${d.services[n.id] ? `  service ${d.services[n.id]}` : ''}`);
    } finally { db.$client.close(); }
    return 0;
  }
  if (sub === 'run') {
    const { values } = parseArgs({
      args: rest,
      options: {
        manager: { type: 'string' }, token: { type: 'string' }, 'token-file': { type: 'string' }, 'state-dir': { type: 'string' },
        interval: { type: 'string' }, once: { type: 'boolean' },
      },
    });
    const overrides: Partial<AgentConfig> = {
      ...(values.manager ? { manager: values.manager.replace(/\/$/, '') } : {}),
      ...(values.token ? { token: values.token } : {}),
      ...(values['token-file'] ? { tokenFile: values['token-file'] } : {}),
      ...(values['state-dir'] ? { stateDir: values['state-dir'] } : {}),
      ...(values.interval ? { intervalSeconds: Number(values.interval) } : {}),
    };
    const config = loadAgentConfig(process.env, overrides);
    const log = createLogger(config.logLevel);
    const { createAgent } = await import('../agent/agent.js');
    const agent = await createAgent(config, log);
    if (values.once) {
      out(JSON.stringify(await agent.sampleOnce()));
      return 0;
    }
    log.info({ server: agent.enrolment.server, intervalSeconds: config.intervalSeconds }, 'agent started');
    agent.start();
    return new Promise<number>((resolve) => {
      const stop = (signal: string) => { log.info({ signal }, 'agent stopping'); agent.stop().then(() => resolve(0), () => resolve(1)); };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });
  }
  process.stderr.write(`${USAGE}\n`);
  return 2;
}
