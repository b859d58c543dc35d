// A real ACME CA for the front door's tests: Caddy's own `acme_server` (smallstep's CA inside Caddy), run in a
// container of the ingress image. Certificates are really issued over HTTP-01 and clients verify them against this
// CA's root; nothing leaves the project's own containers and loopback.
//   - the CA answers at https://acme.test/acme/local/directory, a network alias on the front door's own network;
//   - it reaches the names under test through /etc/hosts lines pointing at the front door's address there.
import fs from 'node:fs';
import path from 'node:path';
import type { Test } from 'tap';
import tarStream from 'tar-stream';
import { docker, waitFor } from '../helpers.js';
import { serviceImageRef, systemImage } from '../../src/orchestrator/docker/index.js';

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

async function readFile(containerId: string, file: string): Promise<Buffer | undefined> {
  const stream = await docker.getContainer(containerId).getArchive({ path: file }).catch(() => undefined);
  if (!stream) return undefined;
  const extract = tarStream.extract();
  let out: Buffer | undefined;
  const done = new Promise<void>((resolve, reject) => {
    extract.on('entry', (_h, s, next) => {
      const chunks: Buffer[] = [];
      s.on('data', (c: Buffer) => chunks.push(c));
      s.on('end', () => { out ??= Buffer.concat(chunks); next(); });
    });
    extract.on('finish', resolve);
    extract.on('error', reject);
  });
  (stream as NodeJS.ReadableStream).pipe(extract);
  await done;
  return out;
}

export interface AcmeCa { id: string; rootPem: string; rootFile: string }

/** Start the CA and wait for its root. */
export async function startAcmeCa(t: Test, hosterId: string, dir: string): Promise<AcmeCa> {
  const net = `${hosterId}-acmeca`;
  // Not the hoster's label: cattery would sweep it as an orphan. The teardown removes both.
  const labels = { 'cattery.test': hosterId };
  const network = await docker.createNetwork({ Name: net, Labels: labels });
  const c = await docker.createContainer({
    name: `${hosterId}-acmeca`,
    Image: serviceImageRef(systemImage('ingress')),
    Labels: labels,
    Env: [`CA_CONFIG=${JSON.stringify(CA_CONFIG)}`],
    Cmd: ['/bin/sh', '-c', 'printf %s "$CA_CONFIG" > /tmp/ca.json && exec caddy run --config /tmp/ca.json'],
    HostConfig: { NetworkMode: net, Tmpfs: { '/tmp': 'rw,size=4m' } },
  });
  t.teardown(async () => {
    await c.remove({ force: true }).catch(() => undefined);
    await network.remove().catch(() => undefined);
  });
  await c.start();
  const root = await waitFor('the test CA root', () => readFile(c.id, '/var/lib/ingress/caddy/pki/authorities/local/root.crt'), 30_000);
  const rootFile = path.join(dir, 'acme-root.pem');
  fs.writeFileSync(rootFile, root, { mode: 0o644 });
  return { id: c.id, rootPem: root.toString(), rootFile };
}

/** Join the CA to the front door's network as acme.test, and make the names under test resolve to the door there. */
export async function wireAcmeCa(ca: AcmeCa, hosterId: string, names: string[]): Promise<void> {
  const doorNet = `${hosterId}--ingress`;
  const door = await docker.getContainer(`${hosterId}--ingress`).inspect();
  const ip = door.NetworkSettings.Networks[doorNet]?.IPAddress;
  if (!ip) throw new Error('the front door has no address on its network');
  const info = await docker.getContainer(ca.id).inspect();
  if (!info.NetworkSettings.Networks[doorNet]) {
    await docker.getNetwork(doorNet).connect({ Container: ca.id, EndpointConfig: { Aliases: [ACME_HOST] } });
  }
  await addHosts(ca.id, ip, names);
}

export async function addHosts(containerId: string, ip: string, names: string[]): Promise<void> {
  const lines = names.map((n) => `${ip} ${n}`).join('\n');
  const exec = await docker.getContainer(containerId).exec({ Cmd: ['/bin/sh', '-c', 'printf "%s\\n" "$1" >> /etc/hosts', 'sh', lines], User: '0', AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({});
  await new Promise((r) => { stream.on('end', r); stream.resume(); });
}
