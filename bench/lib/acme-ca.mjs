// A real ACME CA on this engine: Caddy's own `acme_server` (smallstep's CA inside Caddy) in a container of the
// ingress image, for the front door's tests and bench/ingress. Certificates are really issued over HTTP-01 and
// clients verify them against this CA's root; nothing leaves the project's own containers and loopback.
//   - the CA answers at https://acme.test/acme/local/directory, a network alias on the front door's own network;
//   - it reaches the names under test through /etc/hosts lines pointing at the front door's address there.
// Its objects carry `cattery.test=<hoster>`, not the hoster's own label (cattery would sweep them as orphans).
import fs from 'node:fs';
import path from 'node:path';
import tarStream from 'tar-stream';

export const ACME_HOST = 'acme.test';
export const ACME_DIRECTORY = `https://${ACME_HOST}/acme/local/directory`;

const CA_CONFIG = {
  admin: { disabled: true },
  storage: { module: 'file_system', root: '/var/lib/ingress/caddy' },
  apps: {
    pki: { certificate_authorities: { local: { install_trust: false } } },
    http: { servers: { acme: {
      listen: [':443'],
      routes: [{ match: [{ host: [ACME_HOST] }], handle: [{ handler: 'acme_server', ca: 'local' }] }],
      automatic_https: { disable_redirects: true },
    } } },
    tls: { automation: { policies: [{ subjects: [ACME_HOST], issuers: [{ module: 'internal', ca: 'local' }] }] } },
  },
};

async function readFile(docker, containerId, file) {
  const stream = await docker.getContainer(containerId).getArchive({ path: file }).catch(() => undefined);
  if (!stream) return undefined;
  const extract = tarStream.extract();
  let out;
  const done = new Promise((resolve, reject) => {
    extract.on('entry', (_h, s, next) => {
      const chunks = [];
      s.on('data', (c) => chunks.push(c));
      s.on('end', () => { out ??= Buffer.concat(chunks); next(); });
    });
    extract.on('finish', resolve);
    extract.on('error', reject);
  });
  stream.pipe(extract);
  await done;
  return out;
}

/** Start the CA and wait for its root; `remove()` takes it and its network away. `subnet`: its network's, where the
 * caller has a pool of its own (the tests do), rather than one of Docker's few default pools. */
export async function startAcmeCa(docker, { hosterId, image, dir, subnet, timeoutMs = 30_000 }) {
  const labels = { 'cattery.test': hosterId };
  const network = await docker.createNetwork({
    Name: `${hosterId}-acmeca`, Labels: labels, ...(subnet ? { IPAM: { Driver: 'default', Config: [{ Subnet: subnet }] } } : {}),
  });
  const c = await docker.createContainer({
    name: `${hosterId}-acmeca`, Image: image, Labels: labels,
    Env: [`CA_CONFIG=${JSON.stringify(CA_CONFIG)}`],
    Cmd: ['/bin/sh', '-c', 'printf %s "$CA_CONFIG" > /tmp/ca.json && exec caddy run --config /tmp/ca.json'],
    HostConfig: { NetworkMode: `${hosterId}-acmeca`, Tmpfs: { '/tmp': 'rw,size=4m' } },
  });
  const remove = async () => {
    await c.remove({ force: true }).catch(() => undefined);
    await network.remove().catch(() => undefined);
  };
  try {
    await c.start();
    const until = Date.now() + timeoutMs;
    let root;
    while (!(root = await readFile(docker, c.id, '/var/lib/ingress/caddy/pki/authorities/local/root.crt'))) {
      if (Date.now() > until) throw new Error('the test CA made no root');
      await new Promise((r) => setTimeout(r, 200));
    }
    const rootFile = path.join(dir, 'acme-root.pem');
    fs.writeFileSync(rootFile, root, { mode: 0o644 });
    return { id: c.id, rootPem: root.toString(), rootFile, remove };
  } catch (err) {
    await remove();
    throw err;
  }
}

/** Join the CA to the front door's network as acme.test, and make `names` resolve to the door there. */
export async function wireAcmeCa(docker, ca, hosterId, names) {
  const doorNet = `${hosterId}--ingress`;
  const door = await docker.getContainer(`${hosterId}--ingress`).inspect();
  const ip = door.NetworkSettings.Networks[doorNet]?.IPAddress;
  if (!ip) throw new Error('the front door has no address on its network');
  const info = await docker.getContainer(ca.id).inspect();
  if (!info.NetworkSettings.Networks[doorNet]) {
    await docker.getNetwork(doorNet).connect({ Container: ca.id, EndpointConfig: { Aliases: [ACME_HOST] } });
  }
  const lines = names.map((n) => `${ip} ${n}`).join('\n');
  const exec = await docker.getContainer(ca.id).exec({ Cmd: ['/bin/sh', '-c', 'printf "%s\\n" "$1" >> /etc/hosts', 'sh', lines], User: '0', AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({});
  await new Promise((r) => { stream.on('end', r); stream.resume(); });
  // Go's resolver (the CA is Go) keeps /etc/hosts for up to 5 s after reading it (net/hosts.go, cacheMaxAge): a
  // validation within that time would not see the new lines, fail, and leave the order pending for minutes.
  await new Promise((r) => setTimeout(r, 5500));
}
