// All Docker access goes through this module: one place for timeouts, error translation and the label rule
// (cattery never touches an object that does not carry its hoster label).
import fs from 'node:fs';
import http from 'node:http';
import { Agent as httpsAgent } from 'node:https';
import net from 'node:net';
import path from 'node:path';
import Docker from 'dockerode';
import { fail, isCatteryError, type CatteryError } from '../../errors.js';
import type { Logger } from '../../log.js';

export const LABEL_INSTANCE = 'cattery.instance';
export const LABEL_GENERATION = 'cattery.generation';
export const LABEL_HOSTER = 'cattery.hoster';
export const LABEL_SERVICE = 'cattery.service';
/** Helper containers (the archive helper) carry it; instances do not. */
export const LABEL_ROLE = 'cattery.role';
/** The never-started helper that lends Docker's archive API a container to read volumes from (archive.ts). */
export const ROLE_ARCHIVE = 'archive';
/** The front door's container, network and volume (ingress/): the hoster's own, not an instance's. */
export const ROLE_INGRESS = 'ingress';
/** restic's one-shot containers (src/backups/): each run removes its own, by name, before and after. */
export const ROLE_BACKUP = 'backup';
/** On a restic container that copies or restores an instance's volumes: the instance it holds paused. A paused
 * instance no live container holds was left so by a crash, and a pass unpauses it (containers.ts). */
export const LABEL_HOLDS = 'cattery.holds';

/** An engine on this host's socket: its cgroups, /proc and iptables are this host's. */
export const isLocalEndpoint = (endpoint: string) => endpoint.startsWith('unix://');

export interface Engine {
  /** For short calls: each is raced against `timeoutMs`. */
  docker: Docker;
  hosterId: string;
  timeoutMs: number;
  log: Logger;
  /** Another machine's engine (its endpoint is not this machine's socket): a bind of one of cattery's own paths
   * would name a folder of that machine, not cattery's. Unset (an engine made by hand): this machine's. */
  remote?: boolean;
}

/** Where a TLS engine's client certificate is looked for: `<certsDir>/<host>/` with Docker's own file names. */
export const ENGINE_CERT_FILES = ['ca.pem', 'cert.pem', 'key.pem'] as const;

/** Whether an endpoint is spoken to over TLS: `https://`, or `tcp://` on 2376 (Docker's TLS port, as the `docker`
 * CLI reads it). */
export function isTlsEndpoint(endpoint: string): boolean {
  if (endpoint.startsWith('https://')) return true;
  if (!endpoint.startsWith('tcp://')) return false;
  return new URL(endpoint.replace(/^tcp:/, 'http:')).port === '2376';
}

/** Plain TCP to an engine that is not on this host: root on that server for whoever reaches its port. */
export function isPlainRemoteEndpoint(endpoint: string): boolean {
  if (endpoint.startsWith('unix://') || isTlsEndpoint(endpoint)) return false;
  const host = new URL(endpoint.replace(/^tcp:/, 'http:')).hostname;
  // An address literal only: a name such as 127.0.0.1.example.org is another machine.
  return !(host === 'localhost' || host === '[::1]' || (net.isIPv4(host) && host.startsWith('127.')));
}

/** An agent whose connections give up when not made within `ms`: a server that is off (its address answering
 * nothing) otherwise holds each call's socket through the kernel's SYN retries, about two minutes, long after the
 * call's own deadline (`call`) gave up on it, and a process that is shutting down waits for them. Only the connection
 * is bounded: an answer may take as long as it takes (a restic run's attach, an image carried). */
