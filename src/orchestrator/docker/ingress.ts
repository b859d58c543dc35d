// The front door's container on one engine (the ingress domain decides what it serves; this file only makes the
// container be there, hardened, and on the right networks). It is the hoster's own, labelled with the role
// `ingress` and no instance, so the reconciler's orphan sweep leaves it to the ingress domain.
//
// Its hardening is an instance's (all capabilities dropped, no-new-privileges, read-only root, limits), with two
// differences it needs and nothing more: its ports are published on the address the association chose (0.0.0.0 in
// production: it is the door), and one host folder of cattery's data is mounted, the one holding the admin socket
// and cattery's own socket, which no instance ever gets.
import crypto from 'node:crypto';
import type Docker from 'dockerode';
import tarStream from 'tar-stream';
import { LABEL_HOSTER, LABEL_ROLE, ROLE_INGRESS, call, ensureNetwork, ensureVolume, isOurs, statusOf, unless, type Engine } from './engine.js';
import { ensureContainerRemoved, ensureStarted } from './containers.js';
import { networkName } from './container-spec.js';

/** The user the image runs Caddy as (deploy/ingress/Dockerfile). */
export const INGRESS_UID = 2019;
const LABEL_SPEC = 'cattery.spec';
export const MEMORY_MIB = 256;
export const GO_MEMORY_LIMIT_MIB = 200;

/** `--` cannot occur in an instance's own names (a slug starts with a letter), so these never collide with one. */
export const ingressNames = (hosterId: string) => ({
  container: `${hosterId}--ingress`, network: `${hosterId}--ingress`, volume: `${hosterId}--ingress-data`,
});

export interface IngressWanted {
  image: string;
  /** Host folder mounted at /run/ingress: the admin socket and cattery's socket. */
  runDir: string;
  /** A private ACME CA's root, mounted read-only for the ACME client only. */
  acmeRootFile?: string | undefined;
  bindAddress: string;
  /** Its own network's /28 (orchestrator/subnets.ts ingressSubnet). A network made earlier keeps its own. */
  subnet: string;
  httpPort: number;
  httpsPort: number;
}

export function buildIngressSpec(hosterId: string, w: IngressWanted): Docker.ContainerCreateOptions {
  const names = ingressNames(hosterId);
  const labels = { [LABEL_HOSTER]: hosterId, [LABEL_ROLE]: ROLE_INGRESS };
  const binds = [`${w.runDir}:/run/ingress:rw`];
  if (w.acmeRootFile) binds.push(`${w.acmeRootFile}:/etc/ingress/acme-root.pem:ro`);
  const spec: Docker.ContainerCreateOptions = {
    name: names.container,
    Image: w.image,
    Labels: labels,
    User: `${INGRESS_UID}:${INGRESS_UID}`,
    // Go's collector works harder as the heap nears this, well before the kernel's limit below would kill the door.
    Env: [`GOMEMLIMIT=${GO_MEMORY_LIMIT_MIB}MiB`],
    ExposedPorts: { '80/tcp': {}, '443/tcp': {} },
    HostConfig: {
      CapDrop: ['ALL'],
      // Binding 80 and 443 inside the container: Docker 20.10 sets net.ipv4.ip_unprivileged_port_start=0 in each
      // container's own network namespace, so no capability is needed even for this unprivileged user.
      CapAdd: [],
      SecurityOpt: ['no-new-privileges:true'],
      Privileged: false,
      ReadonlyRootfs: true,
      Tmpfs: { '/tmp': 'rw,nosuid,nodev,noexec,size=16m' },
      // Caddy with a few hundred names and their certificates stays well under this (bench/ingress measures it).
      Memory: MEMORY_MIB * 1024 * 1024,
      MemorySwap: MEMORY_MIB * 1024 * 1024,
      NanoCpus: 1e9,
      PidsLimit: 256,
      Mounts: [{ Type: 'volume', Source: names.volume, Target: '/var/lib/ingress' }],
      Binds: binds,
      PortBindings: {
        '80/tcp': [{ HostIp: w.bindAddress, HostPort: w.httpPort ? String(w.httpPort) : '' }],
        '443/tcp': [{ HostIp: w.bindAddress, HostPort: w.httpsPort ? String(w.httpsPort) : '' }],
      },
      NetworkMode: names.network,
      RestartPolicy: { Name: 'unless-stopped', MaximumRetryCount: 0 },
      LogConfig: { Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '3' } },
    },
  };
  spec.Labels = { ...labels, [LABEL_SPEC]: crypto.createHash('sha256').update(JSON.stringify(spec)).digest('hex').slice(0, 16) };
  return spec;
}

export interface IngressContainer {
  id: string; httpPort: number; httpsPort: number; created: boolean; networks: string[];
  /** When Caddy last (re)started in it: a restart boots the bare configuration again (deploy/ingress/boot.json). */
  startedAt: string;
}

