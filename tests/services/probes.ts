// How a test signs in at each catalog service and reads an account's own data, the way a resident's client does.
// One entry per service with account operations: a new service must add its probe here, and the isolation test
// fails for any catalog service with accounts that has none.
import crypto from 'node:crypto';
import net from 'node:net';
import { ImapFlow } from 'imapflow';
import WebSocket from 'ws';
import * as Y from 'yjs';
import { WebsocketProvider } from 'y-websocket';
import { execIn, waitFor } from '../helpers.js';

export interface ProbeCtx { container: string; ports: Record<string, number>; env: Record<string, string> }

export interface Probe {
  /** Environment the instance must be given at creation. */
  env: Record<string, string>;
  /** True when the service lets `user` in with `pass`. */
  login(ctx: ProbeCtx, user: string, pass: string): Promise<boolean>;
  /** Put one piece of data named `marker` into the account, through the service (never through the adapter). */
  seed(ctx: ProbeCtx, user: string, pass: string, marker: string): Promise<void>;
  /** The markers the service shows to the account, signed in as it. `known`: the markers the test expects, for a
   * service that lists nothing (pads: each pad is opened by its name). */
  data(ctx: ProbeCtx, user: string, pass: string, known: string[]): Promise<string[]>;
  /** The markers an export tar holds for `user` (files by their path inside the tar). */
  exported(files: Map<string, Buffer>, user: string): string[];
  /** The quota (MB) the service itself holds for the account, when it can be read. */
  quota?(ctx: ProbeCtx, user: string, pass: string): Promise<number | undefined>;
  /** login, data and quota in one session, for a service where each sign-in is slow (mail: seconds per IMAP login). */
  session?(ctx: ProbeCtx, user: string, pass: string): Promise<{ data: string[]; quota: number | undefined } | null>;
}

/** Signed in as the account: its data and quota, or null when the login is refused. */
export async function signedIn(p: Probe, ctx: ProbeCtx, user: string, pass: string, known: string[]) {
  if (p.session) return p.session(ctx, user, pass);
  if (!(await p.login(ctx, user, pass))) return null;
  return { data: await p.data(ctx, user, pass, known), quota: p.quota ? await p.quota(ctx, user, pass) : undefined };
}

const DOMAIN = 'quartier.test';
const MARK = /cattery-marker-[0-9a-z]+/g;
const markersIn = (s: string) => [...new Set(s.match(MARK) ?? [])];
export const newMarker = () => `cattery-marker-${crypto.randomBytes(5).toString('hex')}`;

/** The certificate the mail instance serves, read out of its own container: the only thing the probe trusts. */
const certs = new Map<string, string>();
export async function mailCert(container: string): Promise<string | undefined> {
  if (certs.has(container)) return certs.get(container);
  // Where Dovecot says its certificate is (the instance's own one under /var/lib/cattery-mail/tls/ once made).
  const where = await execIn(container, ['doveconf', '-h', 'ssl_cert']);
  const file = where.out.trim().replace(/^</, '');
  if (where.code !== 0 || !file.startsWith('/')) return undefined;
  const pem = await execIn(container, ['cat', file]);
  if (pem.code !== 0 || !pem.out.includes('BEGIN CERTIFICATE')) return undefined;
  const cert = pem.out.slice(pem.out.indexOf('-----BEGIN'));
  certs.set(container, cert);
  return cert;
}

/** imapflow options: STARTTLS whenever the server offers it, trusting exactly the instance's certificate. */
export async function imapOptions(container: string, port: number, user: string, pass: string, host = '127.0.0.1') {
  const ca = await mailCert(container);
  return {
    host, port, secure: false, auth: { user, pass }, logger: false as const,
    servername: `mail.${DOMAIN}`, ...(ca ? { tls: { ca, servername: `mail.${DOMAIN}` } } : {}),
  };
}

async function imap<T>(ctx: ProbeCtx, user: string, pass: string, fn: (c: ImapFlow) => Promise<T>): Promise<T> {
  const c = new ImapFlow(await imapOptions(ctx.container, ctx.ports.imap!, `${user}@${DOMAIN}`, pass));
  // A refused login closes the connection: imapflow also reports it as an 'error' event.
  c.on('error', () => undefined);
  await c.connect();
  try { return await fn(c); } finally { if (c.usable) await c.logout().catch(() => undefined); else c.close(); }
}

