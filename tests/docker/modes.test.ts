// Item 7: every file and folder cattery creates in its data folder is its user's alone (files 0600, folders 0700),
// after a real run: the CLI's migrate, then a runtime that makes an instance (volume image), archives it on delete,
// and writes its database with WAL and SHM. The whole tree is walked, so a new kind of file cannot slip through.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import t from 'tap';
import tap from 'tap';
import { ROOT, testRuntime, waitFor } from '../helpers.js';
import { detachUnder } from '../../src/orchestrator/sized-volumes.js';

function walk(dir: string, out: { file: string; mode: number; dir: boolean }[] = []) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, e.name);
    if (e.isSymbolicLink()) continue; // a link's own mode means nothing; its target is checked where it lives
    const st = fs.statSync(full);
    out.push({ file: full, mode: st.mode & 0o777, dir: e.isDirectory() });
    if (e.isDirectory()) walk(full, out);
  }
  return out;
}

function checkTree(t: Parameters<Parameters<typeof tap.test>[1]>[0], root: string) {
  const entries = [{ file: root, mode: fs.statSync(root).mode & 0o777, dir: true }, ...walk(root)];
  for (const e of entries) t.equal(e.mode, e.dir ? 0o700 : 0o600, `${path.relative(root, e.file) || '.'} is ${e.dir ? '0700' : '0600'}`);
  return entries;
}

t.test('cattery migrate makes data/ and cattery.db private, whatever the caller\'s umask', async (t) => {
  const parent = fs.mkdtempSync(path.join(os.tmpdir(), 'cattery-modes-'));
  t.teardown(() => fs.rmSync(parent, { recursive: true, force: true }));
  const dataDir = path.join(parent, 'data');
  const r = spawnSync('/bin/sh', ['-c', 'umask 022 && exec "$0" "$1" migrate', process.execPath, path.join(ROOT, 'bin/cattery.js')],
    { env: { PATH: process.env.PATH, CATTERY_DATA_DIR: dataDir, CATTERY_LOG_LEVEL: 'silent' }, encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  const files = checkTree(t, dataDir).map((e) => path.basename(e.file));
  t.ok(files.includes('cattery.db'));
});

t.test('after a real run (instance, volume image, archive, WAL) every file is 0600 and every folder 0700', async (t) => {
  const old = process.umask(0o022);
  t.teardown(() => { process.umask(old); });
  const rt = await testRuntime(t);
  const { app, config } = rt;
  t.teardown(() => detachUnder(config.dataDir));
  await app.inject({ method: 'POST', url: '/api/instances', payload: { service: 'probe', slug: 'modes' } });
  await waitFor('healthy', async () => (await app.inject('/api/instances/modes')).json().observed === 'healthy');
  const mid = checkTree(t, config.dataDir).map((e) => path.relative(config.dataDir, e.file));
  t.ok(mid.includes('cattery.db-wal') && mid.includes('cattery.db-shm'), `WAL and SHM were seen: ${mid.join(', ')}`);
  t.ok(mid.some((f) => f.startsWith('volumes/') && f.endsWith('.ext4')), 'a volume image was seen');
  t.equal((await app.inject({ method: 'DELETE', url: '/api/instances/modes?wait=true' })).json().observed, 'deleted');
  const end = checkTree(t, config.dataDir).map((e) => path.relative(config.dataDir, e.file));
  t.ok(end.some((f) => /^backups\/modes-[^/]+\/data\.tar\.gz$/.test(f)), `an archive was seen: ${end.join(', ')}`);
  t.ok(end.some((f) => /^backups\/modes-[^/]+\/instance\.json$/.test(f)));
});
