// Administrators' pages: sign-ups waiting (approve, reject), the accounts of every instance, and the volumes no
// instance claims (archive, drop: orchestrator/housekeeping.ts).
import { Type } from '@sinclair/typebox';
import type { BackupDeps } from '../../backups/backups.js';
import { backupState } from '../../backups/status.js';
import { startBackupNow } from '../routes/backups.js';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { isCatteryError, type ErrorCode } from '../../errors.js';
import {
  VOLUME_NAME_PATTERN, archiveOrphanVolume, dropOrphanVolume, listOrphanVolumes, type HousekeepingDeps, type OrphanVolume,
} from '../../orchestrator/housekeeping.js';
import { accountsWithOwners } from '../../identity/person-accounts.js';
import { approveSignup, listSignups, rejectSignup } from '../../identity/signup.js';
import { downInstances, restoreElsewhere, type DownInstance, type RelocateDeps } from '../../orchestrator/relocate.js';
import { consolidationPlans, fleet, type ConsolidationPlan } from '../../orchestrator/placement.js';
import { SLUG_PATTERN } from '../../orchestrator/instances.js';
import { listServers } from '../../orchestrator/servers.js';
import { signupDeps, type PageDeps } from './deps.js';

const IdParams = Type.Object({ id: Type.Integer({ minimum: 1 }) });
const CsrfOnly = Type.Object({ _csrf: Type.Optional(Type.String({ maxLength: 200 })) }, { additionalProperties: false });
const VolumeParams = Type.Object({ name: Type.String({ pattern: VOLUME_NAME_PATTERN }) });
const VolumeForm = Type.Object({
  _csrf: Type.Optional(Type.String({ maxLength: 200 })),
  server: Type.Optional(Type.String({ pattern: '^[a-z][a-z0-9-]{0,40}$' })),
  force: Type.Optional(Type.Literal('on')),
}, { additionalProperties: false });
/** What a volume form's answer says: a fixed word the page turns into its own sentence (never a text from the link). */
const VOLUME_NOTES = ['archived', 'dropped', 'not-archived', 'in-use', 'claimed', 'gone'] as const;
const NOTE_OF: Partial<Record<ErrorCode, (typeof VOLUME_NOTES)[number]>> = {
  CATTERY_ERR_VOLUME_NOT_ARCHIVED: 'not-archived', CATTERY_ERR_VOLUME_IN_USE: 'in-use', CATTERY_ERR_VOLUME_CLAIMED: 'claimed',
  CATTERY_ERR_NOT_FOUND: 'gone',
};

/** The housekeeping act, then back to /admin with its outcome; a refusal of the family is an outcome too. */
async function volumeAct(act: () => Promise<unknown>, done: (typeof VOLUME_NOTES)[number]): Promise<string> {
  try {
    await act();
    return `/admin?vol=${done}#volumes`;
  } catch (err) {
    const note = isCatteryError(err) ? NOTE_OF[err.code] : undefined;
    if (!note) throw err;
    return `/admin?vol=${note}#volumes`;
  }
}

/** What the restore-elsewhere form's answer says: a fixed word (never a text from the link). */
const SERVER_NOTES = ['restored', 'failed'] as const;

/** The servers' section: instances whose server does not answer (with the restore form), and the best consolidation
 * plan's moves. Either may be unreadable (an engine away): null then, and the rest of the page still serves. */
async function serversSection(r: RelocateDeps, log: { warn: (o: object, m: string) => void }) {
  let down: DownInstance[] | null = null;
  let plan: ConsolidationPlan | null = null;
  try { down = await downInstances(r); } catch (err) { log.warn({ err }, 'down instances not listed'); }
  // Servers placement keeps away from (the isolation check, docs/swarm.md): a fixed reason each, for the page's words.
  let refused: { name: string; why: 'nnp' | 'guard'; missing: string[] }[] = [];
  try {
    const loads = await fleet({ db: r.db, catalog: r.catalog, engineFor: r.reconciler.engineFor, servers: () => listServers(r.db) });
    plan = consolidationPlans(loads)[0] ?? null;
    const rows = listServers(r.db);
    refused = loads.filter((l) => l.isolation).map((l) => {
      const i = rows.find((s) => s.id === l.id)?.isolation;
      return i?.noNewPrivs === 'failed' ? { name: l.name, why: 'nnp' as const, missing: i.missing } : { name: l.name, why: 'guard' as const, missing: [] };
    });
  } catch (err) { log.warn({ err }, 'consolidation plan not made'); }
  return { down, plan, refused, servers: listServers(r.db).map((s) => s.name) };
}

