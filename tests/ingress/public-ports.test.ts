// A real mail instance published on its standard ports (PUT /api/instances/:slug/public-ports): SMTP answers on 25,
// submissions on 465, submission on 587, IMAPS on 993 and IMAP on 143 of the public address (a loopback address of
// this test's own, so that files running at once never meet on port 25); autoconfig, the SRV records and "my
// services" announce those numbers; every well-known number of the catalog is refused to a second instance, the
// API to anyone but an administrator; turned off, the numbers are free again and the allocated ports are announced.
// The same rule over generated services and request orders, without an engine: tests/orchestrator/public-ports.test.ts.
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import t from 'tap';
import { loadCatalog } from '../../src/catalog/load.js';
import { LETS_ENCRYPT } from '../../src/config.js';
import { accounts } from '../../src/db/schema.js';
import { PERSON_ROLES } from '../../src/identity/roles.js';
import { createApiToken } from '../../src/identity/tokens.js';
import { createUser } from '../../src/identity/users.js';
import { wellKnownPorts } from '../../src/orchestrator/public-ports.js';
import { pageBrowser } from '../page-browser.js';
import { ROOT, docker, execIn, testRuntime, waitFor } from '../helpers.js';

const DOMAIN = 'asso.test';
// 127.0.0.0/8 is all this host's (RFC 1122 §3.2.1.3): an address no other test file binds, so 25 is free on it.
const ADDRESS = `127.${crypto.randomInt(16, 250)}.${crypto.randomInt(0, 256)}.${crypto.randomInt(2, 255)}`;
const STANDARD = { smtp: 25, submissions: 465, submission: 587, imaps: 993, imap: 143 };

/** The first line the server sends (after a TLS handshake verified against `ca` when given), then its reply to `say`. */
function greet(port: number, opts: { host?: string; ca?: string; say?: string } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const host = opts.host ?? ADDRESS;
    const sock: net.Socket = opts.ca
      ? tls.connect({ host, port, ca: opts.ca, servername: `mail.${DOMAIN}` })
      : net.connect(port, host);
    let out = '';
    let said = false;
    const timer = setTimeout(() => { sock.destroy(); reject(new Error(`no answer on ${host}:${port}: ${out}`)); }, 15_000);
    sock.on('data', (d: Buffer) => {
      out += d.toString();
      if (!said && /\r?\n/.test(out)) {
        said = true;
        if (opts.say) { sock.write(`${opts.say}\r\n`); return; }
      }
      // With `say`: until the reply's last line (`250 …` after any `250-…`, RFC 5321 §4.2.1).
      if (said && (!opts.say || /^\d{3} [^\n]*\n/m.test(out.slice(out.indexOf('\n') + 1)))) {
        clearTimeout(timer);
        sock.destroy();
        resolve(out);
      }
    });
    sock.on('error', (err) => { clearTimeout(timer); reject(err); });
  });
}

/** ECONNREFUSED (or another refusal) within a few seconds: nothing listens there. */
const refused = (port: number) => greet(port).then((banner) => `answered: ${banner}`, (err: NodeJS.ErrnoException) => err.code ?? err.message);

