// restic's command lines and what it answers, without running anything: argument arrays only (no shell), and its
// --json output read line by line. Running them is backups/run.ts's.
import { fail } from '../errors.js';

/** Where a repository is, parsed from restic's own address forms. */
export type RepoLocation =
  | { kind: 'local'; path: string }
  | { kind: 'sftp'; user: string; host: string; port: number; path: string }
  | { kind: 's3'; url: string };

const SAFE_PATH = /^\/[A-Za-z0-9._/-]*$/;
const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$|^\d{1,3}(?:\.\d{1,3}){3}$/;
const USER = /^[a-z_][a-z0-9_.-]{0,31}$/;

/** `/srv/backups`, `sftp:user@host:/path`, `sftp://user@host:2222/path`, `s3:https://host/bucket[/prefix]`. */
export function parseRepoUrl(url: string): RepoLocation {
  const bad = (why: string) => fail('CATTERY_ERR_VALIDATION', `repository "${url.slice(0, 200)}": ${why}`);
  if (url.length > 500 || /[\s\0]/.test(url)) throw bad('no spaces or control characters, 500 characters at most');
  if (url.startsWith('/')) {
    if (!SAFE_PATH.test(url) || url.split('/').includes('..')) throw bad('a local folder is an absolute path of letters, digits, . _ - and /, without ..');
    return { kind: 'local', path: url.replace(/\/+$/, '') || '/' };
  }
  let m = /^sftp:\/\/([^@/]+)@([^:/]+)(?::(\d{1,5}))?(\/.*)$/.exec(url);
  if (!m) {
    const short = /^sftp:([^@/]+)@([^:/]+):(\/.*)$/.exec(url);
    if (short) m = [short[0], short[1]!, short[2]!, undefined, short[3]!] as unknown as RegExpExecArray;
  }
  if (m) {
    const [, user, host, port, p] = m;
    if (!USER.test(user!)) throw bad('the SFTP user is a plain login');
    if (!HOST.test(host!)) throw bad('the SFTP host is a host name or an IPv4 address');
    const n = port ? Number(port) : 22;
    if (!(n >= 1 && n <= 65535)) throw bad('the SFTP port is between 1 and 65535');
    if (!SAFE_PATH.test(p!) || p!.split('/').includes('..')) throw bad('the SFTP path is absolute, of letters, digits, . _ - and /, without ..');
    return { kind: 'sftp', user: user!, host: host!, port: n, path: p! };
  }
  if (/^s3:https?:\/\/[A-Za-z0-9.-]+(?::\d{1,5})?\/[A-Za-z0-9._/-]+$/.test(url)) return { kind: 's3', url };
  throw bad('use an absolute folder, sftp:user@host:/path, sftp://user@host:port/path or s3:https://host/bucket');
}

/** Inside restic's container: the repository (a local one is mounted here), the password file, the cache, SSH. */
export const IN = { repo: '/repo', password: '/run/cattery/restic-password', cache: '/cache', ssh: '/ssh', data: '/backup' } as const;

/** restic's -r and -o options for a location, as seen from inside its container. */
export function repoArgs(loc: RepoLocation): string[] {
  if (loc.kind === 'local') return ['-r', IN.repo];
  if (loc.kind === 's3') return ['-r', loc.url];
  // The host key is pinned at the first connection (accept-new) in cattery's own known_hosts: a changed key later is
  // refused, as an administrator's ssh would. BatchMode: never a prompt that would hang the run.
  const ssh = ['ssh', '-i', `${IN.ssh}/id_ed25519`, '-o', `UserKnownHostsFile=${IN.ssh}/known_hosts`, '-o', 'StrictHostKeyChecking=accept-new',
    '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=20', '-o', 'ServerAliveInterval=15', '-p', String(loc.port), `${loc.user}@${loc.host}`, '-s', 'sftp'];
  return ['-r', `sftp:${loc.user}@${loc.host}:${loc.path}`, '-o', `sftp.command=${ssh.join(' ')}`];
}

export function commonArgs(loc: RepoLocation): string[] {
  return [...repoArgs(loc), '--password-file', IN.password, '--cache-dir', IN.cache];
}

export interface Retention { keepDaily: number; keepWeekly: number; keepMonthly: number }

export const initArgs = (loc: RepoLocation) => [...commonArgs(loc), 'init', '--repository-version', '2'];

