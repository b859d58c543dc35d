// Backups through the API (backups/): the state of every repository and target, a repository's recent runs, and a
// run asked now (started in the background, one at a time per repository; its progress is in the runs). Admins only.
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { backupAll, getRepository, lastRuns, repoBusy, restoreAccount, restoreBeside, restoreVolumes, type BackupDeps } from '../../backups/backups.js';
import { USERNAME_PATTERN, type AccountDeps } from '../../accounts/accounts.js';
import { SLUG_PATTERN, findInstance, getInstance, publicInstance, type InstanceDeps } from '../../orchestrator/instances.js';
import type { Reconciler } from '../../orchestrator/reconcile.js';
import { backupState } from '../../backups/status.js';
import { fail } from '../../errors.js';
import { ErrorReply } from '../error-handler.js';

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);
const RepoParams = Type.Object({ name: Type.String({ pattern: '^[a-z][a-z0-9-]{0,31}$' }) });
const TargetView = Type.Object({
  target: Type.String(), state: Type.Union(['ok', 'late', 'failed', 'never', 'running'].map((s) => Type.Literal(s))),
  lastSuccessAt: Nullable(Type.String()), lastError: Nullable(Type.String()), bytesAdded: Nullable(Type.Integer()), durationMs: Nullable(Type.Integer()),
});
const RepoView = Type.Object({
  name: Type.String(), url: Type.String(), everyHours: Type.Integer(), targets: Type.Array(TargetView),
  lastCheck: Nullable(Type.Object({ at: Type.String(), status: Type.String(), error: Nullable(Type.String()) })),
});
const RunView = Type.Object({
  id: Type.Integer(), kind: Type.String(), target: Type.String(), status: Type.String(), snapshotId: Nullable(Type.String()),
  bytesAdded: Nullable(Type.Integer()), bytesProcessed: Nullable(Type.Integer()), filesProcessed: Nullable(Type.Integer()),
  durationMs: Nullable(Type.Integer()), consistency: Nullable(Type.String()), error: Nullable(Type.String()), actor: Type.String(),
  startedAt: Type.String(), finishedAt: Nullable(Type.String()),
});

/** One run at a time per repository, whoever asks (the API, the page); the schedule has its own guard. */
const running = new Set<string>();
export function startBackupNow(deps: BackupDeps, name: string, actor: string): void {
  const repo = getRepository(deps.db, name);
  if (running.has(name) || repoBusy(deps.dataDir, repo.url)) throw fail('CATTERY_ERR_CONFLICT', `A backup to "${name}" is running`);
  running.add(name);
  backupAll(deps, name, actor)
    .catch((err) => deps.log.error({ err, repository: name }, 'backup asked now failed'))
    .finally(() => running.delete(name));
}

export const backupRoutes: FastifyPluginAsyncTypebox<{ deps: BackupDeps; instanceDeps: InstanceDeps; accountDeps: AccountDeps; reconciler: Reconciler }> = async (app, { deps, instanceDeps, accountDeps, reconciler }) => {
  /** A pass now, and the instance where it was asked to be (running and healthy, or gone). */
  const converge = async (slug: string) => {
    const inst = findInstance(deps.db, slug);
    if (!inst) return;
    await reconciler.trigger('a resident\'s restore', slug);
    await reconciler.waitConverged(slug, inst.generation);
  };

  app.get('/api/backups', {
    schema: { tags: ['backups'], summary: 'Every repository and, for cattery itself and each instance, the state of its backups', response: { 200: Type.Array(RepoView) } },
  }, async () => backupState(deps.db));

  app.get('/api/backups/:name/runs', {
    schema: { tags: ['backups'], summary: 'A repository\'s last 50 runs (backups, checks, retention, restores)', params: RepoParams, response: { 200: Type.Array(RunView), 404: ErrorReply } },
  }, async (req) => lastRuns(deps.db, req.params.name));

  app.post('/api/backups/:name/run', {
    schema: { tags: ['backups'], summary: 'Back up cattery and every instance to this repository now (202: started; see the runs)', params: RepoParams, response: { 202: Type.Object({ started: Type.Boolean() }), 404: ErrorReply, 409: ErrorReply } },
  }, async (req, reply) => {
    startBackupNow(deps, req.params.name, req.principal?.id ?? 'anonymous');
    return reply.code(202).send({ started: true });
  });

  app.post('/api/backups/:name/restore', {
    schema: {
      tags: ['backups'], params: RepoParams,
      summary: 'Put an instance back as it was in a snapshot (its newest by default): into place (its volumes emptied and filled, then it restarts), or `into` a new instance beside it, to compare. The answer is the run: its status says whether restic did it, and why not',
      body: Type.Object({
        instance: Type.String({ pattern: SLUG_PATTERN }), snapshot: Type.Optional(Type.String({ pattern: '^[0-9a-f]{8,64}$' })),
        into: Type.Optional(Type.String({ pattern: SLUG_PATTERN })),
      }, { additionalProperties: false }),
      response: { 200: Type.Object({ run: RunView, instance: Type.Unknown() }), 404: ErrorReply, 409: ErrorReply, 502: ErrorReply },
    },
  }, async (req) => {
    const actor = req.principal?.id ?? 'anonymous';
    const from = { slug: req.body.instance, ...(req.body.snapshot ? { snapshot: req.body.snapshot } : {}) };
    if (req.body.into) {
      const { run, instance } = await restoreBeside(deps, instanceDeps, req.params.name, from, req.body.into, actor);
      // A failed run is the answer (its status and restic's reason); the new instance stays stopped.
      if (run.status === 'done') await reconciler.trigger('restored beside', instance.slug);
      return { run, instance: publicInstance(instance) };
    }
    const run = await restoreVolumes(deps, req.params.name, from, getInstance(deps.db, req.body.instance), actor);
    // The service reads its data again from the start.
    if (run.status === 'done' && getInstance(deps.db, req.body.instance).desired === 'running') await reconciler.restart(req.body.instance, actor);
    return { run, instance: publicInstance(getInstance(deps.db, req.body.instance)) };
  });

  app.post('/api/backups/:name/restore-account', {
    schema: {
      tags: ['backups'], params: RepoParams,
      summary: 'Put one resident\'s data in one instance back as it was in a snapshot (its newest by default), the other residents\' left as they are: through the service\'s own export (from the snapshot, restored beside) and import. What the account held before is kept in data/backups/accounts. The answer is the run',
      body: Type.Object({
        instance: Type.String({ pattern: SLUG_PATTERN }), username: Type.String({ pattern: USERNAME_PATTERN, maxLength: 32 }),
        snapshot: Type.Optional(Type.String({ pattern: '^[0-9a-f]{8,64}$' })),
      }, { additionalProperties: false }),
      response: { 200: Type.Object({ run: RunView, kept: Type.Boolean({ description: 'The account\'s data from before the restore is kept on the server' }) }), 404: ErrorReply, 409: ErrorReply, 502: ErrorReply },
    },
  }, async (req) => {
    const { run, keptAt } = await restoreAccount(deps, accountDeps, instanceDeps, converge, req.params.name,
      { slug: req.body.instance, username: req.body.username, ...(req.body.snapshot ? { snapshot: req.body.snapshot } : {}) }, req.principal?.id ?? 'anonymous');
    return { run, kept: keptAt !== null };
  });
};
