// Federation pages: the public directory of peers with room, the monthly reports side by side (ours and the peers',
// each signature checked when the page is made), and the administrators' page (our fingerprint, peers, alarms, and
// the forms to add, confirm, suspend, resume, refresh and remove).
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply } from 'fastify';
import { isCatteryError } from '../../errors.js';
import { hasMessage } from '../i18n.js';
import { directory } from '../../federation/directory.js';
import type { Federation } from '../../federation/federation.js';
import { fingerprintOf, verifyDocument } from '../../federation/jws.js';
import {
  addPeer, confirmPeer, getPeer, listPeers, openAlarms, peerKeys, refreshPeer, removePeer, reportsOf, setPeerState, viewOf,
} from '../../federation/peers.js';
import { checkReport, closedMonth, signedReport, type CheckedReport, type Report } from '../../federation/reports.js';
import { previousMonth } from '../../publication/figures.js';
import { movePages } from './moves.js';
import type { ArrivalLimit } from '../routes/moves.js';

const Lang = Type.Object({ lang: Type.Optional(Type.String({ maxLength: 5 })) });
const IdParams = Type.Object({ id: Type.Integer({ minimum: 1, maximum: 2 ** 31 }) });
const Csrf = { _csrf: Type.Optional(Type.String({ maxLength: 200 })) };

export const federationPages: FastifyPluginAsyncTypebox<{ federation: Federation; arrivalLimit: ArrivalLimit }> = async (app, { federation: f, arrivalLimit }) => {
  const page = { page: true } as const;
  const db = f.peers.db;
  // The people's pages of a move (the resident's, the mediator's, the arrival's) need the move domain's handles.
  await app.register(movePages, { federation: f, arrivalLimit });

  app.get('/federation', { config: page, schema: { hide: true, querystring: Lang } }, async (_req, reply) =>
    reply.page('federation', { peers: directory(db), url: f.documents.config.publicUrl }));

  app.get('/federation/reports', {
    config: page,
    schema: { hide: true, querystring: Type.Object({ ...Lang.properties, month: Type.Optional(Type.String({ pattern: '^\\d{4}-(0[1-9]|1[0-2])$' })) }) },
  }, async (req, reply) => {
    const month = req.query.month ?? previousMonth(new Date());
    if (!closedMonth(month)) return reply.page('federation-reports', { month, columns: [], rows: [], notClosed: true });
    // Ours is signed and checked the way a peer would check it: a report this page calls good is one a peer accepts.
    const id = await f.keys.current();
    const ourJws = await signedReport(f.documents, month);
    const ours = await checkReport(ourJws, [id.jwk], f.documents.config.publicUrl, month);
    const columns: { name: string; url: string; checked: CheckedReport; kid: string }[] = [
      { name: f.documents.config.publication.organization.name || f.documents.config.hosterId, url: f.documents.config.publicUrl, checked: ours, kid: fingerprintOf(id.kid) },
    ];
    for (const { peer, jws } of reportsOf(db, month)) {
      const signer = await verifyDocument(jws, 'report').then((v) => fingerprintOf(v.kid)).catch(() => '');
      columns.push({ name: peer.name, url: peer.url, checked: await checkReport(jws, peerKeys(peer), peer.url, month), kid: signer });
    }
    // One line per dataset, row and indicator any good report has; a cell is the value, or empty when secret.
    const keyOf = (d: string, r: Report['datasets'][number]['rows'][number]) => `${d}|${r.key}|${r.indicator}|${r.unit}`;
    const lines = new Map<string, { dataset: string; key: string; indicator: string; unit: string; values: (number | null | undefined)[] }>();
    columns.forEach((c, i) => {
      if (!c.checked.ok) return;
      for (const d of c.checked.report.datasets) {
        for (const r of d.rows) {
          const k = keyOf(d.id, r);
          const line = lines.get(k) ?? { dataset: d.id, key: r.key, indicator: r.indicator, unit: r.unit, values: columns.map(() => undefined) };
          line.values[i] = r.value;
          lines.set(k, line);
        }
      }
    });
    return reply.page('federation-reports', { month, columns, rows: [...lines.values()], notClosed: false });
  });

  const adminPage = async (reply: FastifyReply, extra: { error?: { key: string; detail: string } | null; added?: number | null } = {}, status = 200) => {
    const id = await f.keys.current();
    return reply.page('admin-federation', {
      identity: { fingerprint: fingerprintOf(id.kid), kid: id.kid, createdAt: id.createdAt, rotations: id.rotations.length },
      peers: listPeers(db).map((p) => viewOf(db, p)), alarms: openAlarms(db), error: extra.error ?? null, added: extra.added ?? null,
    }, status);
  };

  app.get('/admin/federation', {
    config: page, schema: { hide: true, querystring: Type.Object({ ...Lang.properties, added: Type.Optional(Type.Integer({ minimum: 1 })) }) },
  }, async (req, reply) => adminPage(reply, { added: req.query.added ?? null }));

  // A refusal the administrator can act on (an address that does not answer, a document refused, a fingerprint
  // that is not the one shown) is said on the page itself; anything else is the usual error page.
  const onPage = async (reply: FastifyReply, fn: () => Promise<string>) => {
    try {
      return reply.redirect(await fn(), 303);
    } catch (err) {
      if (!isCatteryError(err) || err.statusCode === 500) throw err;
      reply.header('x-cattery-error', err.code);
      // The family's words for the refusal, then its detail (which address, which check): the administrator acts on it.
      return adminPage(reply, { error: { key: hasMessage(`err.${err.code}`) ? `err.${err.code}` : 'err.generic', detail: err.message } }, err.statusCode);
    }
  };

  app.post('/admin/federation/peers', {
    config: page,
    schema: { hide: true, querystring: Lang, body: Type.Object({ ...Csrf, url: Type.String({ minLength: 1, maxLength: 300 }) }, { additionalProperties: false }) },
  }, async (req, reply) => onPage(reply, async () => `/admin/federation?added=${(await addPeer(f.peers, req.body.url)).id}`));

  app.post('/admin/federation/peers/:id/confirm', {
    config: page,
    schema: {
      hide: true, querystring: Lang, params: IdParams,
      body: Type.Object({ ...Csrf, fingerprint: Type.String({ minLength: 1, maxLength: 120 }), compared: Type.Literal('yes') }, { additionalProperties: false }),
    },
  }, async (req, reply) => onPage(reply, async () => { confirmPeer(f.peers, req.params.id, req.body.fingerprint); return '/admin/federation'; }));

  const simple = [
    ['suspend', (id: number) => { setPeerState(f.peers, id, 'suspended'); }],
    ['resume', (id: number) => { setPeerState(f.peers, id, 'active'); }],
    ['remove', (id: number) => { removePeer(f.peers, id); }],
    ['refresh', async (id: number) => { getPeer(db, id); await refreshPeer(f.peers, id); }],
  ] as const;
  for (const [action, fn] of simple) {
    app.post(`/admin/federation/peers/:id/${action}`, {
      config: page, schema: { hide: true, querystring: Lang, params: IdParams, body: Type.Object(Csrf, { additionalProperties: false }) },
    }, async (req, reply) => onPage(reply, async () => { await fn(req.params.id); return '/admin/federation'; }));
  }
};
