// The DKIM public keys of a domain, as the mail instance that signs its mail knows them: the mail image's own command
// (`cattery-mail-admin dkim-show`, services/mail) run inside each running mail instance whose MAIL_DOMAIN is the
// domain, through the same exec surface as account operations (orchestrator/docker/exec.ts: a deadline, an output
// cap, no shell). It answers one line of JSON:
//   {"domain": "asso.example", "keys": [{"selector": "…", "publicKey": "<base64 SPKI>", "active": true}]}
// Nothing here fails a page: an instance that is not up, an image without the command, an answer that is not that
// JSON or names another domain all give no key, logged, and the page says the keys are not known yet.
import { Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import type { Catalog } from '../catalog/load.js';
import type { Db } from '../db/connection.js';
import type { Instance, Server } from '../db/schema.js';
import type { Logger } from '../log.js';
import { environmentOf, execWithInput, type Engine, type ExecLimits } from '../orchestrator/docker/index.js';
import { execTarget } from '../orchestrator/exec-target.js';
import { listInstances } from '../orchestrator/instances.js';
import { dkimKeyProblem, type DkimKey } from './dns-records.js';

export const DKIM_SHOW = ['/usr/local/bin/cattery-mail-admin', 'dkim-show'];

/** A few keys are a few kilobytes; the command reads files, it has no reason to take seconds. */
const LIMITS: ExecLimits = { timeoutMs: 10_000, maxBytes: 64 * 1024 };

const Answer = Type.Object({
  domain: Type.String({ maxLength: 253 }),
  keys: Type.Array(Type.Object({
    selector: Type.String({ maxLength: 253 }),
    publicKey: Type.String({ maxLength: 8192 }),
    active: Type.Optional(Type.Boolean()),
  }), { maxItems: 16 }),
});

export interface DkimKeysDeps {
  db: Db;
  catalog: Catalog;
  hosterId: string;
  engineFor: (server: Server) => Engine;
  log: Logger;
  /** The service whose instances sign mail, and the command that lists their keys (a test's own service). */
  service?: string;
  command?: string[];
}

export type DkimKeysOf = (domain: string) => Promise<DkimKey[]>;

/** The domain an instance sends mail for: its MAIL_DOMAIN as the container gets it. */
function mailDomainOf(deps: DkimKeysDeps, inst: Instance): string | undefined {
  const manifest = deps.catalog.services.get(inst.service)?.manifest;
  if (!manifest) return undefined;
  const entry = environmentOf(manifest, inst).find((e) => e.startsWith('MAIL_DOMAIN='));
  return entry?.slice('MAIL_DOMAIN='.length).toLowerCase();
}

async function keysOf(deps: DkimKeysDeps, inst: Instance, domain: string): Promise<DkimKey[]> {
  const log = deps.log.child({ slug: inst.slug, domain });
  try {
    // Its container on its server's engine, or on Swarm its task's container on the node that runs it.
    const at = await execTarget(deps, inst);
    const r = await execWithInput(at.engine, at.container, deps.command ?? DKIM_SHOW, '', LIMITS, `dkim-show in ${inst.slug}`);
    if (r.exitCode !== 0) { log.warn({ exitCode: r.exitCode, stderr: r.stderr.slice(-500) }, 'dkim-show failed'); return []; }
    let answer: unknown;
    try { answer = JSON.parse(r.stdout.toString()); } catch { answer = undefined; }
    if (!Value.Check(Answer, answer)) { log.warn('dkim-show did not answer its JSON'); return []; }
    if (answer.domain.toLowerCase() !== domain) { log.warn({ answered: answer.domain.slice(0, 253) }, 'dkim-show answered for another domain'); return []; }
    return answer.keys.filter((k) => {
      const problem = dkimKeyProblem(k);
      if (problem) log.warn({ problem }, 'DKIM key left out');
      return !problem;
    }).map((k) => ({ selector: k.selector.toLowerCase(), publicKey: k.publicKey, ...(k.active !== undefined ? { active: k.active } : {}) }));
  } catch (err) {
    // An image without the command: the engine refuses the exec (OCI "executable file not found"), or it exits 126/127.
    log.warn({ err }, 'dkim-show could not run');
    return [];
  }
}

/** `dkimKeys(domain)`: the keys of every running mail instance for the domain, one per selector. */
export function createDkimKeys(deps: DkimKeysDeps): DkimKeysOf {
  return async (domain) => {
    const d = domain.toLowerCase();
    const running = listInstances(deps.db, { service: deps.service ?? 'mail' })
      .filter((i) => i.desired === 'running' && (i.observed === 'healthy' || i.observed === 'running' || i.observed === 'unhealthy') && mailDomainOf(deps, i) === d);
    const bySelector = new Map<string, DkimKey>();
    for (const keys of await Promise.all(running.map((i) => keysOf(deps, i, d)))) {
      for (const k of keys) if (!bySelector.has(k.selector)) bySelector.set(k.selector, k);
    }
    return [...bySelector.values()];
  };
}