/** One snapshot of the given folders, tagged so that a restore finds it by instance (or `hoster`) alone. */
export function backupArgs(loc: RepoLocation, o: { host: string; tags: string[]; paths: string[]; exclude?: string[] }): string[] {
  // An exclude is a path restic matches as a pattern: its glob characters are escaped, so that it names one path.
  const literal = (p: string) => p.replace(/[\\*?[\]]/g, (c) => `\\${c}`);
  return [...commonArgs(loc), '--json', 'backup', '--host', o.host, '--compression', 'auto', ...o.tags.flatMap((t) => ['--tag', t]),
    ...(o.exclude ?? []).flatMap((p) => ['--exclude', literal(p)]), ...o.paths];
}

export const snapshotsArgs = (loc: RepoLocation, tag?: string) => [...commonArgs(loc), '--json', 'snapshots', ...(tag ? ['--tag', tag] : [])];

export function forgetArgs(loc: RepoLocation, r: Retention): string[] {
  // Grouped by host and tags: each instance (and the hoster) keeps its own 7 daily, 4 weekly, 12 monthly.
  return [...commonArgs(loc), '--json', 'forget', '--group-by', 'host,tags', '--keep-daily', String(r.keepDaily),
    '--keep-weekly', String(r.keepWeekly), '--keep-monthly', String(r.keepMonthly), '--prune'];
}

export const checkArgs = (loc: RepoLocation, subset: string) => [...commonArgs(loc), 'check', '--read-data-subset', subset];

export function restoreArgs(loc: RepoLocation, snapshot: string, o: { include?: string[] } = {}): string[] {
  if (!/^[0-9a-f]{8,64}$/.test(snapshot)) throw fail('CATTERY_ERR_VALIDATION', 'a snapshot id is 8 to 64 hexadecimal digits');
  return [...commonArgs(loc), 'restore', snapshot, '--target', '/', ...(o.include ?? []).flatMap((p) => ['--include', p])];
}

/** The summary line of `restic backup --json`. */
export interface BackupSummary { snapshotId: string; dataAdded: number; totalBytesProcessed: number; totalFilesProcessed: number }

export function parseBackupOutput(stdout: string): BackupSummary | null {
  for (const line of stdout.split('\n').reverse()) {
    if (!line.startsWith('{')) continue;
    let msg: Record<string, unknown>;
    try { msg = JSON.parse(line) as Record<string, unknown>; } catch { continue; }
    if (msg.message_type !== 'summary' || typeof msg.snapshot_id !== 'string') continue;
    return {
      snapshotId: msg.snapshot_id, dataAdded: Number(msg.data_added ?? 0), totalBytesProcessed: Number(msg.total_bytes_processed ?? 0),
      totalFilesProcessed: Number(msg.total_files_processed ?? 0),
    };
  }
  return null;
}

export interface Snapshot { id: string; shortId: string; time: string; host: string; tags: string[]; paths: string[] }

export function parseSnapshots(stdout: string): Snapshot[] {
  const line = stdout.split('\n').find((l) => l.startsWith('['));
  if (!line) return [];
  const raw = JSON.parse(line) as { id: string; short_id: string; time: string; hostname: string; tags?: string[]; paths?: string[] }[];
  return raw.map((s) => ({ id: s.id, shortId: s.short_id, time: s.time, host: s.hostname, tags: s.tags ?? [], paths: s.paths ?? [] }))
    .sort((a, b) => a.time.localeCompare(b.time));
}

/** restic's error, in a line an administrator can act on (its stderr's last meaningful line). */
export function resticError(stderr: string, exitCode: number): string {
  const lines = stderr.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('{'));
  // "Fatal: There were 1 errors" says little: the lines before it ("ignoring error for …") say which file and why.
  const detail = lines.filter((l) => /^ignoring error|^error:/i.test(l)).slice(0, 3);
  // ssh's own words come before restic's "unable to start the sftp session": they are the reason an admin can act on.
  const ssh = lines.filter((l) => /Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|Permission denied|timed out|No route to host|Connection refused|Could not resolve|Network is unreachable/i.test(l))
    .filter((l) => !/^Fatal:/.test(l)).slice(0, 2);
  detail.push(...ssh);
  const fatal = lines.filter((l) => /^Fatal:|error|wrong password|no space|denied|refused|timed out|unreachable/i.test(l));
  return [...detail, fatal.at(-1) ?? lines.at(-1) ?? `restic exited with ${exitCode}`].join('; ').slice(0, 600);
}
