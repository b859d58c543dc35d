// Hostile input to the backups domain, without Docker: what an administrator types (a local repository in cattery's
// data folder or Docker's, or over a system folder; a network; a check subset; a snapshot prefix) is refused with a
// reason before anything is written or chmod-ed, and what an interrupted hoster backup staged does not stay.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import {
  addRepository, localRepoProblem, networkProblem, pickSnapshot, sweepStage, validSubset, type BackupDeps,
} from '../../src/backups/backups.js';
import type { Snapshot } from '../../src/backups/restic.js';

const seg = fc.stringMatching(/^[A-Za-z0-9._-]{1,12}$/).filter((s) => s !== '.' && s !== '..');

t.test('a local repository is never in, nor over, cattery\'s data folder or Docker\'s', async (t) => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cattery-data-'));
  const elsewhere = fs.mkdtempSync(path.join(os.tmpdir(), 'cattery-elsewhere-'));
  t.teardown(() => { fs.rmSync(dataDir, { recursive: true, force: true }); fs.rmSync(elsewhere, { recursive: true, force: true }); });
  fs.mkdirSync(path.join(dataDir, 'restic', 'keys'), { recursive: true });
  fs.symlinkSync(dataDir, path.join(elsewhere, 'link'));
  fc.assert(fc.property(fc.array(seg, { maxLength: 4 }), (segs) => {
    return localRepoProblem(dataDir, path.join(dataDir, ...segs)) !== null
      && localRepoProblem(dataDir, path.join(elsewhere, 'link', ...segs)) !== null
      && localRepoProblem(dataDir, path.join('/var/lib/docker/volumes', ...segs)) !== null;
  }), { numRuns: 300 });
  // Every folder above the data folder holds it.
  for (let p = dataDir; p !== '/'; p = path.dirname(p)) t.not(localRepoProblem(dataDir, path.dirname(p)), null, path.dirname(p));
  t.not(localRepoProblem(dataDir, '/var/lib'), null, 'Docker\'s data folder is inside');
  t.not(localRepoProblem(dataDir, '/etc'), null, 'a system folder with files is not taken over');
  t.equal(localRepoProblem(dataDir, path.join(elsewhere, 'new', 'repo')), null, 'a new folder elsewhere is fine');
  fs.mkdirSync(path.join(elsewhere, 'empty'));
  t.equal(localRepoProblem(dataDir, path.join(elsewhere, 'empty')), null, 'and an empty one');
  fs.mkdirSync(path.join(elsewhere, 'repo'));
  fs.writeFileSync(path.join(elsewhere, 'repo', 'config'), 'x');
  t.equal(localRepoProblem(dataDir, path.join(elsewhere, 'repo')), null, 'and an existing restic repository');

  // addRepository refuses before it writes a password or chmods a folder (no database, no engine reached).
  const deps = { dataDir, db: undefined, log: undefined } as unknown as BackupDeps;
  const etcMode = fs.statSync('/etc').mode;
  await t.rejects(addRepository(deps, { name: 'etc', url: '/etc' }, 'test'), { code: 'CATTERY_ERR_VALIDATION' });
  t.equal(fs.statSync('/etc').mode, etcMode, '/etc keeps its mode');
  await t.rejects(addRepository(deps, { name: 'inside', url: path.join(dataDir, 'restic', 'keys') }, 'test'), { code: 'CATTERY_ERR_VALIDATION' });
  await t.rejects(addRepository(deps, { name: 'root', url: '/' }, 'test'), { code: 'CATTERY_ERR_VALIDATION' });
  await t.rejects(addRepository(deps, { name: 'hostnet', url: 'sftp:u@h:/p', network: 'host' }, 'test'), { code: 'CATTERY_ERR_VALIDATION' });
});

t.test('networks: a plain Docker name, never the host\'s nor another container\'s namespace', async (t) => {
  fc.assert(fc.property(fc.string({ maxLength: 70 }), (n) => {
    const ok = networkProblem(n) === null;
    return !ok || (n !== 'host' && !n.includes(':') && /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(n));
  }), { numRuns: 2000 });
  t.not(networkProblem('host'), null);
  t.not(networkProblem('container:abc'), null);
  t.equal(networkProblem('sftp-net'), null);
});

