// The volume of files cattery puts on an engine for a one-shot container there (orchestrator/docker/file-volume.ts):
// how restic on another server's engine gets the repository's password without a bind of cattery's data folder. On
// the test machine's engine: the files arrive root's, 0600 in 0700 folders, as given; a one-shot reads them from a
// read-only mount and sees nothing of them in its Env; what a run wrote there is read back; the volume and its helper
// go with `remove`, and one a dead cattery left is swept.
import crypto from 'node:crypto';
import { pino } from 'pino';
import t from 'tap';
import {
  LABEL_FILES_OF, connectEngine, fillVolume, runOneShot, serviceImageRef, sweepFileVolumes, systemImage,
} from '../../src/orchestrator/docker/index.js';
import { docker } from '../helpers.js';

t.test('a volume of files: 0600, root\'s, read by a one-shot, removed after, swept when left', async (t) => {
  const prefix = `t${crypto.randomBytes(4).toString('hex')}`;
  const engine = connectEngine('unix:///var/run/docker.sock', { hosterId: prefix, timeoutSeconds: 60, log: pino({ level: 'silent' }) });
  const image = serviceImageRef(systemImage('backup'));
  t.teardown(async () => {
    const left = await docker.listVolumes({ filters: { label: [`cattery.hoster=${prefix}`] } });
    for (const v of left.Volumes ?? []) await docker.getVolume(v.Name).remove({ force: true }).catch(() => undefined);
    for (const c of await docker.listContainers({ all: true, filters: { label: [`cattery.hoster=${prefix}`] } })) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
  });
  const secret = crypto.randomBytes(24).toString('base64url');
  const files = await fillVolume(engine, { volume: `${prefix}-files`, image, role: 'backup', files: { 'restic-password': `${secret}\n`, 'ssh/id_ed25519': 'clé' } });
  const r = await runOneShot(engine, {
    name: `${prefix}-reader`, image, role: 'backup', network: 'none', timeoutMs: 60_000, entrypoint: ['/bin/sh'],
    argv: ['-c', 'stat -c "%a %u %g %n" /run/cattery/restic-password /run/cattery/ssh /run/cattery/ssh/id_ed25519 && cat /run/cattery/restic-password && env && echo x > /run/cattery/w'],
    mounts: [{ kind: 'volume', source: files.volume, target: '/run/cattery', readOnly: true }],
  });
  const lines = r.stdout.split('\n');
  t.same(lines.slice(0, 3), ['600 0 0 /run/cattery/restic-password', '700 0 0 /run/cattery/ssh', '600 0 0 /run/cattery/ssh/id_ed25519'], 'root\'s, 0600 files in 0700 folders');
  t.equal(lines[3], secret, 'the password as given');
  t.notOk(lines.slice(4).some((l) => l.includes(secret)), 'and nowhere in the container\'s environment');
  t.not(r.exitCode, 0, 'a read-only mount: the one-shot cannot write there');
  t.equal((await files.read('restic-password'))?.toString(), `${secret}\n`, 'read back');
  t.equal(await files.read('known_hosts'), undefined, 'a file that is not there: undefined');
  await files.remove();
  await t.rejects(docker.getVolume(`${prefix}-files`).inspect(), undefined, 'the volume is gone');
  await t.rejects(docker.getContainer(`${prefix}-files-fill`).inspect(), undefined, 'and its helper');

  // One a cattery that died left (its process gone), and one of a live process: only the first is swept.
  const left = await fillVolume(engine, { volume: `${prefix}-left`, image, role: 'backup', files: { a: 'b' } });
  const live = await fillVolume(engine, { volume: `${prefix}-live`, image, role: 'backup', files: { a: 'b' } });
  t.equal((await docker.getVolume(left.volume).inspect()).Labels?.[LABEL_FILES_OF], String(process.pid));
  const swept = await sweepFileVolumes(engine, 'backup', () => false);
  t.same(swept.sort(), [left.volume, live.volume].sort(), 'every volume of a gone process is swept');
  await t.rejects(docker.getVolume(live.volume).inspect(), undefined);
  const kept = await fillVolume(engine, { volume: `${prefix}-kept`, image, role: 'backup', files: { a: 'b' } });
  t.same(await sweepFileVolumes(engine, 'backup', (pid) => pid === process.pid), [], 'a live process\'s is kept');
  await kept.remove();
  await t.rejects(fillVolume(engine, { volume: `${prefix}-bad`, image, role: 'backup', files: { '../x': 'y' } }), /relative and plain/, 'a path out of the volume is refused');
  await t.rejects(docker.getVolume(`${prefix}-bad`).inspect(), undefined, 'and leaves nothing');
});
