// Backups to a local restic repository, on the real engine with cattery's restic image: an instance's volume and
// cattery itself as tagged snapshots, the password file 0600 and the recovery sheet, a restore into place that gives
// back exactly the snapshot (files added since are gone, files changed are as they were), cattery's database copied
// through SQLite's online backup while it serves, and clear, recorded failures: a wrong password, a corrupted pack.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import t from 'tap';
import {
  accessOf, addRepository, lockFile, backupHoster, backupInstance, check, listSnapshots, passwordFile, recoverySheet, restoreHosterFiles, restoreVolumes,
} from '../../src/backups/backups.js';
import { getInstance } from '../../src/orchestrator/instances.js';
import { createSession } from '../../src/identity/sessions.js';
import { createUser } from '../../src/identity/users.js';
import { pageBrowser } from '../page-browser.js';
import { HEALTHY_WITHIN_MS, docker, execIn, testRuntime, waitFor } from '../helpers.js';

t.test('an instance and cattery to a local repository, and back', async (t) => {
  const rt = await testRuntime(t);
  const { app, config } = rt;
  const deps = rt.backups;
  const repoDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cattery-restic-'));
  t.teardown(() => fs.rmSync(repoDir, { recursive: true, force: true }));
  const container = `${config.hosterId}-sonde`;
  t.equal((await app.inject({ method: 'POST', url: '/api/instances', payload: { service: 'probe', slug: 'sonde' } })).statusCode, 202);
  await waitFor('sonde healthy', async () => (await app.inject('/api/instances/sonde')).json().observed === 'healthy', HEALTHY_WITHIN_MS, 250);
  const sh = (script: string) => execIn(container, ['sh', '-c', script], '65534');
  t.equal((await sh('mkdir -p /data/boite && echo "lettre du lundi" > /data/boite/1 && echo "garde" > /data/keep')).code, 0);

  const repo = await addRepository(deps, { name: 'local', url: `${repoDir}/repo` }, 'test');
  const pw = passwordFile(config.dataDir, repo);
  t.equal(fs.statSync(pw).mode & 0o777, 0o600, 'the password file is 0600');
  t.equal(fs.statSync(path.dirname(pw)).mode & 0o777, 0o700, 'in a 0700 folder');
  const password = fs.readFileSync(pw, 'utf8').trim();
  t.ok(password.length >= 40, 'a long random password');
  const sheet = await recoverySheet(deps, 'local');
  t.match(sheet, password, 'the sheet gives the password');
  t.match(sheet, `${repoDir}/repo`, 'and the repository');
  t.match(sheet, /cattery\.js restore --from/, 'and the restore command');
  t.ok(fs.existsSync(path.join(repoDir, 'repo', 'config')), 'restic made its repository');
  await t.rejects(addRepository(deps, { name: 'local', url: `${repoDir}/other` }, 'test'), { code: 'CATTERY_ERR_CONFLICT' });
  await t.rejects(addRepository(deps, { name: 'bad', url: 'ftp://nowhere/x' }, 'test'), { code: 'CATTERY_ERR_VALIDATION' });

  const first = await backupInstance(deps, 'local', 'sonde', 'test');
  t.equal(first.status, 'done', first.error ?? 'first backup');
  t.equal(first.consistency, 'paused', 'taken with the container paused');
  t.ok((first.bytesProcessed ?? 0) > 0 && first.snapshotId, `snapshot ${first.snapshotId}, ${first.bytesProcessed} bytes read`);
  const st = (await docker.getContainer(container).inspect()).State;
  t.same([st.Running, st.Paused], [true, false], 'the service runs again after the copy');
  const paused = (await execIn(container, ['true'])).code;
  t.equal(paused, 0, 'and is not left paused');

  const hoster = await backupHoster(deps, 'local', 'test');
  t.equal(hoster.status, 'done', hoster.error ?? 'cattery itself');

  const snaps = await listSnapshots(deps, 'local');
  t.same(snaps.map((s) => s.tags.filter((x) => x !== 'cattery').sort()), [['instance:sonde', 'service:probe'], ['hoster']], 'two snapshots, tagged');
  t.ok(snaps.every((s) => s.host === config.hosterId), 'under the hoster id');

  // cattery's database in its snapshot is a consistent copy of the live one (online backup, WAL included): it opens,
  // passes SQLite's integrity check, and holds the instance; the secret came along, 0600.
  const back = fs.mkdtempSync(path.join(os.tmpdir(), 'cattery-hoster-'));
  t.teardown(() => fs.rmSync(back, { recursive: true, force: true }));
  await restoreHosterFiles(deps, rt.engines.engineFor(deps.localServer()), accessOf(config.dataDir, repo), back);
  const copy = new Database(path.join(back, 'cattery.db'), { readonly: true });
  t.equal((copy.prepare('PRAGMA integrity_check').get() as { integrity_check: string }).integrity_check, 'ok', 'the database copy is whole');
  t.same(copy.prepare('SELECT slug FROM instances').all(), [{ slug: 'sonde' }], 'and holds the instance');
  copy.close();
  t.equal(fs.readFileSync(path.join(back, 'secret.key'), 'utf8'), fs.readFileSync(path.join(config.dataDir, 'secret.key'), 'utf8'), 'the secret came along');
  t.equal(fs.statSync(path.join(back, 'secret.key')).mode & 0o777, 0o600, 'still 0600');
  const identity = path.join('federation', 'identity.json');
  t.equal(fs.readFileSync(path.join(back, identity), 'utf8'), fs.readFileSync(path.join(config.dataDir, identity), 'utf8'), 'the federation key came along');
  t.equal(fs.statSync(path.join(back, identity)).mode & 0o777, 0o600, 'still 0600');

  // Changes after the backup, then a restore into place: the volume is the snapshot's again.
  t.equal((await sh('echo "lettre du mardi" > /data/boite/2 && echo "abîmé" > /data/keep')).code, 0);
  const restored = await restoreVolumes(deps, 'local', { slug: 'sonde' }, getInstance(rt.db, 'sonde'), 'test');
  t.equal(restored.status, 'done', restored.error ?? 'restored');
  t.equal((await sh('cat /data/keep')).out.trim(), 'garde', 'a changed file is as it was');
  t.equal((await sh('cat /data/boite/1')).out.trim(), 'lettre du lundi', 'a kept file is there');
  t.equal((await sh('test -e /data/boite/2; echo $?')).out.trim(), '1', 'a file made after the snapshot is gone');
  t.equal((await sh('stat -c %u /data/boite/1')).out.trim(), '65534', 'owners are kept');

  // Or beside it, as a new instance to compare: the snapshot's data there, the original left as it is now.
  t.equal((await sh('echo "depuis" > /data/aujourdhui')).code, 0);
  const beside = await app.inject({ method: 'POST', url: '/api/backups/local/restore', payload: { instance: 'sonde', into: 'sonde-hier' } });
  t.equal(beside.statusCode, 200, beside.body.slice(0, 300));
  t.equal(beside.json().run.status, 'done', beside.json().run.error ?? 'restored beside');
  await waitFor('sonde-hier healthy', async () => (await app.inject('/api/instances/sonde-hier')).json().observed === 'healthy', HEALTHY_WITHIN_MS, 250);
  const hier = (script: string) => execIn(`${config.hosterId}-sonde-hier`, ['sh', '-c', script], '65534');
  t.equal((await hier('cat /data/keep /data/boite/1')).out, 'garde\nlettre du lundi\n', 'the copy holds the snapshot');
  t.equal((await hier('test -e /data/aujourdhui; echo $?')).out.trim(), '1', 'and not what came after');
  t.equal((await sh('cat /data/aujourdhui')).out.trim(), 'depuis', 'the original is untouched');
  t.equal((await app.inject({ method: 'POST', url: '/api/backups/local/restore', payload: { instance: 'sonde', into: 'sonde-hier' } })).statusCode, 409, 'a slug taken is refused');
  const none = await app.inject({ method: 'POST', url: '/api/backups/local/restore', payload: { instance: 'sonde', snapshot: 'ffffffff' } });
  t.equal(none.statusCode, 404, 'a snapshot that does not exist is a clear error');
  t.match(none.json().message, /No snapshot ffffffff/);
  t.equal((await sh('cat /data/aujourdhui')).out.trim(), 'depuis', 'and touches nothing');

  // A check reads the data; a wrong password and a corrupted pack each give a clear, recorded error.
  const ok = await check(deps, 'local', 'test', '100%');
  t.equal(ok.status, 'done', ok.error ?? 'check passes');
  fs.writeFileSync(pw, 'not the password\n', { mode: 0o600 });
  const wrong = await backupInstance(deps, 'local', 'sonde', 'test');
  t.equal(wrong.status, 'failed');
  t.match(wrong.error ?? '', /password/i, `a wrong password says so: ${wrong.error}`);
  fs.writeFileSync(pw, `${password}\n`, { mode: 0o600 });
  // /metrics says when each target last got a snapshot, and that the newest run of the instance failed.
  const metrics = (await app.inject('/metrics')).body;
  const last = new RegExp(`cattery_backup_last_success_timestamp_seconds\\{repository="local",target="instance:sonde"\\} (\\d+(?:\\.\\d+)?)`).exec(metrics);
  t.ok(last && Math.abs(Number(last[1]) - Date.parse(first.finishedAt!) / 1000) < 1, `the last success of sonde: ${last?.[1]}`);
  t.match(metrics, 'cattery_backup_last_success_timestamp_seconds{repository="local",target="hoster"}', 'and of cattery itself');
  t.match(metrics, 'cattery_backup_last_run_failed{repository="local",target="instance:sonde"} 1', 'the failed run shows');
  t.match(metrics, 'cattery_backup_last_run_failed{repository="local",target="hoster"} 0');
  // The admin sees it at a glance: the API and the admin page say which target is failing, and why.
  const state = (await app.inject('/api/backups')).json() as { name: string; targets: { target: string; state: string; lastError: string | null }[] }[];
  t.same(state.map((r) => [r.name, r.targets.map((x) => [x.target, x.state])]), [['local', [['hoster', 'ok'], ['instance:sonde', 'failed'], ['instance:sonde-hier', 'never']]]], 'GET /api/backups');
  t.match(state[0]!.targets[1]!.lastError ?? '', /password/i);
  const admin = await createUser(rt.db, { login: 'bk-admin', name: 'Admin', roles: ['admin'] });
  const browser = pageBrowser(app, { authorization: null });
  browser.jar.set('cattery_session', createSession(rt.db, { idleMinutes: 60, maxHours: 1 }, admin.id, 'password'));
  const adminPage = (await browser.get('/admin?lang=fr')).body;
  t.match(adminPage, /<h2 id="backups">Sauvegardes<\/h2>/, 'the admin page has the backups');
  t.match(adminPage, /<td>sonde<\/td><td class="err">en échec<\/td>/, 'and says which one fails');
  t.match(adminPage, /2 élément\(s\) à regarder/, 'with a summary first');
  t.equal((await app.inject({ method: 'GET', url: '/api/backups/nowhere/runs' })).statusCode, 404);
  t.ok(((await app.inject('/api/backups/local/runs')).json() as unknown[]).length >= 4, 'the runs, newest first');
  const packs = fs.readdirSync(path.join(repoDir, 'repo', 'data'), { recursive: true, withFileTypes: true }).filter((d) => d.isFile());
  const victim = path.join(packs[0]!.parentPath ?? (packs[0] as unknown as { path: string }).path, packs[0]!.name);
  const bytes = fs.readFileSync(victim);
  fs.chmodSync(victim, 0o600);
  bytes[Math.floor(bytes.length / 2)] ^= 0xff;
  fs.writeFileSync(victim, bytes);
  const bad = await check(deps, 'local', 'test', '100%');
  t.equal(bad.status, 'failed', 'a flipped byte in a pack fails the check');
  t.ok(bad.error, `with restic's reason: ${bad.error}`);
  t.teardown(() => fs.chmodSync(victim, 0o600));
  fs.writeFileSync(victim, (() => { bytes[Math.floor(bytes.length / 2)] ^= 0xff; return bytes; })());

  // One restic per repository across cattery's processes: a live holder (a CLI run beside serve) makes a run a clear,
  // recorded refusal; a holder that died leaves nothing in the way.
  const holder = spawn('sleep', ['30']);
  t.teardown(() => { holder.kill(); });
  fs.mkdirSync(path.dirname(lockFile(config.dataDir, repo.url)), { recursive: true });
  fs.writeFileSync(lockFile(config.dataDir, repo.url), String(holder.pid));
  const refused = await backupInstance(deps, 'local', 'sonde', 'test');
  t.equal(refused.status, 'failed');
  t.match(refused.error ?? '', /already working on this repository/, `a live holder: ${refused.error}`);
  t.equal((await app.inject({ method: 'POST', url: '/api/backups/local/run' })).statusCode, 409, 'and a run asked now is refused');
  holder.kill();
  await new Promise((r) => holder.once('exit', r));
  const freed = await backupInstance(deps, 'local', 'sonde', 'test');
  t.equal(freed.status, 'done', freed.error ?? 'a dead holder is no obstacle');
  t.notOk(fs.existsSync(lockFile(config.dataDir, repo.url)), 'and the run leaves no lock behind');

  // A backup asked now (from the page, then the API) starts in the background; a second one meanwhile is refused.
  const asked = await browser.post('/admin/backups/local/run', {}, { csrfFrom: '/admin' });
  t.equal(asked.headers.location, '/admin?backup=started#backups', 'the page starts it');
  t.equal((await app.inject({ method: 'POST', url: '/api/backups/local/run' })).statusCode, 409, 'one run at a time per repository');
  t.equal((await browser.post('/admin/backups/local/run', {}, { csrfFrom: '/admin' })).headers.location, '/admin?backup=busy#backups', 'and the page says so');
  await waitFor('the run asked now to finish', async () => ((await app.inject('/api/backups')).json() as { targets: { state: string }[] }[])[0]!.targets.every((x) => x.state === 'ok' || x.state === 'failed'), 120_000, 500);
  const after = (await app.inject('/api/backups')).json() as { targets: { target: string; state: string }[] }[];
  t.same(after[0]!.targets.map((x) => x.state), ['ok', 'ok', 'ok'], 'and brings every target up to date');

});