t.test('a check subset: what restic accepts, nothing it refuses after the run is recorded', async (t) => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 12000 }), fc.integer({ min: 0, max: 12000 }), (n, m) =>
    validSubset(`${n}/${m}`) === (n >= 1 && m >= 1 && n <= m && m <= 9999)), { numRuns: 3000 });
  fc.assert(fc.property(fc.integer({ min: 0, max: 200 }), (p) => validSubset(`${p}%`) === (p >= 1 && p <= 100)), { numRuns: 500 });
  for (const bad of ['0/5', '6/5', '0%', '5%%', '1/0', '-1/2']) t.equal(validSubset(bad), false, bad);
});

t.test('a snapshot prefix names one snapshot or is refused', async (t) => {
  const hex = fc.stringMatching(/^[0-9a-f]{64}$/);
  fc.assert(fc.property(fc.uniqueArray(hex, { minLength: 1, maxLength: 6 }), fc.nat(), fc.integer({ min: 1, max: 64 }), (ids, pick, len) => {
    const snaps = ids.map((id, i) => ({ id, shortId: id.slice(0, 8), time: `2026-12-0${i + 1}`, host: 'h', tags: [], paths: [] })) as Snapshot[];
    const prefix = ids[pick % ids.length]!.slice(0, len);
    const matching = ids.filter((id) => id.startsWith(prefix));
    let got: Snapshot | undefined;
    try { got = pickSnapshot(snaps, prefix); } catch (err) {
      return (err as { code?: string }).code === 'CATTERY_ERR_VALIDATION' && (len < 8 || matching.length > 1);
    }
    return len >= 8 && matching.length === 1 && got?.id === matching[0];
  }), { numRuns: 2000 });
  const twins = ['ab12cd34' + '0'.repeat(56), 'ab12cd34' + '1'.repeat(56)].map((id) => ({ id, shortId: id.slice(0, 8), time: '', host: 'h', tags: [], paths: [] }));
  t.throws(() => pickSnapshot(twins, 'ab12cd34'), { code: 'CATTERY_ERR_VALIDATION' }, 'an ambiguous prefix is refused');
  t.throws(() => pickSnapshot(twins, 'a'), { code: 'CATTERY_ERR_VALIDATION' }, 'a one-digit prefix is refused');
});

t.test('a hoster backup killed midway leaves no copy of cattery.db behind', async (t) => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cattery-data-'));
  t.teardown(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  const dead = spawnSync('true').pid!;
  const stage = path.join(dataDir, 'restic', 'stage');
  for (const n of [`hoster-${dead}-3`, `hoster-${process.pid}-4`]) {
    fs.mkdirSync(path.join(stage, n), { recursive: true });
    fs.writeFileSync(path.join(stage, n, 'cattery.db'), 'residents\' hashes', { mode: 0o600 });
  }
  t.same(sweepStage(dataDir), [`hoster-${dead}-3`], 'the dead run\'s staging is removed');
  t.same(fs.readdirSync(stage), [`hoster-${process.pid}-4`], 'a live run\'s is kept');
});

t.test('a dump\'s excludes name a path inside one of the service\'s volumes, and reach restic as that one path', async (t) => {
  const { checkDumpExcludes } = await import('../../src/catalog/load.js');
  const { backupArgs, parseRepoUrl } = await import('../../src/backups/restic.js');
  const m = (exclude: string[]) => ({ volumes: [{ name: 'pads', path: '/var/lib/pads', sizeMb: 10 }], backup: { dump: { exec: ['x'], exclude } } }) as never;
  t.same(checkDumpExcludes(m(['pads/db', 'pads/a b/c'])), [], 'paths inside the volume');
  fc.assert(fc.property(fc.array(fc.constantFrom('..', '.', '', 'db'), { minLength: 1, maxLength: 4 }).filter((s) => s.some((x) => x === '..' || x === '.' || x === '')), (segs) =>
    checkDumpExcludes(m([['pads', ...segs].join('/')])).length === 1), { numRuns: 200 });
  t.equal(checkDumpExcludes(m(['other/db'])).length, 1, 'a volume the service does not have');
  // Glob characters in a path are escaped: restic leaves out that one path, not every path the pattern matches.
  fc.assert(fc.property(fc.stringMatching(/^[a-z*?[\]\\]{1,12}$/), (name) => {
    const args = backupArgs(parseRepoUrl('/srv/r'), { host: 'h', tags: [], paths: ['/x'], exclude: [`/x/${name}`] });
    const pattern = args[args.indexOf('--exclude') + 1]!;
    // Unescaping gives the path back, and no glob character is left bare.
    return pattern.replace(/\\(.)/g, '$1') === `/x/${name}` && !/(^|[^\\])(\\\\)*[*?[\]]/.test(pattern.replace(/\\[\\*?[\]]/g, ''));
  }), { numRuns: 300 });
});