function connectDeadlineAgent(https: boolean, ms: number): http.Agent {
  // Node's own global agent's settings (keep-alive, a free socket closed after 5 s idle): a free socket kept longer
  // was reused after its server was gone, and its request sent into the void for the kernel's retransmissions.
  const settings = { keepAlive: true, timeout: 5000, scheduling: 'lifo' as const };
  const agent = https ? new httpsAgent(settings) : new http.Agent(settings);
  const make = agent.createConnection.bind(agent) as (o: unknown, cb?: unknown) => net.Socket;
  (agent as unknown as { createConnection: (o: unknown, cb?: unknown) => net.Socket }).createConnection = (o, cb) => {
    const socket = make(o, cb);
    const timer = setTimeout(() => socket.destroy(new Error(`no connection within ${ms} ms`)), ms);
    socket.once('connect', () => clearTimeout(timer));
    socket.once('close', () => clearTimeout(timer));
    return socket;
  };
  return agent;
}

/** `certsDir`: the folder of client certificates (`<dataDir>/engine-certs`); a TLS endpoint is only ever reached
 * with its host's certificate and CA (a `--tlsverify` dockerd refuses anything else, and no CA would mean trusting
 * whoever answers). */
export function dockerOptions(endpoint: string, certsDir?: string): Docker.DockerOptions {
  if (endpoint.startsWith('unix://')) return { socketPath: endpoint.slice('unix://'.length) };
  const url = new URL(endpoint.replace(/^(tcp|https):/, 'http:'));
  const tls = isTlsEndpoint(endpoint);
  const base = { host: url.hostname, port: Number(url.port || (tls ? 2376 : 2375)) };
  if (!tls) return { ...base, protocol: 'http' };
  // A host name is one folder's name under certsDir, never a way out of it.
  if (!/^[A-Za-z0-9.:[\]-]+$/.test(url.hostname) || /^\.+$/.test(url.hostname)) throw fail('CATTERY_ERR_VALIDATION', `"${url.hostname}" is not an engine's host name`);
  const dir = certsDir ? path.join(certsDir, url.hostname) : undefined;
  const missing = dir ? ENGINE_CERT_FILES.filter((f) => !fs.existsSync(path.join(dir, f))) : [...ENGINE_CERT_FILES];
  if (!dir || missing.length) {
    throw fail('CATTERY_ERR_VALIDATION', `the engine ${endpoint} is reached over TLS with a client certificate: put ${ENGINE_CERT_FILES.join(', ')} `
      + `(as \`dockerd --tlsverify\` expects them) in ${dir ?? '<data folder>/engine-certs/' + url.hostname}/ (missing: ${missing.join(', ')})`);
  }
  const read = (f: string) => fs.readFileSync(path.join(dir, f));
  return { ...base, protocol: 'https', ca: read('ca.pem'), cert: read('cert.pem'), key: read('key.pem') };
}

export function connectEngine(endpoint: string, opts: { hosterId: string; timeoutSeconds: number; log: Logger; certsDir?: string }): Engine {
  let options: Docker.DockerOptions;
  try {
    options = dockerOptions(endpoint, opts.certsDir);
  } catch (err) {
    // Made anyway (a registry, a watcher at start hold one per server), without a client certificate: its calls
    // fail at the handshake (a --tlsverify engine refuses it; Node verifies the engine against the system's CAs),
    // never reach an engine unverified; the missing files are said once here.
    opts.log.error({ endpoint, err: (err as Error).message }, 'engine unreachable until its client certificate is in place');
    const url = new URL(endpoint.replace(/^(tcp|https):/, 'http:'));
    // No CA at all: every handshake fails. The system's public CAs would let anyone with a public certificate for that
    // name, on the path, be the engine (and receive instances' secrets in create calls).
    options = { host: url.hostname, port: Number(url.port || 2376), protocol: 'https', ca: [] as unknown as string };
  }
  const timeoutMs = opts.timeoutSeconds * 1000;
  return {
    // docker-modem takes an `agent` its types do not name; the TLS files above still reach each connection.
    docker: new Docker(isLocalEndpoint(endpoint) ? options : { ...options, agent: connectDeadlineAgent(options.protocol === 'https', timeoutMs) } as Docker.DockerOptions),
    hosterId: opts.hosterId, timeoutMs, log: opts.log,
    remote: !isLocalEndpoint(endpoint),
  };
}

