// An off-site machine for backup tests: Debian's OpenSSH server in a container on a network of its own, a user whose
// authorized key is cattery's. Labelled as the test's (cattery.test), not as the hoster's: destroying the hoster's
// objects (a disaster drill) leaves it standing, as a real remote would be.
import type { Test } from 'tap';
import { allocateSubnet } from '../../src/orchestrator/subnets.js';
import { docker, execIn } from '../helpers.js';
import { hostIn, removeNetwork, startBeside, testImage } from '../services/beside.js';

const SSHD_DOCKERFILE = [
  'ARG BASE',
  'FROM ${BASE}',
  'RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openssh-server && rm -rf /var/lib/apt/lists/* \\',
  ' && useradd --create-home --shell /bin/sh backup2 && install -d -m 0755 /run/sshd',
  '',
].join('\n');

export interface SftpRemote { name: string; network: string; address: string; url: (path: string) => string; authorize(key: string): Promise<void> }

/** `diskMb`: the backups' folder is a file system of that size (a remote whose disk fills up). `on`: a network of
 * the test's to join (the swarm fixture's, reached from the nodes) at that address, instead of one of its own: left
 * in place when the remote goes (its owner removes it). */
export async function startSftpRemote(t: Test, o: {
  hosterId: string; subnetPool: string; key: string; diskMb?: number; on?: { network: string; address: string };
}): Promise<SftpRemote> {
  let network: string;
  let address: string;
  if (o.on) {
    ({ network, address } = o.on);
  } else {
    const subnet = allocateSubnet(o.subnetPool, []);
    network = `${o.hosterId}-offsite`;
    await docker.createNetwork({ Name: network, Labels: { 'cattery.test': o.hosterId }, IPAM: { Config: [{ Subnet: subnet }] } });
    // Removed even when the remote never starts (its image build failed, say); startBeside's own teardown removes it
    // after its container otherwise, and whatever a backup left attached is cut off first.
    t.teardown(() => removeNetwork(network));
    address = hostIn(subnet, 10);
  }
  const name = `${o.hosterId}-remote`;
  await startBeside(t, {
    name, image: await testImage('sshd', SSHD_DOCKERFILE), network, address, label: o.hosterId, memoryMb: 256, keepNetwork: !!o.on,
    ...(o.diskMb ? { tmpfs: { '/srv/backups': `size=${o.diskMb}m` } } : {}),
    files: { '/home/backup2/.ssh/authorized_keys': `${o.key}\n` },
    cmd: ['sh', '-c', [
      'set -eu', 'ssh-keygen -A >/dev/null',
      'chown -R backup2:backup2 /home/backup2/.ssh && chmod 0700 /home/backup2/.ssh && chmod 0600 /home/backup2/.ssh/authorized_keys',
      'install -d -o backup2 -m 0700 /srv/backups',
      'exec /usr/sbin/sshd -D -e -o PasswordAuthentication=no',
    ].join('\n')],
  });
  return {
    name, network, address,
    url: (p) => `sftp:backup2@${address}:${p}`,
    async authorize(key) {
      const r = await execIn(name, ['sh', '-c', 'printf "%s\\n" "$1" >> /home/backup2/.ssh/authorized_keys', 'sh', key]);
      if (r.code !== 0) throw new Error(`authorized_keys: ${r.out}`);
    },
  };
}
