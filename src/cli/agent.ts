// `cattery agent run` on a node (agent/agent.ts); `cattery agent token SERVER` on the manager, to issue the one-time
// enrolment token a node joins with.
import { parseArgs } from 'node:util';
import { loadAgentConfig, loadConfig, type AgentConfig } from '../config.js';
import { createLogger } from '../log.js';

const USAGE = `usage: cattery agent run [--manager URL] [--token TOKEN | --token-file FILE] [--state-dir DIR] [--interval S] [--once]
       cattery agent token SERVER [--hours H]     (on the manager: a one-time enrolment token for SERVER)`;

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