/** One message to `to` over port 25, as another mail server would deliver it (no authentication). */
async function smtpDeliver(port: number, to: string, subject: string): Promise<void> {
  const sock = net.connect(port, '127.0.0.1');
  let buf = '';
  const next = () => new Promise<string>((resolve, reject) => {
    const check = () => {
      const m = /(^|\r\n)(\d{3}) [^\r\n]*\r\n$/.exec(buf);
      if (m) { const r = buf; buf = ''; sock.off('data', onData); resolve(r); }
    };
    const onData = (d: Buffer) => { buf += d.toString(); check(); };
    sock.on('data', onData);
    sock.once('error', reject);
    check();
  });
  const say = async (line: string | null, want: string) => {
    if (line !== null) sock.write(`${line}\r\n`);
    const r = await next();
    if (!r.split('\r\n').filter(Boolean).pop()!.startsWith(want)) throw new Error(`SMTP ${line ?? 'greeting'}: ${r.trim()}`);
  };
  try {
    await say(null, '220');
    await say('EHLO peer.test', '250');
    await say('MAIL FROM:<voisin@peer.test>', '250');
    await say(`RCPT TO:<${to}>`, '250');
    await say('DATA', '354');
    await say(`From: voisin@peer.test\r\nTo: ${to}\r\nSubject: ${subject}\r\n\r\n${subject}\r\n.`, '250');
    await say('QUIT', '221');
  } finally { sock.destroy(); }
}

const basic = (u: string, p: string) => ({ authorization: `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}` });

/** A Yjs client on a pad, with the account's credentials on the WebSocket upgrade (as tests/services/pads.test.ts). */
export function padClient(base: string, room: string, user?: string, pass?: string) {
  const headers = user ? basic(user, pass ?? '') : {};
  class AuthWS extends WebSocket { constructor(url: string) { super(url, { headers }); } }
  const doc = new Y.Doc();
  const provider = new WebsocketProvider(base, room, doc, { WebSocketPolyfill: AuthWS as unknown as typeof globalThis.WebSocket, disableBc: true });
  return { doc, provider, text: doc.getText('content'), close: () => { provider.destroy(); doc.destroy(); } };
}

/** The account store of the Node services (services/_shared/accounts-store.cjs), as the service reads it. */
async function storeQuota(ctx: ProbeCtx, root: string, user: string): Promise<number | undefined> {
  const r = await execIn(ctx.container, ['cat', `${root}/.cattery/users.json`]);
  if (r.code !== 0) return undefined;
  const users = JSON.parse(r.out.slice(r.out.indexOf('{'))) as Record<string, { quotaMb?: number }>;
  return users[user]?.quotaMb;
}

const entriesUnder = (files: Map<string, Buffer>, user: string) =>
  [...files].filter(([p]) => p === user || p.startsWith(`${user}/`));