/** The client certificates' folder of a data folder. */
export const engineCertsDir = (dataDir: string) => path.join(dataDir, 'engine-certs');

interface DockerError { statusCode?: number; json?: { message?: string } | null; reason?: string; message?: string; code?: string }

/** dockerode's statusCode becomes one of ours; the engine's own words go to the log, a short reason to the client. */
export function translateDockerError(err: unknown, what: string): CatteryError {
  if (isCatteryError(err)) return err;
  const e = (err ?? {}) as DockerError;
  const engineMsg = e.json?.message ?? e.reason ?? e.message ?? String(err);
  if (e.code === 'ECONNREFUSED' || e.code === 'ENOENT' || e.code === 'EACCES' || e.code === 'ECONNRESET') {
    return fail('CATTERY_ERR_ENGINE_UNAVAILABLE', `${what} (${e.code})`, err);
  }
  switch (e.statusCode) {
    case 404: return fail('CATTERY_ERR_NOT_FOUND', `${what}: not found on the engine`, err);
    case 409: return fail('CATTERY_ERR_CONFLICT', `${what}: conflicts with an existing object`, err);
    default: return fail('CATTERY_ERR_ENGINE', `${what}: ${firstLine(engineMsg)}`, err);
  }
}

function firstLine(s: string): string {
  return s.split('\n')[0]!.slice(0, 200);
}

/** Run one Docker call with a deadline and translated errors. */
export async function call<T>(engine: Engine, what: string, fn: (d: Docker) => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(fail('CATTERY_ERR_ENGINE_TIMEOUT', what)), engine.timeoutMs);
  });
  try {
    return await Promise.race([fn(engine.docker), deadline]);
  } catch (err) {
    throw translateDockerError(err, what);
  } finally {
    clearTimeout(timer);
  }
}

/** The status code Docker answered with, whether or not the error was already translated. */
export function statusOf(err: unknown): number | undefined {
  const cause = (err as { cause?: DockerError }).cause ?? (err as DockerError);
  return cause?.statusCode;
}

/** For a `.catch` after an idempotent call: Docker's "already so" answers (304 not modified, 404 gone) mean the
 * wanted state holds; anything else is still an error. */
export function unless(...codes: number[]): (err: unknown) => void {
  return (err) => {
    if (!codes.includes(statusOf(err) ?? -1)) throw err;
  };
}

export function isOurs(engine: Engine, labels: Record<string, string> | null | undefined): boolean {
  return labels?.[LABEL_HOSTER] === engine.hosterId;
}

export async function ping(engine: Engine): Promise<void> {
  await call(engine, 'ping the Docker engine', (d) => d.ping());
}

/** Idempotent: the network exists with our labels after this, or a conflict names the foreign one. Create first
 * and inspect only on a 409: the common case (a new instance) costs one call. */
/** Returns the network's id. */
export async function ensureNetwork(engine: Engine, name: string, labels: Record<string, string>, subnet?: string): Promise<string> {
  try {
    const created = await call(engine, `create network ${name}`, (d) => d.createNetwork({
      Name: name, Driver: 'bridge', CheckDuplicate: true, Labels: labels,
      ...(subnet ? { IPAM: { Driver: 'default', Config: [{ Subnet: subnet }] } } : {}),
    }));
    return created.id;
  } catch (err) {
    if (statusOf(err) !== 409) throw err;
    const existing = await call(engine, `inspect network ${name}`, (d) => d.getNetwork(name).inspect());
    if (!isOurs(engine, existing.Labels)) throw fail('CATTERY_ERR_CONFLICT', `network ${name} exists and is not managed by cattery`);
    return existing.Id;
  }
}

/** Creating a volume that exists is a no-op in Docker; the inspect after it checks whose it is. Returns the
 * volume's driver options as the engine holds them (a volume made before they were asked for keeps its own). */
