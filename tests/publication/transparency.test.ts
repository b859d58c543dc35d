// The public transparency pages (issue 13, "Public transparency pages"), each statement checked against the truth it
// claims to come from, read here independently of the code under test:
// - software: the real mail and pads images, inventoried by the build, list what dpkg-query says inside a container
//   of the same image and what the service's own package-lock.json says; non-free is flagged (section and licence);
// - the main page follows the configuration (changed here through the environment) and the backup rows, and never
//   shows a repository's address; a bad entry stops the start with CATTERY_ERR_CONFIG;
// - the register: over generated registers (fast-check), the public page's counts per year and kind equal what was
//   recorded, and it never shows a note or an exact day; an administrator records one through the form (CSRF);
// - the yearly report: on generated data, no count of fewer than 11 persons is shown and every shown count is true;
//   its PDF (one Chromium launch) starts with %PDF, its text (pdftotext) holds the year's figures, it is kept on disk;
//   without Chromium: 503 CATTERY_ERR_PDF_UNAVAILABLE and nothing else breaks.
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import t from 'tap';
import fc from 'fast-check';
import { pino } from 'pino';
import { loadConfig } from '../../src/config.js';
import { createRuntime } from '../../src/runtime.js';
import { createUser } from '../../src/identity/users.js';
import { createSession } from '../../src/identity/sessions.js';
import { connectEngine } from '../../src/orchestrator/docker/engine.js';
import { buildImages, buildWorkDir, serviceImageRef } from '../../src/orchestrator/docker/images.js';
import { CONTAINER_LOG } from '../../src/orchestrator/docker/container-spec.js';
import { inventoryFile, npmPackagesOf, readInventory, softwareDir } from '../../src/orchestrator/docker/software.js';
import { debianToSpdx, debianVerdict, npmVerdict } from '../../src/publication/licences.js';
import { ANSWERS, AUTHORITY_KINDS, REQUEST_TYPES } from '../../src/publication/schema.js';
import { reportCacheDir, reportPdfFile } from '../../src/publication/transparency-report.js';
import { pageBrowser } from '../page-browser.js';
import { OPERATOR, ROOT, removeHosterObjects, testConfig } from '../helpers.js';
import { generate } from './fixture.js';