export const PROBES: Record<string, Probe> = {
  mail: {
    env: { MAIL_DOMAIN: DOMAIN },
    async login(ctx, user, pass) {
      try { await imap(ctx, user, pass, async () => undefined); return true; } catch { return false; }
    },
    async seed(ctx, user, pass, marker) {
      void pass;
      await smtpDeliver(ctx.ports.smtp!, `${user}@${DOMAIN}`, marker);
      // Delivered (LMTP) before the test goes on, so that a later delete or recreate sees a settled mailbox. Looked
      // for in the Maildir (an IMAP login costs seconds); the final check reads it over IMAP.
      await waitFor(`${marker} delivered`, async () => (await execIn(ctx.container, ['grep', '-rlF', '--', marker, `/var/mail/vhosts/${DOMAIN}/${user}/new`, `/var/mail/vhosts/${DOMAIN}/${user}/cur`])).code === 0, 30_000, 200);
    },
    async data(ctx, user, pass) {
      return imap(ctx, user, pass, async (c) => {
        const box = await c.mailboxOpen('INBOX');
        const out: string[] = [];
        if (box.exists === 0) return out;
        for await (const m of c.fetch('1:*', { envelope: true })) out.push(...markersIn(m.envelope?.subject ?? ''));
        return out;
      });
    },
    exported(files, user) {
      return entriesUnder(files, user).filter(([p]) => /\/(cur|new)\//.test(p)).flatMap(([, b]) => markersIn(b.toString()));
    },
    async quota(ctx, user, pass) {
      return imap(ctx, user, pass, async (c) => {
        const q = await c.getQuota('INBOX');
        return q && q.storage?.limit ? Math.round(q.storage.limit / (1024 * 1024)) : undefined;
      });
    },
    async session(ctx, user, pass) {
      let c: ImapFlow;
      try {
        c = new ImapFlow(await imapOptions(ctx.container, ctx.ports.imap!, `${user}@${DOMAIN}`, pass));
        c.on('error', () => undefined);
        await c.connect();
      } catch { return null; }
      try {
        const box = await c.mailboxOpen('INBOX');
        const data: string[] = [];
        if (box.exists > 0) for await (const m of c.fetch('1:*', { envelope: true })) data.push(...markersIn(m.envelope?.subject ?? ''));
        const q = await c.getQuota('INBOX');
        return { data, quota: q && q.storage?.limit ? Math.round(q.storage.limit / (1024 * 1024)) : undefined };
      } finally { if (c.usable) await c.logout().catch(() => undefined); else c.close(); }
    },
  },
  files: {
    env: {},
    async login(ctx, user, pass) {
      const r = await fetch(`http://127.0.0.1:${ctx.ports.http}/${user}/`, { method: 'PROPFIND', headers: { ...basic(user, pass), depth: '0' } });
      await r.arrayBuffer();
      return r.status === 207;
    },
    async seed(ctx, user, pass, marker) {
      const r = await fetch(`http://127.0.0.1:${ctx.ports.http}/${user}/${marker}.txt`, { method: 'PUT', headers: basic(user, pass), body: marker });
      await r.arrayBuffer();
      if (r.status !== 201 && r.status !== 204) throw new Error(`PUT ${marker} as ${user}: ${r.status}`);
    },
    async data(ctx, user, pass) {
      const r = await fetch(`http://127.0.0.1:${ctx.ports.http}/${user}/`, { method: 'PROPFIND', headers: { ...basic(user, pass), depth: '1' } });
      const names = markersIn(await r.text());
      if (r.status !== 207) throw new Error(`PROPFIND as ${user}: ${r.status}`);
      // Listed and readable with its own content.
      const out: string[] = [];
      for (const n of names) {
        const g = await fetch(`http://127.0.0.1:${ctx.ports.http}/${user}/${n}.txt`, { headers: basic(user, pass) });
        if (g.status === 200 && (await g.text()) === n) out.push(n); else await g.arrayBuffer().catch(() => undefined);
      }
      return out;
    },
    exported(files, user) {
      return entriesUnder(files, user).filter(([p, b]) => p === `${user}/${b.toString()}.txt`).map(([, b]) => b.toString());
    },
    quota: (ctx, user) => storeQuota(ctx, '/srv/files', user),
  },
  pads: {
    env: {},
    async login(ctx, user, pass) {
      // The page a resident opens (the access text's URL): Basic authentication, 200 for the owner only.
      const r = await fetch(`http://127.0.0.1:${ctx.ports.http}/private/${user}/carnet`, { headers: basic(user, pass) });
      await r.arrayBuffer();
      return r.status === 200;
    },
    async seed(ctx, user, pass, marker) {
      const c = padClient(`ws://127.0.0.1:${ctx.ports.http}`, `private/${user}/${marker.replace(/^cattery-marker-/, 'm')}`, user, pass);
      try {
        await waitFor(`pad of ${user} synced`, () => c.provider.synced, 15_000, 50);
        c.text.insert(0, marker);
        // The update reaches the server (and its LevelDB) before the client goes.
        await new Promise((r) => setTimeout(r, 400));
      } finally { c.close(); }
    },
    data: (ctx, user, pass, known) => padMarkers(ctx, user, pass, known),
    exported(files, user) {
      return entriesUnder(files, user).filter(([p]) => p.endsWith('.md')).flatMap(([, b]) => markersIn(b.toString()));
    },
    quota: (ctx, user) => storeQuota(ctx, '/var/lib/pads', user),
  },
};

/** pads: open each pad the model says the account has, signed in, and read the marker written there. */
export async function padMarkers(ctx: ProbeCtx, user: string, pass: string, markers: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const m of markers) {
    const c = padClient(`ws://127.0.0.1:${ctx.ports.http}`, `private/${user}/${m.replace(/^cattery-marker-/, 'm')}`, user, pass);
    try {
      await waitFor(`pad ${m} synced`, () => c.provider.synced, 5_000, 50).catch(() => undefined);
      if (c.provider.synced) out.push(...markersIn(c.text.toString()));
    } finally { c.close(); }
  }
  return out;
}
