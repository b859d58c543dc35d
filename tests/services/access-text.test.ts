// Kind: what "my services" tells a resident is enough to sign in (issue 9). For every catalog service with an
// `access` text: one instance, a resident signed up through the real form (automatic approval), /me read as that
// resident, and the values the page shows (server, ports, URL, login, address) used exactly as shown to sign in at
// the service with the resident's own password, as a mail client, a WebDAV client or a browser would.
import t from 'tap';
import nodemailer from 'nodemailer';
import { ImapFlow } from 'imapflow';
import { pino } from 'pino';
import { loadCatalog } from '../../src/catalog/load.js';
import { connectEngine } from '../../src/orchestrator/docker/engine.js';
import { buildImages, buildWorkDir } from '../../src/orchestrator/docker/images.js';
import { HEALTHY_WITHIN_MS, ROOT, testRuntime, waitFor } from '../helpers.js';
import { freePort } from '../identity/provider.js';
import { PROBES, imapOptions, mailCert } from './probes.js';
import { pageBrowser } from '../page-browser.js';

const catalog = loadCatalog([`${ROOT}/services`]);
const withAccess = [...catalog.services.values()].filter((s) => s.manifest.access && s.manifest.openForSignup);


const unescape = (s: string) => s.replace(/&#39;/g, "'").replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');

/** Each service card of /me: its heading and its access paragraph, as the page shows them. */
function cards(html: string): { service: string; access: string }[] {
  return [...html.matchAll(/<li class="card">\s*<h2>([^<]*)<\/h2>[\s\S]*?<\/li>/g)].map((m) => {
    const ps = [...m[0].matchAll(/<p>([^<]*)<\/p>/g)].map((p) => unescape(p[1]!.trim()));
    return { service: unescape(m[1]!), access: ps.find((p) => /:/.test(p) && /\d{2,5}/.test(p)) ?? '' };
  });
}

t.test('every access text signs the resident in, exactly as shown', async (t) => {
  t.ok(withAccess.length > 0, 'the catalog has services with an access text');
  const port = await freePort();
  const rt = await testRuntime(t, { healthTimeoutSeconds: 180, port, publicUrl: `http://127.0.0.1:${port}`, signupApproval: 'auto' });
  const engine = connectEngine('unix:///var/run/docker.sock', { hosterId: rt.config.hosterId, timeoutSeconds: 600, log: pino({ level: 'silent' }) });
  await buildImages(engine, rt.catalog, { mirror: rt.config.debianMirror, workDir: buildWorkDir(rt.config.dataDir), only: withAccess.map((s) => s.manifest.id), progress: () => undefined });
  const ctxs = new Map<string, { container: string; ports: Record<string, number> }>();
  for (const s of withAccess) {
    const id = s.manifest.id;
    const env = PROBES[id]?.env ?? {};
    const r = await rt.app.inject({ method: 'POST', url: '/api/instances', payload: { service: id, slug: `acc-${id}`, ...(Object.keys(env).length ? { env } : {}) } });
    t.equal(r.statusCode, 202, r.body);
    ctxs.set(id, { container: `${rt.config.hosterId}-acc-${id}`, ports: r.json().ports });
  }
  for (const s of withAccess) {
    await waitFor(`${s.manifest.id} healthy`, async () => (await rt.app.inject(`/api/instances/acc-${s.manifest.id}`)).json().observed === 'healthy', HEALTHY_WITHIN_MS, 500);
  }

  const password = 'ma phrase du quartier';
  const b = pageBrowser(rt.app, { authorization: null });
  const signed = await b.post('/signup', {
    name: 'Marie Dupont', email: 'marie@example.org', services: withAccess.map((s) => s.manifest.id), password, password2: password, terms: rt.config.termsVersion,
  }, { csrfFrom: '/signup' });
  t.equal(signed.statusCode, 201, signed.statusCode === 201 ? 'the sign-up form is accepted and approved' : signed.body.slice(0, 500));
  const login = /<strong>([a-z0-9._-]+)<\/strong>/.exec(signed.body)?.[1] ?? (rt.db.$client.prepare("select login from users where name = 'Marie Dupont'").get() as { login: string }).login;
  const li = await b.post('/login', { login, password }, { csrfFrom: '/login' });
  t.equal(li.statusCode, 303, 'the resident signs in');
  const me = await b.get('/me');
  t.equal(me.statusCode, 200);
  const shown = cards(me.body);
  t.equal(shown.length, withAccess.length, 'one card per service');

  for (const s of withAccess) {
    const id = s.manifest.id;
    const card = shown.find((c) => c.service === s.manifest.name.fr);
    t.ok(card?.access, `${id}: the page shows how to reach it`);
    if (!card?.access) continue;
    const text = card.access;
    const shownLogin = /Identifiant\s*:\s*([^\s]+?)\.?(\s|$)/.exec(text)?.[1];
    t.ok(shownLogin, `${id}: the page shows a login (${text})`);
    if (!shownLogin) continue;
    const ctx = ctxs.get(id)!;
    await t.test(`${id}: "${text}"`, async (t) => {
      if (id === 'mail') {
        const imap = /\(IMAP\)\s*:\s*serveur\s+([^\s,]+),\s*port\s+(\d+)/.exec(text);
        const smtp = /\(SMTP\)\s*:\s*serveur\s+([^\s,]+),\s*port\s+(\d+)/.exec(text);
        const address = /Adresse\s*:\s*([^\s]+@[^\s]+?)\.?(\s|$)/.exec(text)?.[1];
        t.ok(imap && smtp && address, 'server, ports and address shown');
        if (!imap || !smtp || !address) return;
        const c = new ImapFlow(await imapOptions(ctx.container, Number(imap[2]), shownLogin, password, imap[1]!));
        c.on('error', () => undefined);
        const imapOk = await c.connect().then(() => true, () => false);
        if (c.usable) await c.logout().catch(() => undefined); else c.close();
        t.ok(imapOk, `IMAP at ${imap[1]}:${imap[2]} with login "${shownLogin}" (as shown)`);
        const ca = await mailCert(ctx.container);
        const transport = nodemailer.createTransport({
          host: smtp[1], port: Number(smtp[2]), secure: false, auth: { user: shownLogin, pass: password },
          ...(ca ? { requireTLS: true, tls: { ca, servername: `mail.${address.split('@')[1]}` } } : { ignoreTLS: true }),
        });
        const smtpOk = await transport.verify().then(() => true, (e: Error) => { t.comment(`submission: ${e.message}`); return false; });
        t.ok(smtpOk, `submission at ${smtp[1]}:${smtp[2]} with login "${shownLogin}" (as shown)`);
      } else if (id === 'files') {
        const url = /(https?:\/\/[^\s]+\/)/.exec(text)?.[1];
        t.ok(url, 'a WebDAV URL shown');
        if (!url) return;
        const r = await fetch(url, { method: 'PROPFIND', headers: { depth: '0', authorization: `Basic ${Buffer.from(`${shownLogin}:${password}`).toString('base64')}` } });
        await r.arrayBuffer();
        t.equal(r.status, 207, `PROPFIND ${url} as "${shownLogin}" (as shown)`);
      } else if (id === 'pads') {
        const url = /(https?:\/\/[^\s]+\/)/.exec(text)?.[1];
        t.ok(url, 'a pad URL shown');
        if (!url) return;
        // "followed by the pad's name": any name the resident picks.
        const r = await fetch(`${url}courses`, { headers: { authorization: `Basic ${Buffer.from(`${shownLogin}:${password}`).toString('base64')}` } });
        await r.arrayBuffer();
        t.equal(r.status, 200, `GET ${url}courses as "${shownLogin}" (as shown)`);
      } else {
        t.fail(`${id}: no sign-in check for this service's access text: add one here`);
      }
    });
  }
});
