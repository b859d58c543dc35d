// Off-site backups over SFTP, to a real OpenSSH server (Debian's openssh-server in a container of the test's, on a
// network of its own): cattery's own SSH key, the remote's host key pinned at the first connection, and the failures
// an association meets — the remote unreachable, its disk full, its host key changed — each a clear, recorded error
// that leaves the snapshots already there usable.
import t from 'tap';
import { addRepository, backupInstance, check, listSnapshots, sshPublicKey } from '../../src/backups/backups.js';
import { HEALTHY_WITHIN_MS, docker, execIn, subnetPoolSlice, testRuntime, waitFor } from '../helpers.js';
import { startSftpRemote } from './sftp-remote.js';

t.test('backups over SFTP to another machine', async (t) => {
  // The runtime's instances take their networks from one quarter of this file's pool, the remote's from another.
  const rt = await testRuntime(t, { subnetPool: subnetPoolSlice(0) });
  const { app, config } = rt;
  const deps = rt.backups;
  t.equal((await app.inject({ method: 'POST', url: '/api/instances', payload: { service: 'probe', slug: 'sonde' } })).statusCode, 202);
  const container = `${config.hosterId}-sonde`;
  const runState = async () => { const st = (await docker.getContainer(container).inspect()).State; return { Running: st.Running, Paused: st.Paused }; };

  // The remote: its own network, a user whose authorized key is cattery's.
  const key = await sshPublicKey(deps, rt.engines.engineFor(deps.localServer()));
  t.match(key, /^ssh-ed25519 [A-Za-z0-9+/=]+ cattery-backup@/, 'cattery has an SSH key of its own');
  // Its backups' disk holds 12 MB: enough for the first backups, not for a large file later.
  const remote = await startSftpRemote(t, { hosterId: config.hosterId, subnetPool: subnetPoolSlice(1), key, diskMb: 12 });
  const { network, address } = remote;
  await waitFor('sonde healthy', async () => (await app.inject('/api/instances/sonde')).json().observed === 'healthy', HEALTHY_WITHIN_MS, 250);
  t.equal((await execIn(container, ['sh', '-c', 'echo "courrier important" > /data/lettre'], '65534')).code, 0);

  const url = `sftp:backup2@${address}:/srv/backups/cattery`;
  const repo = await waitFor('the repository made over SFTP', () => addRepository(deps, { name: 'offsite', url, network }, 'test').catch((err: Error) => {
    if (/connection refused|EOF|closed/i.test(err.message)) return undefined; // sshd still starting
    throw err;
  }), 60_000, 1000);
  t.equal(repo.url, url);
  const first = await backupInstance(deps, 'offsite', 'sonde', 'test');
  t.equal(first.status, 'done', first.error ?? 'a backup over SFTP');
  t.equal((await listSnapshots(deps, 'offsite', 'instance:sonde')).length, 1, 'its snapshot is on the remote');

  // The remote unreachable: a clear error, recorded; the snapshot there is still there once it is back.
  await docker.getContainer(`${config.hosterId}-remote`).pause();
  const cut = await backupInstance(deps, 'offsite', 'sonde', 'test');
  await docker.getContainer(`${config.hosterId}-remote`).unpause();
  t.equal(cut.status, 'failed', 'an unreachable remote fails the backup');
  t.ok(cut.error && cut.error.length > 0, `and says why: ${cut.error}`);
  t.same(await runState(), { Running: true, Paused: false }, 'the service was not left paused');
  // A health check caught by the pause fails once after it: the instance is healthy again at its next check.
  await waitFor('sonde healthy again', async () => (await app.inject('/api/instances/sonde')).json().observed === 'healthy', HEALTHY_WITHIN_MS, 250);
  t.equal((await listSnapshots(deps, 'offsite', 'instance:sonde')).length, 1, 'the earlier snapshot is still there');
  const checked = await check(deps, 'offsite', 'test', '100%');
  t.equal(checked.status, 'done', checked.error ?? 'and the repository checks whole');

  // The remote's disk fills up: a clear, recorded error; the snapshot there still restores and checks whole, and once
  // there is room again the next backup works.
  t.equal((await execIn(container, ['sh', '-c', 'head -c 14000000 /dev/urandom > /data/gros'], '65534')).code, 0);
  const full = await backupInstance(deps, 'offsite', 'sonde', 'test');
  t.equal(full.status, 'failed', 'a full disk on the remote fails the backup');
  t.match(full.error ?? '', /no space|space left|quota|failure/i, `and says so: ${full.error}`);
  t.same(await runState(), { Running: true, Paused: false }, 'the service runs on');
  // A health check caught by the pause fails once after it: the instance is healthy again at its next check.
  await waitFor('sonde healthy again', async () => (await app.inject('/api/instances/sonde')).json().observed === 'healthy', HEALTHY_WITHIN_MS, 250);
  t.equal((await listSnapshots(deps, 'offsite', 'instance:sonde')).length, 1, 'no snapshot half-made');
  t.equal((await execIn(container, ['rm', '/data/gros'], '65534')).code, 0);
  const afterFull = await check(deps, 'offsite', 'test', '100%');
  t.equal(afterFull.status, 'done', afterFull.error ?? 'the repository checks whole after the failure');
  const again = await backupInstance(deps, 'offsite', 'sonde', 'test');
  t.equal(again.status, 'done', again.error ?? 'and the next backup, with room, works');

  // A changed host key (another machine answering at that address) is refused: cattery pinned the first one.
  t.equal((await execIn(`${config.hosterId}-remote`, ['sh', '-c', 'rm /etc/ssh/ssh_host_* && ssh-keygen -A >/dev/null && kill -HUP 1'])).code, 0);
  const spoofed = await backupInstance(deps, 'offsite', 'sonde', 'test');
  t.equal(spoofed.status, 'failed', 'a remote with another host key gets nothing');
  t.match(spoofed.error ?? '', /host key|verification/i, `said plainly: ${spoofed.error}`);
});