t.test('mail on its standard ports of the public address, announced everywhere, one holder per number', async (t) => {
  // One small service per well-known number the catalog declares, so that each number is refused on its own.
  const real = loadCatalog([path.join(ROOT, 'services'), path.join(ROOT, 'tests/fixtures/services')]);
  const numbers = [...new Set([...real.services.values()].flatMap((s) => Object.values(wellKnownPorts(s.manifest))))].sort((a, b) => a - b);
  const catDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cattery-wk-'));
  t.teardown(() => fs.rmSync(catDir, { recursive: true, force: true }));
  const probe = JSON.parse(fs.readFileSync(path.join(ROOT, 'tests/fixtures/services/probe/service.json'), 'utf8')) as Record<string, unknown>;
  for (const n of numbers) {
    const id = `wk-${n}`;
    fs.mkdirSync(path.join(catDir, id));
    fs.writeFileSync(path.join(catDir, id, 'service.json'), JSON.stringify({
      ...probe, id, http: undefined, volumes: [], ports: [{ name: 'p', container: 8080, protocol: 'tcp', publish: true, wellKnown: n }],
    }));
    fs.copyFileSync(path.join(ROOT, 'tests/fixtures/services/probe/Dockerfile'), path.join(catDir, id, 'Dockerfile'));
  }
  const rt = await testRuntime(t, {
    healthTimeoutSeconds: 180, domains: [DOMAIN],
    catalogDirs: [path.join(ROOT, 'services'), path.join(ROOT, 'tests/fixtures/services'), catDir],
    // The door itself is not needed here: only its address, where the well-known ports go.
    ingress: { enabled: false, bindAddress: ADDRESS, httpPort: 80, httpsPort: 443, acmeDirectory: LETS_ENCRYPT, hstsSeconds: 0 },
  });
  const { app } = rt;
  t.comment(`public address ${ADDRESS}`);

  const created = await app.inject({ method: 'POST', url: '/api/instances', payload: { service: 'mail', slug: 'courriel', env: { MAIL_DOMAIN: DOMAIN } } });
  t.equal(created.statusCode, 202, 'the mail instance is asked for');
  const allocated = created.json().ports as Record<string, number>;
  t.equal(created.json().publicPorts, null, 'nothing on the public address at first');

  const autoconfigPorts = async () => {
    const r = await app.inject({ url: '/mail/config-v1.1.xml', headers: { host: `autoconfig.${DOMAIN}` } });
    t.equal(r.statusCode, 200, 'autoconfig answers');
    return [...r.body.matchAll(/<hostname>([^<]+)<\/hostname>\s*<port>(\d+)<\/port>\s*<socketType>(\w+)<\/socketType>/g)].map((m) => `${m[1]}:${m[2]} ${m[3]}`);
  };
  const srvPorts = async () => {
    const r = await app.inject({ url: `/api/dns/${DOMAIN}` });
    t.equal(r.statusCode, 200, 'the DNS records of the domain');
    const records = r.json().records as { name: string; type: string; value: string }[];
    const srv = (k: string) => records.find((x) => x.name === `_${k}._tcp.${DOMAIN}.` && x.type === 'SRV')?.value;
    return { imaps: srv('imaps'), imap: srv('imap'), submissions: srv('submissions'), submission: srv('submission'), unpublished: r.json().mailUnpublished as string | null };
  };
  const allocatedSite = [`mail.${DOMAIN}:${allocated.imaps} SSL`, `mail.${DOMAIN}:${allocated.imap} STARTTLS`, `mail.${DOMAIN}:${allocated.submissions} SSL`, `mail.${DOMAIN}:${allocated.submission} STARTTLS`];
  t.same(await autoconfigPorts(), allocatedSite, 'autoconfig: the allocated ports before they are published');
  t.equal((await srvPorts()).unpublished, 'courriel', '/admin/dns says which mail instance is not on its standard ports yet');

  // Only an administrator: a resident's token, a mediator's and the city's are refused, nobody is asked to sign in.
  const everyone = { id: 'operator', roles: [...PERSON_ROLES] };
  for (const role of ['resident', 'mediator', 'city', 'member'] as const) {
    const token = createApiToken(rt.db, everyone, { name: role, roles: [role] }).token;
    for (const method of ['GET', 'PUT'] as const) {
      const r = await app.inject({ method, url: '/api/instances/courriel/public-ports', headers: { authorization: `Bearer ${token}` }, ...(method === 'PUT' ? { payload: { enabled: true } } : {}) });
      t.equal(r.headers['x-cattery-error'], 'CATTERY_ERR_FORBIDDEN', `${method} as ${role}: refused (${r.statusCode})`);
    }
  }
  const nobody = await app.inject({ method: 'PUT', url: '/api/instances/courriel/public-ports', headers: { authorization: null } as never, payload: { enabled: true } });
  t.equal(nobody.statusCode, 401, 'without a credential: sign in first');
  t.equal((await app.inject('/api/instances/courriel')).json().publicPorts, null, 'and none of them changed anything');

  const on = await app.inject({ method: 'PUT', url: '/api/instances/courriel/public-ports?wait=true', payload: { enabled: true } });
  t.equal(on.statusCode, 200, `turned on: ${on.body}`);
  t.match(on.json(), { enabled: true, address: ADDRESS, ports: STANDARD, observed: 'healthy' }, 'published, and the new container is healthy');

  const info = await docker.getContainer(`${rt.config.hosterId}-courriel`).inspect();
  for (const [name, n] of Object.entries(STANDARD)) {
    const bound = (info.HostConfig.PortBindings as Record<string, { HostIp: string; HostPort: string }[]>)[`${n}/tcp`];
    t.same(bound, [{ HostIp: '127.0.0.1', HostPort: String(allocated[name]) }, { HostIp: ADDRESS, HostPort: String(n) }], `${name}: ${ADDRESS}:${n} and its allocated port`);
  }

  // The instance's own certificate is the only trust anchor (the door's ACME one is front-door.test.ts's subject).
  const pem = (await execIn(`${rt.config.hosterId}-courriel`, ['cat', '/var/lib/cattery-mail/tls/cert.pem'])).out;
  const ca = pem.slice(pem.indexOf('-----BEGIN'));
  t.match(await greet(25, { say: 'EHLO gmail-like.test' }), /^220 [^\n]*\n[\s\S]*^250[- ]STARTTLS/m, `SMTP on ${ADDRESS}:25: a banner and EHLO with STARTTLS, as a sending server sees it`);
  t.match(await greet(993, { ca }), /^\* OK/, `IMAPS on ${ADDRESS}:993, verified for mail.${DOMAIN}`);
  t.match(await greet(465, { ca }), /^220 /, `submissions on ${ADDRESS}:465`);
  t.match(await greet(587), /^220 /, `submission on ${ADDRESS}:587`);
  t.match(await greet(143), /^\* OK/, `IMAP on ${ADDRESS}:143`);
  t.match(await greet(allocated.smtp!, { host: '127.0.0.1' }), /^220 /, 'the allocated port still answers on the publish address');

  const standardSite = [`mail.${DOMAIN}:993 SSL`, `mail.${DOMAIN}:143 STARTTLS`, `mail.${DOMAIN}:465 SSL`, `mail.${DOMAIN}:587 STARTTLS`];
  t.same(await autoconfigPorts(), standardSite, 'autoconfig: the standard ports');
  t.same(await srvPorts(), {
    imaps: `0 1 993 mail.${DOMAIN}.`, imap: `10 1 143 mail.${DOMAIN}.`, submissions: `0 1 465 mail.${DOMAIN}.`, submission: `10 1 587 mail.${DOMAIN}.`,
    unpublished: null,
  }, 'SRV records: the standard ports, and no notice');

  // "My services": a resident with a mailbox there reads the mail host and the standard ports.
  const lea = await createUser(rt.db, { login: 'lea.martin', name: 'Léa Martin', roles: ['resident'], password: 'la phrase de Léa' });
  const courriel = rt.db.$client.prepare("select id from instances where slug = 'courriel'").get() as { id: number };
  rt.db.insert(accounts).values({ instanceId: courriel.id, username: 'lea.martin', userId: lea.id, state: 'active', quotaMb: 100 }).run();
  const b = pageBrowser(app, { authorization: null });
  t.equal((await b.post('/login', { login: 'lea.martin', password: 'la phrase de Léa' }, { csrfFrom: '/login' })).statusCode, 303, 'the resident signs in');
  const me = (await b.get('/me')).body;
  t.match(me, new RegExp(`\\(IMAP\\) : serveur mail\\.${DOMAIN.replace('.', '\\.')}, port 143,`), '"my services": IMAP at mail.<domain>:143');
  t.match(me, new RegExp(`\\(SMTP\\) : serveur mail\\.${DOMAIN.replace('.', '\\.')}, port 587,`), '"my services": SMTP at mail.<domain>:587');

  // Every well-known number the catalog declares: another instance asking for it is refused while courriel holds it.
  for (const n of numbers) {
    const r = await app.inject({ method: 'POST', url: '/api/instances', payload: { service: `wk-${n}`, slug: `wk-${n}`, desired: 'stopped' } });
    t.equal(r.statusCode, 202, `wk-${n} is asked for (stopped: it only needs its row)`);
    const put = await app.inject({ method: 'PUT', url: `/api/instances/wk-${n}/public-ports`, payload: { enabled: true } });
    t.equal(put.statusCode, 409, `${n}: a second holder is refused`);
    t.equal(put.headers['x-cattery-error'], 'CATTERY_ERR_PORT_TAKEN', 'with its own code');
    t.match(put.json().message, new RegExp(`port ${n} is already published on the public address by instance "courriel"`));
  }
  t.same(Object.values(STANDARD).sort((a, b) => a - b), numbers, 'the catalog\'s numbers are mail\'s five');

  // Turned off: the numbers are free on the address, the allocated ports are announced again.
  const off = await app.inject({ method: 'PUT', url: '/api/instances/courriel/public-ports?wait=true', payload: { enabled: false } });
  t.equal(off.statusCode, 200, `turned off: ${off.body}`);
  t.match(off.json(), { enabled: false, address: null, ports: {}, observed: 'healthy' }, 'and the container made again without them is healthy');
  for (const n of Object.values(STANDARD)) t.match(await refused(n), /ECONNREFUSED/, `${ADDRESS}:${n} is closed`);
  t.match(await greet(allocated.imap!, { host: '127.0.0.1' }), /^\* OK/, 'the allocated ports answer as before');
  t.same(await autoconfigPorts(), allocatedSite, 'autoconfig: the allocated ports again');
  t.match(await srvPorts(), { imaps: `0 1 ${allocated.imaps} mail.${DOMAIN}.`, unpublished: 'courriel' }, 'SRV: the allocated port again, and the notice');
  t.match((await b.get('/me')).body, new RegExp(`port ${allocated.imap},`), '"my services": the allocated port again');
  const taken = await app.inject({ method: 'PUT', url: '/api/instances/wk-25/public-ports', payload: { enabled: true } });
  t.equal(taken.statusCode, 200, `25 can be given to another instance now: ${taken.body}`);
  for (const n of numbers) await app.inject({ method: 'DELETE', url: `/api/instances/wk-${n}?purge=true` });
  await waitFor('the small services gone', async () => (await app.inject('/api/instances')).json().length === 1, 60_000, 500);
});