const unescape = (s: string) => s.replace(/&#39;/g, "'").replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
const text = (html: string) => unescape(html.replace(/<[^>]+>/g, ' ')).replace(/\s+/g, ' ');
/** The rows of the first table after `id`, each as its cells' text. */
function tableAfter(html: string, id: string): string[][] {
  const at = html.indexOf(`id="${id}"`);
  const table = /<table[\s\S]*?<\/table>/.exec(html.slice(at))?.[0] ?? '';
  return [...table.matchAll(/<tr>([\s\S]*?)<\/tr>/g)].map((r) => [...r[1]!.matchAll(/<t[hd][^>]*>([\s\S]*?)<\/t[hd]>/g)].map((c) => text(c[1]!).trim()));
}
const dpkgVersion = (image: string, pkg: string) => {
  const r = spawnSync('docker', ['run', '--rm', '--network', 'none', '--entrypoint', 'dpkg-query', image, '-W', '-f=${Version}', pkg], { encoding: 'utf8', timeout: 60_000 });
  return r.stdout.trim();
};

t.test('transparency pages', async (t) => {
  const started = Date.now();
  const config = testConfig(t);
  const rt = await createRuntime(config, pino({ level: 'silent' }));
  t.teardown(() => rt.close());
  t.teardown(() => removeHosterObjects(config.hosterId));
  const swDir = softwareDir(config.dataDir);

  await t.test('software: each image as dpkg and its lockfile say, flagged when not free', async (t) => {
    const engine = connectEngine(config.dockerEndpoint, { hosterId: config.hosterId, timeoutSeconds: 120, log: pino({ level: 'silent' }) });
    const t0 = Date.now();
    const refs = await buildImages(engine, rt.catalog, { mirror: config.debianMirror, workDir: buildWorkDir(config.dataDir), only: ['mail', 'pads', 'probe'], progress: () => undefined, inventoryDir: swDir });
    t.comment(`inventory of ${refs.length} images: ${Date.now() - t0} ms`);
    const mailRef = serviceImageRef(rt.catalog.services.get('mail')!);
    const padsRef = serviceImageRef(rt.catalog.services.get('pads')!);
    t.equal(fs.statSync(inventoryFile(swDir, mailRef)).mode & 0o777, 0o644, 'the inventory is a public file (0644)');

    const mail = readInventory(swDir, mailRef)!;
    const dovecot = mail.debian.find((p) => p.name === 'dovecot-core');
    t.ok(dovecot, 'the mail image lists dovecot-core');
    t.equal(dovecot!.version, dpkgVersion(mailRef, 'dovecot-core'), 'with the version dpkg-query gives in a container of that image');
    t.equal(dovecot!.source, 'dovecot');
    t.equal(dovecot!.copyright, 'dep5');
    t.ok(dovecot!.licenses.includes('LGPL-2.1'), 'and the License: names of its machine-readable copyright file');
    t.equal(mail.debian.length, Number(spawnSync('docker', ['run', '--rm', '--network', 'none', '--entrypoint', 'sh', mailRef, '-c', 'dpkg-query -W | wc -l'], { encoding: 'utf8' }).stdout.trim()), 'every installed package, no more');
    t.equal(mail.npm.length, 0, 'mail has no package-lock.json');
    t.same(readInventory(swDir, serviceImageRef(rt.catalog.services.get('probe')!))!.debian, [], 'a busybox image has no Debian package, and says none');

    const lock = JSON.parse(fs.readFileSync(path.join(ROOT, 'services/pads/package-lock.json'), 'utf8')) as { packages: Record<string, { version: string; license?: string; dev?: boolean }> };
    const pads = readInventory(swDir, padsRef)!;
    const yjs = pads.npm.find((p) => p.name === 'yjs');
    t.same(yjs, { name: 'yjs', version: lock.packages['node_modules/yjs']!.version, license: 'MIT' }, 'pads lists yjs with its lock version and MIT');
    // pads builds its editor bundle from development packages (package.json's build script): those are listed too, marked.
    const inLock = Object.entries(lock.packages).filter(([k]) => k.startsWith('node_modules/'));
    t.equal(pads.npm.length, inLock.length, 'every package of the lock');
    t.same(pads.npm.filter((p) => p.build).map((p) => p.name).sort(), inLock.filter(([, p]) => p.dev).map(([k]) => k.slice(k.lastIndexOf('node_modules/') + 13)).sort(), 'the bundle\'s development packages marked as such');
    const files = JSON.parse(fs.readFileSync(path.join(ROOT, 'services/files/package-lock.json'), 'utf8')) as typeof lock;
    t.same(npmPackagesOf(path.join(ROOT, 'services/files')).map((p) => p.name).sort(),
      Object.entries(files.packages).filter(([k, p]) => k.startsWith('node_modules/') && !p.dev).map(([k]) => k.slice(k.lastIndexOf('node_modules/') + 13)).sort(), 'files (no bundle): development packages left out');

    // The page, as anyone sees it.
    const r = await rt.app.inject({ url: '/transparency/software?lang=en' });
    t.equal(r.statusCode, 200);
    const rows = tableAfter(r.body, 'sw-mail');
    const row = rows.find((c) => c[0] === 'dovecot-core');
    t.same(row?.slice(0, 2), ['dovecot-core', dovecot!.version], 'the page shows dovecot-core and its version');
    t.equal(row?.[4], 'free');
    const yrow = tableAfter(r.body, 'sw-pads').find((c) => c[0] === 'yjs');
    t.same(yrow, ['yjs', yjs!.version, 'npm', 'MIT', 'free']);
    t.match(text(r.body), /webmail.*not been inventoried yet/, 'an image not inventoried here says so');

    // Non-free is flagged: a Debian package outside main, an npm package with a proprietary or unknown licence.
    t.equal(debianVerdict('non-free/net'), 'nonfree');
    t.equal(debianVerdict('contrib/utils'), 'nonfree');
    t.equal(debianVerdict('non-free-firmware/kernel'), 'nonfree');
    t.equal(debianVerdict('mail'), 'free');
    for (const [expr, v] of [['UNLICENSED', 'nonfree'], ['SEE LICENSE IN LICENSE.txt', 'nonfree'], ['MIT', 'free'], ['(MIT OR CC0-1.0)', 'free'],
      ['CC0-1.0', 'unverified'], ['MIT AND CC-BY-NC-4.0', 'unverified'], ['BUSL-1.1', 'unverified'], ['not a licence', 'unverified']] as const) {
      t.equal(npmVerdict(expr), v, `${expr}: ${v}`);
    }
    // Debian's short names (DEP-5 §7) as SPDX identifiers, where one exists.
    for (const [deb, id] of [['GPL-2+', 'GPL-2.0-or-later'], ['LGPL-2.1', 'LGPL-2.1-only'], ['GPL-3', 'GPL-3.0-only'], ['Expat', 'MIT'], ['BSD-3-clause', 'BSD-3-Clause'],
      ['Apache-2.0', 'Apache-2.0'], ['GFDL-1.2+', 'GFDL-1.2-or-later'], ['GPL-2+ with OpenSSL exception', 'GPL-2.0-or-later'], ['public-domain', undefined]] as const) {
      t.equal(debianToSpdx(deb), id, `${deb} → ${id}`);
    }
    // An image of the same kind with such packages (its inventory file written as the build writes it): flagged.
    const probeRef = serviceImageRef(rt.catalog.services.get('probe')!);
    const probeInv = readInventory(swDir, probeRef)!;
    fs.writeFileSync(inventoryFile(swDir, probeRef), JSON.stringify({
      ...probeInv,
      debian: [{ name: 'unrar', version: '1:6.2.6-1', source: 'unrar-nonfree', sourceVersion: '1:6.2.6-1', section: 'non-free/utils', copyright: 'other', licenses: [] }],
      npm: [{ name: 'closed-thing', version: '1.0.0', license: 'UNLICENSED' }, { name: 'open-thing', version: '2.0.0', license: 'ISC' }],
    }));
    const flagged = await rt.app.inject({ url: '/transparency/software?lang=en' });
    const probeRows = tableAfter(flagged.body, 'sw-probe');
    t.same(probeRows.slice(1).map((c) => [c[0], c[4]]), [['unrar', 'NON-FREE'], ['closed-thing', 'NON-FREE'], ['open-thing', 'free']], 'non-free packages are flagged');
    t.match(text(flagged.body), /2 non-free, 0 to check\./, 'and counted');
  });

  await t.test('main page: from the configuration and the backup rows, never an address', async (t) => {
    const c = rt.db.$client;
    c.prepare("INSERT INTO backup_repositories (name, url) VALUES ('onsite', '/srv/backups/cattery'), ('offsite', 'sftp:alice@backup.example.org:/srv/restic/cattery'), ('bucket', 's3:https://s3.example.net/b')").run();
    let r = await rt.app.inject({ url: '/transparency?lang=en' });
    t.equal(r.statusCode, 200);
    let body = text(r.body);
    t.match(body, /No subcontractor is declared/);
    t.match(body, new RegExp(`Service logs: ${CONTAINER_LOG.maxSizeMb} MB per file, at most ${CONTAINER_LOG.maxFiles} files`), 'log rotation from the orchestrator\'s own constant');
    t.match(body, new RegExp(`details for ${config.meterRetentionHours} h, hourly totals for ${config.meterHourlyDays} days`));
    const backups = tableAfter(r.body, 'backups');
    t.same(backups.slice(1).map((x) => x.slice(0, 4)), [
      ['onsite', 'the server’s disk', 'France', 'the server’s disk'], ['offsite', 'remote server (SFTP)', 'not declared', 'not declared'],
      ['bucket', 'object storage (S3)', 'not declared', 'not declared'],
    ]);
    for (const secret of ['alice', 'backup.example.org', '/srv/', 's3.example.net']) t.notOk(r.body.includes(secret), `no ${secret} on the page`);

    // The same data under another configuration, given through the environment as an operator would.
    const env = {
      CATTERY_SUBCONTRACTORS: 'Hébergeur Solidaire|location du serveur|FR|https://hebergeur.example;Nordic Storage AB|stockage des sauvegardes|SE',
      CATTERY_BACKUP_SITES: 'offsite|DE|Chez un membre, Fribourg', CATTERY_METER_RETENTION_H: '12', CATTERY_SESSION_IDLE_MIN: '30',
      CATTERY_HOST_COUNTRY_CODE: 'BE', CATTERY_CHROMIUM: '/nonexistent/chromium',
    };
    const fromEnv = loadConfig(env);
    const config2 = testConfig(t, {
      dbFile: config.dbFile, publication: fromEnv.publication, meterRetentionHours: fromEnv.meterRetentionHours,
      sessionIdleMinutes: fromEnv.sessionIdleMinutes, chromium: fromEnv.chromium,
    });
    const rt2 = await createRuntime(config2, pino({ level: 'silent' }));
    t.teardown(() => rt2.close());
    r = await rt2.app.inject({ url: '/transparency?lang=fr' });
    body = text(r.body);
    t.same(tableAfter(r.body, 'subcontractors').slice(1), [
      ['Hébergeur Solidaire', 'location du serveur', 'France', 'https://hebergeur.example'], ['Nordic Storage AB', 'stockage des sauvegardes', 'Suède', '—'],
    ], 'the subcontractors as configured');
    t.same(tableAfter(r.body, 'backups').slice(1).map((x) => x.slice(0, 4)), [
      ['onsite', 'disque du serveur', 'Belgique', 'disque du serveur'], ['offsite', 'serveur distant (SFTP)', 'Allemagne', 'Chez un membre, Fribourg'],
      ['bucket', 'stockage objet (S3)', 'non déclaré', 'non déclaré'],
    ], 'a declared site and the host country follow the configuration');
    t.match(body, /le détail pendant 12 h/);
    t.match(body, /fermée après 30 minutes sans activité/);

    // Without Chromium, the PDF is a clear refusal and the rest goes on.
    r = await rt2.app.inject({ url: `/transparency/report/${new Date().getUTCFullYear()}.pdf` });
    t.equal(r.statusCode, 503);
    t.equal(r.headers['x-cattery-error'], 'CATTERY_ERR_PDF_UNAVAILABLE');
    t.match(text(r.body), /Le PDF ne peut pas être produit/);
    t.equal((await rt2.app.inject({ url: `/transparency/report/${new Date().getUTCFullYear()}` })).statusCode, 200, 'the HTML report is still there');

    // Each mistake in these variables stops the start and names itself.
    fc.assert(fc.property(fc.string({ maxLength: 6 }).filter((s) => !/^[A-Z]{2}$/.test(s) && !/[|;]/.test(s) && s.trim() === s), (country) => {
      for (const e of [{ CATTERY_SUBCONTRACTORS: `X|hosting|${country}` }, { CATTERY_BACKUP_SITES: `offsite|${country}|somewhere` }]) {
        try { loadConfig(e); return false; } catch (err) {
          if ((err as { code?: string }).code !== 'CATTERY_ERR_CONFIG' || !String((err as Error).message).includes(Object.keys(e)[0]!)) return false;
        }
      }
      return true;
    }), { numRuns: 50 });
  });

  await t.test('register: the public sees true counts per year and kind, never a note nor a day', async (t) => {
    const c = rt.db.$client;
    const today = new Date().toISOString().slice(0, 10);
    const day = fc.date({ min: new Date('1995-01-01T00:00:00Z'), max: new Date(`${today}T00:00:00Z`), noInvalidDate: true }).map((d) => d.toISOString().slice(0, 10));
    const request = fc.record({
      receivedOn: day, type: fc.constantFrom(...REQUEST_TYPES), authority: fc.constantFrom(...AUTHORITY_KINDS), answer: fc.constantFrom(...ANSWERS),
      note: fc.string({ minLength: 1, maxLength: 30 }).map((s) => `NOTE-${s}`),
    });
    let runs = 0;
    await fc.assert(fc.asyncProperty(fc.array(request, { maxLength: 12 }), async (register) => {
      runs++;
      c.prepare('DELETE FROM authority_requests').run();
      for (const q of register) {
        const r = await rt.app.inject({ method: 'POST', url: '/api/authority-requests', headers: OPERATOR, payload: q });
        if (r.statusCode !== 201) throw new Error(`recording refused: ${r.body}`);
      }
      const r = await rt.app.inject({ url: '/transparency/requests?lang=en' });
      const rows = tableAfter(r.body, 'main').slice(1);
      const truth = new Map<string, number>();
      for (const q of register) truth.set(`${q.receivedOn.slice(0, 4)}|${q.type}`, (truth.get(`${q.receivedOn.slice(0, 4)}|${q.type}`) ?? 0) + 1);
      const shown = new Map<string, number>();
      for (const row of rows) REQUEST_TYPES.forEach((ty, i) => { if (Number(row[i + 1]) > 0) shown.set(`${row[0]}|${ty}`, Number(row[i + 1])); });
      if (JSON.stringify([...truth].sort()) !== JSON.stringify([...shown].sort())) return false;
      for (const row of rows) if (Number(row.at(-1)) !== register.filter((q) => q.receivedOn.startsWith(row[0]!)).length) return false;
      if (!register.length && !/No request has been received/.test(r.body)) return false;
      // Nothing of one request: no note, no day (in either spelling), no authority nor answer.
      const page = unescape(r.body);
      for (const q of register) {
        if (page.includes(q.note) || page.includes(q.receivedOn) || page.includes(`${q.receivedOn.slice(8)}/${q.receivedOn.slice(5, 7)}/${q.receivedOn.slice(0, 4)}`)) return false;
      }
      if (/Police|Court or judge|Refused|handed over/.test(page)) return false;
      // The year's report carries the same counts and nothing more.
      const year = register[0]?.receivedOn.slice(0, 4);
      if (year && Number(year) >= 2020) {
        const rep = unescape((await rt.app.inject({ url: `/transparency/report/${year}?lang=en` })).body);
        const counts = tableAfter(rep, 'register')[1]!.map(Number);
        const want = REQUEST_TYPES.map((ty) => register.filter((q) => q.receivedOn.startsWith(year) && q.type === ty).length);
        if (JSON.stringify(counts) !== JSON.stringify([...want, want.reduce((a, b) => a + b, 0)])) return false;
        for (const q of register) if (rep.includes(q.note) || rep.includes(q.receivedOn)) return false;
      }
      return true;
    }), { numRuns: 25 });
    t.pass(`${runs} generated registers`);

    // An administrator records one through the page's form (its CSRF token included); the note stays on the admin side.
    const admin = await createUser(rt.db, { login: 'greffe', name: 'Greffe', roles: ['admin'] });
    const b = pageBrowser(rt.app);
    b.jar.set('cattery_session', createSession(rt.db, { idleMinutes: 60, maxHours: 1 }, admin.id, 'password'));
    c.prepare('DELETE FROM authority_requests').run();
    let r = await b.post('/admin/requests', { receivedOn: '2024-02-30', type: 'takedown', authority: 'rights-holder', answer: 'refused', note: 'x' }, { csrfFrom: '/admin/requests' });
    t.equal(r.statusCode, 400, 'a day that does not exist is refused, on the form');
    r = await b.post('/admin/requests', { receivedOn: '2025-06-12', type: 'takedown', authority: 'rights-holder', answer: 'refused', note: 'dossier 42, film' }, { csrfFrom: '/admin/requests' });
    t.equal(r.statusCode, 303);
    r = await b.post('/admin/requests', { receivedOn: '2025-06-13', type: 'takedown', authority: 'rights-holder', answer: 'refused', note: 'no token' });
    t.equal(r.statusCode, 403, 'without its CSRF token, refused');
    t.match(text((await b.get('/admin/requests')).body), /dossier 42, film/, 'the administrators see the note');
    const pub = await rt.app.inject({ url: '/transparency/requests?lang=en' });
    t.same(tableAfter(pub.body, 'main').slice(1), [['2025', '0', '0', '1', '0', '1']]);
    t.notOk(pub.body.includes('dossier 42') || pub.body.includes('2025-06-12'), 'the public does not');
    t.equal((await rt.app.inject({ url: '/api/authority-requests' })).statusCode, 401, 'the API wants an administrator');
    for (const receivedOn of ['2024-02-30', '1989-12-31', '2999-01-01', '2024-1-05']) {
      const bad = await rt.app.inject({ method: 'POST', url: '/api/authority-requests', headers: OPERATOR, payload: { receivedOn, type: 'other', authority: 'other', answer: 'refused' } });
      t.equal(bad.headers['x-cattery-error'], 'CATTERY_ERR_VALIDATION', `the API refuses the day ${receivedOn}`);
    }
  });

  await t.test('yearly report: the open data\'s figures after secrecy, as HTML and as PDF', async (t) => {
    const now = new Date();
    const year = now.getUTCFullYear();
    const truth = await generate(rt, 7, now);
    const lang = 'en';
    const html = (await rt.app.inject({ url: `/transparency/report/${year}?lang=${lang}` })).body;
    const rows = tableAfter(html, 'accounts');
    const months = rows[0]!.slice(1);
    t.equal(months.length, 12);
    let shown = 0, secret = 0;
    for (const row of rows.slice(1, -1)) {
      const service = row[0]!;
      truth.months.filter((m) => m.startsWith(String(year))).forEach((m) => {
        const cell = row[Number(m.slice(5, 7))]!;
        const n = truth.accounts.get(m)?.get(service) ?? 0;
        if (cell === 'secret') { secret++; return; }
        shown++;
        t.equal(Number(cell.replace(/[^\d]/g, '')), n, `${service} ${m}: the true count`);
        t.ok(n === 0 || n >= 11, `${service} ${m}: no group of fewer than 11 shown (${n})`);
      });
    }
    t.ok(shown > 0 && secret > 0, `the generated data has both published (${shown}) and secret (${secret}) cells`);

    const t0 = Date.now();
    const pdf = await rt.app.inject({ url: `/transparency/report/${year}.pdf?lang=${lang}` });
    t.comment(`PDF printed in ${Date.now() - t0} ms`);
    t.equal(pdf.statusCode, 200, pdf.statusCode === 200 ? '' : pdf.body.slice(0, 300));
    t.equal(pdf.headers['content-type'], 'application/pdf');
    t.equal(pdf.rawPayload.subarray(0, 5).toString(), '%PDF-');
    const out = spawnSync('pdftotext', ['-layout', '-', '-'], { input: pdf.rawPayload, encoding: 'utf8', timeout: 30_000 });
    t.equal(out.status, 0, out.stderr);
    const words = out.stdout.replace(/\s+/g, ' ');
    t.match(words, new RegExp(`Activity report ${year}`));
    const published = rows.slice(-1)[0]!.slice(1).filter((v) => /^\d[\d,]*$/.test(v) && v !== '0');
    t.ok(published.length > 0, 'the year has published totals');
    for (const v of published) t.ok(words.includes(` ${v} `), `the PDF's text holds the total ${v}`);
    t.notOk(html.includes('/assets/') && /<link[^>]+http/.test(html), 'the page links nothing from elsewhere');
    const file = reportPdfFile(reportCacheDir(config.dataDir), year, lang);
    t.ok(fs.existsSync(file), 'the PDF is kept on disk');
    const mtime = fs.statSync(file).mtimeMs;
    const again = await rt.app.inject({ url: `/transparency/report/${year}.pdf?lang=${lang}` });
    t.ok(again.rawPayload.equals(pdf.rawPayload) && fs.statSync(file).mtimeMs === mtime, 'asked again within the hour: the same file, not printed again');
    t.equal((await rt.app.inject({ url: `/transparency/report/${year + 1}` })).statusCode, 404, 'no report for a year to come');
    t.equal((await rt.app.inject({ url: '/transparency/report/2020.exe' })).statusCode, 404);
  });

  t.comment(`transparency tests: ${Date.now() - started} ms`);
});
