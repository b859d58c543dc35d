// What a manifest may ask of the host. The manifest schema has no field for privileged mode, host namespaces or
// binds at all; this file refuses what the schema can express but an association should never run.

/** Capabilities a service may add back after CapDrop ALL: those that ordinary daemons (Postfix, Dovecot, Apache)
 * need to drop privileges, chroot and bind low ports. Anything else (SYS_ADMIN, NET_ADMIN, NET_RAW, SYS_PTRACE…)
 * widens the attack surface on a shared server and is refused. */
export const ALLOWED_CAPABILITIES = new Set([
  'CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'FSETID', 'KILL', 'SETGID', 'SETUID', 'NET_BIND_SERVICE', 'SYS_CHROOT', 'AUDIT_WRITE',
]);

/** Mount points that would hide or expose the container's own system if a volume or tmpfs sat there. */
const FORBIDDEN_MOUNTS = ['/', '/proc', '/sys', '/dev', '/etc', '/usr', '/bin', '/sbin', '/lib', '/boot', '/run/docker.sock', '/var/run/docker.sock'];

export interface PolicyViolation { field: string; message: string }

interface PolicyInput {
  capabilities: string[];
  volumes: { name: string; path: string }[];
  tmpfs: { path: string }[];
  ports: { name: string; protocol?: string; publish?: boolean; wellKnown?: number | undefined }[];
  user?: string | undefined;
  http?: { port: string } | undefined;
}

/** The front door's: a service's web traffic reaches it through the door (the manifest's `http`), never on these. */
const DOOR_PORTS = new Set([80, 443]);

/** A well-known number is published on the public address (orchestrator/public-ports.ts): once per manifest, never
 * the front door's, and only for a port the host publishes at all. */
function checkWellKnown(ports: PolicyInput['ports'], out: PolicyViolation[]): void {
  const seen = new Set<number>();
  ports.forEach((p, i) => {
    if (p.wellKnown === undefined) return;
    const field = `/ports/${i}/wellKnown`;
    if (p.publish === false) out.push({ field, message: `port ${p.name} is not published (publish: false), so it cannot have a well-known number` });
    if (DOOR_PORTS.has(p.wellKnown)) out.push({ field, message: `${p.wellKnown} belongs to the front door: serve the web through http, not a well-known port` });
    if (seen.has(p.wellKnown)) out.push({ field, message: `well-known number ${p.wellKnown} is given to two ports` });
    seen.add(p.wellKnown);
  });
}

export function checkPolicy(m: PolicyInput): PolicyViolation[] {
  const out: PolicyViolation[] = [];
  m.capabilities.forEach((cap, i) => {
    if (!ALLOWED_CAPABILITIES.has(cap)) {
      out.push({ field: `/capabilities/${i}`, message: `capability ${cap} is not allowed (allowed: ${[...ALLOWED_CAPABILITIES].join(', ')})` });
    }
  });
  const mounts = [...m.volumes.map((v, i) => ({ p: v.path, f: `/volumes/${i}/path` })), ...m.tmpfs.map((t, i) => ({ p: t.path, f: `/tmpfs/${i}/path` }))];
  for (const { p, f } of mounts) {
    const norm = p.replace(/\/+$/, '') || '/';
    if (norm.split('/').includes('..')) out.push({ field: f, message: `mount path ${p} may not contain ..` });
    else if (FORBIDDEN_MOUNTS.some((x) => norm === x || (x !== '/' && norm.startsWith(`${x}/`) && x !== '/etc'))) {
      out.push({ field: f, message: `mount path ${p} would cover a system directory` });
    }
  }
  const dup = (list: { name: string }[], field: string) => {
    const seen = new Set<string>();
    list.forEach((x, i) => {
      if (seen.has(x.name)) out.push({ field: `/${field}/${i}/name`, message: `duplicate name ${x.name}` });
      seen.add(x.name);
    });
  };
  dup(m.volumes, 'volumes');
  dup(m.ports, 'ports');
  checkWellKnown(m.ports, out);
  if (m.http && !m.ports.some((p) => p.name === m.http!.port && (p.protocol ?? 'tcp') === 'tcp')) {
    out.push({ field: '/http/port', message: `http.port "${m.http.port}" names no tcp port of this service` });
  }
  if (m.user === 'root' || m.user === '0' || m.user?.startsWith('0:')) {
    // Running as root is allowed (daemons that drop privileges need it) but only through the default user.
    out.push({ field: '/user', message: 'leave user unset rather than naming root explicitly' });
  }
  return out;
}