export const adminPages: FastifyPluginAsyncTypebox<{ deps: PageDeps; housekeeping: HousekeepingDeps; backups?: BackupDeps; relocate?: RelocateDeps | undefined }> = async (app, { deps, housekeeping: hk, backups, relocate }) => {
  const page = { page: true } as const;

  app.get('/admin', {
    config: page,
    schema: {
      hide: true,
      querystring: Type.Object({
        failed: Type.Optional(Type.Integer({ minimum: 1 })), lang: Type.Optional(Type.String({ maxLength: 5 })),
        vol: Type.Optional(Type.Union(VOLUME_NOTES.map((n) => Type.Literal(n)))),
        backup: Type.Optional(Type.Union([Type.Literal('started'), Type.Literal('busy')])),
        srv: Type.Optional(Type.Union(SERVER_NOTES.map((n) => Type.Literal(n)))),
      }),
    },
  }, async (req, reply) => {
    const waiting = listSignups(deps, { status: 'pending' });
    const failed = listSignups(deps, { status: 'failed' });
    // The link names a sign-up, never a text: what the alert says comes from the sign-up's own row, so a link
    // from elsewhere cannot put words of its choosing in the administrator's page.
    const error = req.query.failed ? failed.find((s) => s.id === req.query.failed)?.lastError ?? null : null;
    // The engine may be down: the rest of the page still serves, the section says it could not be read.
    let orphans: OrphanVolume[] | null = null;
    try { orphans = await listOrphanVolumes(hk); } catch (err) { req.log.warn({ err }, 'orphan volumes not listed'); }
    return reply.page('admin', {
      waiting, failed, accounts: accountsWithOwners(deps.db), error, orphans, volNote: req.query.vol ?? null,
      backups: backups ? backupState(deps.db) : null, backupNote: req.query.backup ?? null,
      fleet: relocate ? await serversSection(relocate, req.log) : null, srvNote: req.query.srv ?? null,
    });
  });

  app.post('/admin/backups/:name/run', { config: page, schema: { hide: true, params: Type.Object({ name: Type.String({ pattern: '^[a-z][a-z0-9-]{0,31}$' }) }) } }, async (req, reply) => {
    if (!backups) return reply.redirect('/admin', 303);
    try {
      startBackupNow(backups, req.params.name, req.principal!.id);
      return reply.redirect('/admin?backup=started#backups', 303);
    } catch (err) {
      if ((err as { code?: string }).code === 'CATTERY_ERR_CONFLICT') return reply.redirect('/admin?backup=busy#backups', 303);
      throw err;
    }
  });

  // A down instance's latest snapshot restored on the server the administrator chose; the outcome is a fixed word,
  // what went wrong is in the journal and the log.
  app.post('/admin/instances/:slug/restore-elsewhere', {
    config: page,
    schema: {
      hide: true, params: Type.Object({ slug: Type.String({ pattern: SLUG_PATTERN }) }),
      body: Type.Object({ _csrf: Type.Optional(Type.String({ maxLength: 200 })), server: Type.String({ pattern: '^[a-z][a-z0-9-]{0,40}$' }) }, { additionalProperties: false }),
    },
  }, async (req, reply) => {
    if (!relocate) return reply.redirect('/admin', 303);
    try {
      await restoreElsewhere(relocate, req.params.slug, req.body.server, req.principal!.id);
      return reply.redirect('/admin?srv=restored#servers', 303);
    } catch (err) {
      req.log.warn({ err, slug: req.params.slug }, 'restore elsewhere failed');
      return reply.redirect('/admin?srv=failed#servers', 303);
    }
  });

  app.post('/admin/volumes/:name/archive', { config: page, schema: { hide: true, params: VolumeParams, body: VolumeForm } }, async (req, reply) =>
    reply.redirect(await volumeAct(() => archiveOrphanVolume(hk, req.params.name, { actor: req.principal!.id, server: req.body.server }), 'archived'), 303));

  app.post('/admin/volumes/:name/drop', { config: page, schema: { hide: true, params: VolumeParams, body: VolumeForm } }, async (req, reply) =>
    reply.redirect(await volumeAct(() => dropOrphanVolume(hk, req.params.name, {
      actor: req.principal!.id, server: req.body.server, force: req.body.force === 'on',
    }), 'dropped'), 303));

  app.post('/admin/signups/:id/approve', { config: page, schema: { hide: true, params: IdParams, body: CsrfOnly } }, async (req, reply) => {
    try {
      await approveSignup(signupDeps(deps), req.params.id, req.principal!.id);
    } catch (err) {
      // The failure is kept on the sign-up (status failed, last error) and shown on the page; approving again retries.
      req.log.warn({ err }, 'sign-up approval failed');
      return reply.redirect(`/admin?failed=${req.params.id}`, 303);
    }
    return reply.redirect('/admin', 303);
  });

  app.post('/admin/signups/:id/reject', { config: page, schema: { hide: true, params: IdParams, body: CsrfOnly } }, async (req, reply) => {
    await rejectSignup(deps.accounts, req.params.id, req.principal!.id);
    return reply.redirect('/admin', 303);
  });
};