/** The front door's container exists with this spec and runs; a container of an older spec is replaced. A door that
 * is already so costs one inspect (each reconcile pass asks). */
export async function ensureIngressContainer(engine: Engine, w: IngressWanted): Promise<IngressContainer> {
  const names = ingressNames(engine.hosterId);
  const spec = buildIngressSpec(engine.hosterId, w);
  const labels = { [LABEL_HOSTER]: engine.hosterId, [LABEL_ROLE]: ROLE_INGRESS };
  const inspect = () => call(engine, 'inspect the front door', (d) => d.getContainer(names.container).inspect());
  let info = await inspect().catch(unless(404));
  let created = false;
  if (info && !isOurs(engine, info.Config.Labels)) throw new Error(`container ${names.container} exists and is not cattery's`);
  if (!info || info.Config.Labels?.[LABEL_SPEC] !== spec.Labels?.[LABEL_SPEC] || !info.State.Running) {
    await ensureNetwork(engine, names.network, labels, w.subnet);
    await ensureVolume(engine, names.volume, labels);
    if (info && info.Config.Labels?.[LABEL_SPEC] !== spec.Labels?.[LABEL_SPEC]) {
      await ensureContainerRemoved(engine, info.Id, names.container);
      info = undefined;
    }
    if (!info) {
      await call(engine, 'create the front door', (d) => d.createContainer(spec)).catch((err) => { if (statusOf(err) !== 409) throw err; });
      created = true;
    }
    await ensureStarted(engine, names.container, names.container);
    info = await inspect();
  }
  const port = (key: string) => Number(info!.NetworkSettings.Ports?.[key]?.[0]?.HostPort ?? 0);
  return { id: info.Id, httpPort: port('80/tcp'), httpsPort: port('443/tcp'), created, networks: Object.keys(info.NetworkSettings.Networks ?? {}), startedAt: info.State.StartedAt };
}

/** The front door is on exactly these instance networks (by slug) besides its own: joined where missing (with the
 * given aliases), left where no longer wanted. Networks of other hosters or not cattery's are never touched. */
export async function ensureIngressNetworks(engine: Engine, door: Pick<IngressContainer, 'id' | 'networks'>, slugs: readonly string[]): Promise<void> {
  const names = ingressNames(engine.hosterId);
  const containerId = door.id;
  const attached = new Set(door.networks);
  const wanted = new Set(slugs.map((s) => networkName(engine.hosterId, s)));
  for (const net of wanted) {
    if (attached.has(net)) continue;
    await call(engine, `connect the front door to ${net}`, (d) => d.getNetwork(net).connect({ Container: containerId }))
      // 403/409: already joined (a race with another pass); 404: the instance's network is not made yet, next pass.
      .catch((err) => { if (![403, 404, 409].includes(statusOf(err) ?? 0)) throw err; });
  }
  for (const net of attached) {
    if (net === names.network || wanted.has(net) || !net.startsWith(`${engine.hosterId}-`)) continue;
    await call(engine, `disconnect the front door from ${net}`, (d) => d.getNetwork(net).disconnect({ Container: containerId, Force: true })).catch(unless(404));
  }
}

/** Everything of the front door gone from this engine (the certificates' volume is kept unless `purge`). */
export async function removeIngress(engine: Engine, purge = false): Promise<void> {
  const names = ingressNames(engine.hosterId);
  await ensureContainerRemoved(engine, names.container, names.container);
  await call(engine, 'remove the front door network', (d) => d.getNetwork(names.network).remove()).catch(unless(404));
  if (purge) await call(engine, 'remove the front door volume', (d) => d.getVolume(names.volume).remove()).catch(unless(404));
}

/** A file from the front door's container (a certificate Caddy obtained), or undefined when it is not there. */
export async function readIngressFile(engine: Engine, containerPath: string): Promise<Buffer | undefined> {
  const names = ingressNames(engine.hosterId);
  const stream = await call(engine, `read ${containerPath} from the front door`, (d) => d.getContainer(names.container).getArchive({ path: containerPath }))
    .catch(unless(404));
  if (!stream) return undefined;
  // Docker's archive API wraps even one file in a tar: its first regular file is the one asked for.
  const extract = tarStream.extract();
  let out: Buffer | undefined;
  const done = new Promise<void>((resolve, reject) => {
    extract.on('entry', (header, body, next) => {
      const chunks: Buffer[] = [];
      body.on('data', (c: unknown) => { if (out === undefined && header.type === 'file') chunks.push(c as Buffer); });
      body.on('end', () => { if (out === undefined && header.type === 'file') out = Buffer.concat(chunks); next(); });
    });
    extract.on('finish', resolve);
    extract.on('error', reject);
  });
  (stream as NodeJS.ReadableStream).pipe(extract);
  await done;
  return out;
}