export async function ensureVolume(
  engine: Engine, name: string, labels: Record<string, string>, local?: { DriverOpts: Record<string, string> },
): Promise<Record<string, string> | null> {
  await call(engine, `create volume ${name}`, (d) => d.createVolume({
    Name: name, Labels: labels, ...(local ? { Driver: 'local', DriverOpts: local.DriverOpts } : {}),
  }));
  const vol = await call(engine, `inspect volume ${name}`, (d) => d.getVolume(name).inspect());
  if (!isOurs(engine, vol.Labels as Record<string, string> | undefined)) {
    throw fail('CATTERY_ERR_CONFLICT', `volume ${name} exists and is not managed by cattery`);
  }
  return (vol.Options as Record<string, string> | null) ?? null;
}

/** Docker refuses to remove a network a container is still attached to. The front door joins instance networks
 * (ingress/), so it is let go first; any other container still attached is a real conflict and stays an error. */
export async function removeNetwork(engine: Engine, id: string, what: string): Promise<void> {
  const net = await call(engine, `inspect network ${what}`, (d) => d.getNetwork(id).inspect()) as Docker.NetworkInspectInfo;
  for (const [containerId] of Object.entries(net.Containers ?? {})) {
    const info = await call(engine, `inspect container ${containerId}`, (d) => d.getContainer(containerId).inspect()).catch(unless(404));
    if (info && info.Config.Labels?.[LABEL_ROLE] === ROLE_INGRESS && isOurs(engine, info.Config.Labels)) {
      await call(engine, `disconnect the front door from ${what}`, (d) => d.getNetwork(id).disconnect({ Container: containerId, Force: true })).catch(unless(404));
    }
  }
  await call(engine, `remove network ${what}`, (d) => d.getNetwork(id).remove());
}

/** Whether the engine has a network of that name (whoever made it). */
export async function networkExists(engine: Engine, name: string): Promise<boolean> {
  return call(engine, `inspect network ${name}`, (d) => d.getNetwork(name).inspect()).then(() => true, (err: unknown) => {
    if (statusOf(err) === 404) return false;
    throw err;
  });
}

/** Idempotent: the network is gone after this (404 counts as done). */
export async function ensureNetworkRemoved(engine: Engine, id: string, what: string): Promise<void> {
  await removeNetwork(engine, id, what).catch(unless(404));
}

/** Idempotent: the volume is gone after this (404 counts as done). */
export async function ensureVolumeRemoved(engine: Engine, name: string): Promise<void> {
  await call(engine, `remove volume ${name}`, (d) => d.getVolume(name).remove()).catch(unless(404));
}

export interface Managed {
  containers: Docker.ContainerInfo[];
  networks: Docker.NetworkInspectInfo[];
  volumes: { Name: string; Labels: Record<string, string> }[];
}

/** Everything on the engine that carries this hoster's label: the observed state. */
export async function listManaged(engine: Engine): Promise<Managed> {
  const filters = { label: [`${LABEL_HOSTER}=${engine.hosterId}`] };
  const [containers, networks, vols] = await Promise.all([
    call(engine, 'list containers', (d) => d.listContainers({ all: true, filters })),
    call(engine, 'list networks', (d) => d.listNetworks({ filters })),
    call(engine, 'list volumes', (d) => d.listVolumes({ filters })),
  ]);
  const volumes = (vols.Volumes ?? []).map((v) => ({ Name: v.Name, Labels: (v.Labels ?? {}) as Record<string, string> }));
  return {
    containers: containers.filter((c) => isOurs(engine, c.Labels)),
    networks: networks.filter((n) => isOurs(engine, n.Labels)),
    volumes: volumes.filter((v) => isOurs(engine, v.Labels)),
  };
}

export async function imageExists(engine: Engine, ref: string): Promise<boolean> {
  return call(engine, `inspect image ${ref}`, (d) => d.getImage(ref).inspect()).then(() => true, (err) => {
    if (statusOf(err) === 404) return false;
    throw err;
  });
}
