// "Every example in the README runs as written": each ```sh block of README.md is classified and checked.
// - set-up blocks (npm ci, npm start, npm test) are not run, but the README's token line is run with bash and must
//   give a valid bootstrap token (16+ characters), the one the server below starts with;
// - the environment block (OpenID) must be VAR=value lines of variables src/config.ts reads, and load;
// - `node bin/cattery.js …` blocks run as written, from the clone's folder, on this test's data folder;
// - curl blocks run as written with bash, in README order, against a real `node bin/cattery.js serve` (a data
//   folder, hoster id, port range and subnet pool of their own, as testConfig picks them), with `A` carried over
//   from the block that defines it. The only rewrite is the port (localhost:8080 → the test's port); each curl's
//   status is captured on the side (a `curl` function adding `-w '%{stderr}…'`), nothing else is added. Every curl
//   must answer 2xx, what a block creates must exist afterwards, and `?wait=true` must come back converged.
// A ``` block of any other kind, or an sh block no class covers, fails the test: the README cannot grow an
// untested example.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import Database from 'better-sqlite3';
import t from 'tap';
import type { Test } from 'tap';
import { ROOT, removeHosterObjects, testConfig, waitFor } from './helpers.js';
import { detachUnder } from '../src/orchestrator/sized-volumes.js';
import { loadConfig } from '../src/config.js';
import { verifyPassword } from '../src/identity/passwords.js';

const README = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
const CONFIG_SRC = fs.readFileSync(path.join(ROOT, 'src/config.ts'), 'utf8');
const DEADLINE = Date.now() + 235_000; // the whole file, server start to the last block; cleanup comes after
// bash by its path: a PATH entry that cannot be searched (a broken node_modules/.bin) must not stop the test.
const BASH = ['/bin/bash', '/usr/bin/bash'].find((p) => fs.existsSync(p)) ?? 'bash';

type Kind = 'setup' | 'env' | 'cli' | 'curl';
interface Block { lang: string; line: number; text: string; kind: Kind | undefined }

/** Every fenced block of the README, with the line it starts on. */
function fencedBlocks(): Block[] {
  const out: Block[] = [];
  for (const m of README.matchAll(/^([ \t]*)```([^\n]*)\n([\s\S]*?)^\1```[ \t]*$/gm)) {
    const line = README.slice(0, m.index).split('\n').length;
    const lang = (m[2] ?? '').trim();
    const indent = m[1] ?? '';
    const text = (m[3] ?? '').split('\n').map((l) => (l.startsWith(indent) ? l.slice(indent.length) : l)).join('\n');
    out.push({ lang, line, text, kind: lang === 'sh' ? classify(text) : undefined });
  }
  return out;
}

const lines = (text: string) => text.split('\n').map((l) => l.trimEnd()).filter((l) => l.trim() !== '');

/** Shell commands, a backslash-continued command being one. */
function commands(text: string): string[] {
  const out: string[] = [];
  let cur = '';
  for (const l of text.split('\n')) {
    if (cur === '' && l.trim() === '') continue;
    cur += (cur ? '\n' : '') + l;
    if (!/\\$/.test(l)) { out.push(cur); cur = ''; }
  }
  if (cur) out.push(cur);
  return out;
}

const SETUP_LINE = /^(npm ci && npm (start|test)|npm (start|test)|export CATTERY_ADMIN_TOKEN=.+)$/;
const ENV_ASSIGN = /([A-Z][A-Z0-9_]*)=('[^']*'|"[^"]*"|[^\s'"#]+)/y;
function parseEnvLine(line: string): [string, string][] | undefined {
  const pairs: [string, string][] = [];
  let i = 0;
  for (;;) {
    while (line[i] === ' ') i++;
    if (i >= line.length || line[i] === '#') return pairs.length ? pairs : undefined;
    ENV_ASSIGN.lastIndex = i;
    const m = ENV_ASSIGN.exec(line);
    if (!m) return undefined;
    const raw = m[2]!;
    pairs.push([m[1]!, /^['"]/.test(raw) ? raw.slice(1, -1) : raw]);
    i = ENV_ASSIGN.lastIndex;
    if (i < line.length && line[i] !== ' ') return undefined;
  }
}

function classify(text: string): Kind | undefined {
  const ls = lines(text);
  if (!ls.length) return undefined;
  if (ls.every((l) => SETUP_LINE.test(l))) return 'setup';
  if (ls.every((l) => parseEnvLine(l) !== undefined)) return 'env';
  if (commands(text).every((c) => /^node bin\/cattery\.js [^\n\\]+$/.test(c))) return 'cli';
  if (commands(text).every((c) => /^A="[^"]*"$/.test(c) || /^curl\s/.test(c))) return 'curl';
  return undefined;
}

const blocks = fencedBlocks();

t.test('every fenced block of the README is an sh block of a class this test runs', async (t) => {
  t.ok(blocks.length >= 9, `the README's blocks are found (${blocks.length})`);
  const fences = README.split('\n').filter((l) => /^\s*(```|~~~)/.test(l)).length;
  t.equal(fences, blocks.length * 2, 'every fence opens or closes a block this test reads (no ~~~ or unmatched fence)');
  for (const b of blocks) {
    t.equal(b.lang, 'sh', `README.md:${b.line}: a fenced block is sh (or this test learns to check its kind)`);
    t.ok(b.kind, `README.md:${b.line}: the block is a set-up, environment, cattery command or curl block:\n${b.text}`);
  }
  const kinds = new Set(blocks.map((b) => b.kind));
  for (const k of ['setup', 'env', 'cli', 'curl'] as const) t.ok(kinds.has(k), `the README has ${k} blocks`);
});

/** The README's own line that makes the bootstrap token, run with bash. */
function tokenFromReadme(): string {
  const line = blocks.filter((b) => b.kind === 'setup').flatMap((b) => lines(b.text)).find((l) => l.startsWith('export CATTERY_ADMIN_TOKEN='));
  if (!line) throw new Error('the README has no `export CATTERY_ADMIN_TOKEN=…` line');
  const r = spawnSync(BASH, ['--noprofile', '--norc', '-c', `${line}\nprintf %s "$CATTERY_ADMIN_TOKEN"`], { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) throw new Error(`the token line failed: ${r.stderr}`);
  return r.stdout;
}

t.test('set-up blocks: npm ci, npm start, npm test, and a bootstrap token the server accepts', async (t) => {
  for (const b of blocks.filter((x) => x.kind === 'setup')) {
    for (const l of lines(b.text)) {
      if (l.startsWith('export ')) continue;
      const scripts = [...l.matchAll(/npm (start|test)/g)].map((m) => m[1]!);
      const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
      for (const s of scripts) t.ok(pkg.scripts[s], `README.md:${b.line}: \`npm ${s}\` is a script of package.json`);
    }
  }
  const a = tokenFromReadme();
  const b = tokenFromReadme();
  t.match(a, /^[0-9a-f]{16,}$/, 'the README token line gives a token of 16+ characters');
  t.not(a, b, 'and a new one each time');
  t.doesNotThrow(() => loadConfig({ CATTERY_ADMIN_TOKEN: a }), 'src/config.ts accepts it');
});

t.test('environment blocks: every line is VAR=value of a variable src/config.ts reads, and the whole loads', async (t) => {
  for (const b of blocks.filter((x) => x.kind === 'env')) {
    const env: Record<string, string> = {};
    for (const l of lines(b.text)) {
      for (const [name, value] of parseEnvLine(l)!) {
        t.ok(CONFIG_SRC.includes(`env.${name}`), `README.md:${b.line}: src/config.ts reads ${name}`);
        t.ok(value.length > 0, `${name} has a value`);
        env[name] = value;
      }
    }
    // Quoting as bash reads it: the same values come out of bash's own parse (assignments only, nothing runs).
    const names = Object.keys(env);
    const r = spawnSync('env', ['-i', BASH, '--noprofile', '--norc', '-c', `${b.text}\nfor n in ${names.join(' ')}; do printf '%s=%s\\0' "$n" "\${!n}"; done`], { encoding: 'utf8', timeout: 10_000 });
    t.equal(r.status, 0, 'bash reads the block');
    const fromBash = Object.fromEntries(r.stdout.split('\0').filter(Boolean).map((p) => [p.slice(0, p.indexOf('=')), p.slice(p.indexOf('=') + 1)]));
    t.same(fromBash, env, 'bash reads the same values');
    if (env.CATTERY_OIDC_ISSUER) {
      const config = loadConfig(env);
      t.ok(config.oidc, 'the OpenID provider is configured from them');
      t.equal(config.oidc?.redirectUrl, `${env.CATTERY_PUBLIC_URL}/auth/callback`, 'the redirect URL the README says to register');
      if (env.CATTERY_OIDC_ROLE_MAP) {
        for (const pair of env.CATTERY_OIDC_ROLE_MAP.split(',')) {
          const [group, role] = pair.split('=');
          t.equal(config.oidc?.roleMap[group!], role, `the role map gives ${group} → ${role}`);
        }
      }
    }
  }
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

interface Ran { cmd: string; rc: number; http: string | undefined; body: string; json: unknown }

/** Runs commands as written in one bash session; returns each one's exit status, HTTP status and output. */
function runSession(cmds: string[], prelude: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<{ ran: Ran[]; stderr: string; timedOut: boolean; code: number | null }> {
  const script = [
    // Capturing only: the HTTP status goes to stderr; the command's own output is untouched.
    "curl() { command curl -w '%{stderr}@@HTTP %{http_code}@@\\n' \"$@\"; }",
    ...prelude,
    ...cmds.flatMap((c, i) => [c, `printf '\\n@@END ${i} %d@@\\n' $?; printf '@@END ${i}@@\\n' >&2`]),
  ].join('\n');
  return new Promise((resolve) => {
    let out = '';
    let errText = '';
    let child: ChildProcess;
    try {
      child = spawn(BASH, ['--noprofile', '--norc', '-c', script], { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      resolve({ ran: [], stderr: `bash did not start: ${String(err)}`, timedOut: false, code: null });
      return;
    }
    let timedOut = false;
    child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr!.on('data', (d: Buffer) => { errText += d.toString(); });
    const timer = setTimeout(() => { timedOut = true; try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* gone */ } }, Math.max(1000, timeoutMs));
    const finish = (code: number | null) => {
      clearTimeout(timer);
      const ran: Ran[] = [];
      const outParts = out.split(/\n@@END (\d+) (\d+)@@\n/);
      const err = errText;
      const errParts = err.split(/@@END \d+@@\n/);
      for (let i = 0; i < cmds.length; i++) {
        const body = outParts[i * 3];
        if (body === undefined || outParts[i * 3 + 2] === undefined) break;
        const http = /@@HTTP (\d{3})@@/.exec(errParts[i] ?? '')?.[1];
        let json: unknown;
        try { json = JSON.parse(body); } catch { json = undefined; }
        ran.push({ cmd: cmds[i]!, rc: Number(outParts[i * 3 + 2]), http, body, json });
      }
      resolve({ ran, stderr: err.replace(/@@(HTTP \d{3}|END \d+)@@\n?/g, ''), timedOut, code });
    };
    child.on('error', (err) => { errText += `bash: ${String(err)}\n`; finish(null); });
    child.on('close', finish);
  });
}

t.test('cattery commands and API examples, as written, on a real server', async (t) => {
  const config = testConfig(t); // a data folder, hoster id, port range and subnet pool no other test uses
  const token = tokenFromReadme();
  const port = await freePort();
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('CATTERY_')));
  const env: NodeJS.ProcessEnv = {
    ...inherited,
    CATTERY_DATA_DIR: config.dataDir,
    CATTERY_ADMIN_TOKEN: token,
    CATTERY_HOSTER_ID: config.hosterId,
    CATTERY_PORT_RANGE: config.portRange.join('-'),
    CATTERY_SUBNET_POOL: config.subnetPool,
    CATTERY_PORT: String(port),
    CATTERY_RECONCILE_INTERVAL_S: '2',
    CATTERY_HEALTH_TIMEOUT_S: '60',
    CATTERY_LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'info',
  };
  const base = `http://127.0.0.1:${port}`;
  const api = async (p: string, init: RequestInit = {}, bearer = token) => {
    const res = await fetch(`${base}${p}`, { ...init, headers: { authorization: `Bearer ${bearer}`, ...(init.headers ?? {}) }, signal: AbortSignal.timeout(20_000) });
    const text = await res.text();
    let json: unknown;
    try { json = JSON.parse(text); } catch { json = undefined; }
    return { status: res.status, text, json: json as any };
  };

  const logFile = path.join(config.dataDir, 'serve.log');
  const log = fs.openSync(logFile, 'a', 0o600);
  let server: ChildProcess | undefined;
  let exited = false;
  // On failure: the server's warnings and errors, then its last lines.
  const logTail = () => {
    try {
      const all = fs.readFileSync(logFile, 'utf8').split('\n');
      const warn = all.filter((l) => /"level":(40|50|60)\b/.test(l)).slice(0, 60).map((l) => l.slice(0, 1500));
      return [...warn, '…', ...all.slice(-20).map((l) => l.slice(0, 600))].join('\n');
    } catch { return ''; }
  };
  const killNow = () => { if (server && !exited) try { server.kill('SIGKILL'); } catch { /* gone */ } };
  process.once('exit', killNow);
  // Teardowns run last-registered first: the server stops, then the engine's objects and loop devices go, and only
  // then testConfig's teardown removes the data folder.
  t.teardown(async () => {
    try {
      if (server && !exited) {
        server.kill('SIGTERM');
        await waitFor('the server to stop on SIGTERM', () => exited, 25_000, 100).catch(() => { killNow(); });
      }
    } catch { /* cleanup goes on */ }
    try { await removeHosterObjects(config.hosterId); } catch (e) { t.comment(`removeHosterObjects: ${String(e)}`); }
    try { await detachUnder(config.dataDir); } catch (e) { t.comment(`detachUnder: ${String(e)}`); }
    try { fs.closeSync(log); } catch { /* closed */ }
    process.removeListener('exit', killNow);
  });

  server = spawn(process.execPath, ['bin/cattery.js', 'serve'], { cwd: ROOT, env, stdio: ['ignore', log, log] });
  server.on('exit', () => { exited = true; });
  const up = await waitFor('the server to answer', async () => !exited && (await api('/api/catalog').catch(() => ({ status: 0 }))).status === 200, 30_000, 200)
    .then(() => true, (e: Error) => { t.fail(`${e.message}\n${logTail()}`); return false; });
  if (!up) return;
  t.ok(fs.existsSync(path.join(ROOT, 'dist/cli/main.js')), 'bin/cattery.js finds its compiled CLI');

  // The README's backup example writes a restic repository to an absolute folder: this run's own, or the test says
  // so rather than touch one it did not make; removed once the test is over.
  const repoDirs = [...README.matchAll(/^node bin\/cattery\.js backup add \S+ (\/\S+)$/gm)].map((m) => m[1]!);
  for (const d of repoDirs) {
    if (fs.existsSync(d)) { t.fail(`${d} exists (an earlier run of this test, killed?): remove it to run the README's backup example`); return; }
    t.teardown(() => fs.rmSync(d, { recursive: true, force: true }));
  }

  let aLine: string | undefined;
  const rewrite = (c: string) => c.replace(/\b(localhost|127\.0\.0\.1):8080\b/g, `$1:${port}`);

  for (const b of blocks.filter((x) => x.kind === 'cli' || x.kind === 'curl')) {
    const where = `README.md:${b.line}`;
    const cmds = commands(b.text).map(rewrite);
    const left = DEADLINE - Date.now();
    if (left < 5000) { t.fail(`${where}: no time left to run this block (the file's budget is spent)`); continue; }
    const defines = cmds.find((c) => /^A="/.test(c));
    if (defines) aLine = defines;
    const prelude = b.kind === 'curl' && !defines ? (aLine ? [aLine] : []) : [];
    if (b.kind === 'curl' && !aLine) t.fail(`${where}: a curl block comes before any block defines A`);
    const started = Date.now();
    const { ran, stderr, timedOut } = await runSession(cmds, prelude, env, Math.min(left, 150_000));
    t.comment(`${where}: ${b.kind} block, ${cmds.length} commands, ${Math.round((Date.now() - started) / 1000)} s`);
    t.notOk(timedOut, `${where}: the block finished in time`);
    t.equal(ran.length, cmds.length, `${where}: every command ran${stderr ? `\nstderr: ${stderr}` : ''}`);
    for (const r of ran) {
      const short = r.cmd.replace(/\s*\\\n\s*/g, ' ').slice(0, 110);
      t.equal(r.rc, 0, `${where}: exits 0: ${short}${r.rc ? `\n${r.body}\n${stderr}` : ''}`);
      if (/^A=/.test(r.cmd)) continue;
      if (b.kind === 'cli') { await checkCli(t, r, where, api, config.dataDir); continue; }
      t.match(r.http, /^2\d\d$/, `${where}: answered 2xx (${r.http}): ${short}${/^2/.test(r.http ?? '') ? '' : `\n${r.body.slice(0, 500)}`}`);
      const status = (r.json as { statusCode?: number } | undefined)?.statusCode;
      t.ok(!(typeof status === 'number' && status >= 500), `${where}: no 5xx in the answer`);
      await checkCurl(t, r, where, api, config.hosterId, config.dataDir);
    }
    await afterBlock(t, b, ran, api);
  }
  if (!t.passing()) t.comment(`server log (tail):\n${logTail()}`);
});

type Api = (p: string, init?: RequestInit, bearer?: string) => Promise<{ status: number; text: string; json: any }>;

async function checkCli(t: Test, r: Ran, where: string, api: Api, dataDir: string): Promise<void> {
  if (r.cmd === 'node bin/cattery.js backup key') {
    t.match(r.body.trim(), /^ssh-ed25519 [A-Za-z0-9+/=]+ cattery-backup@\S+$/, `${where}: prints cattery's SSH public key`);
    t.equal(fs.statSync(path.join(dataDir, 'restic', 'ssh', 'id_ed25519')).mode & 0o777, 0o600, `${where}: its private half is 0600`);
    return;
  }
  const backup = /^node bin\/cattery\.js backup (add|sheet|run|snapshots) (\S+)(?: (\S+))?$/.exec(r.cmd);
  if (backup) {
    const [, sub, name, where2] = backup;
    if (sub === 'add') {
      t.match(r.body, `repository ${name} ready at ${where2}`, `${where}: the repository is made`);
      t.ok(fs.existsSync(path.join(where2!, 'config')), `${where}: restic's repository is in ${where2}`);
      t.equal(fs.statSync(path.join(dataDir, 'restic', 'keys', `${name}.password`)).mode & 0o777, 0o600, `${where}: its password file is 0600`);
    } else if (sub === 'sheet') {
      const pw = fs.readFileSync(path.join(dataDir, 'restic', 'keys', `${name}.password`), 'utf8').trim();
      t.match(r.body, `Password / mot de passe : ${pw}`, `${where}: the sheet gives the repository's password`);
      t.match(r.body, /restore --from/, `${where}: and the restore command`);
    } else if (sub === 'run') {
      // It may first say it waits for the backup cattery serve's schedule started when the repository was added.
      const lines = r.body.trim().split('\n').filter((l) => !/^a backup to \S+ is running/.test(l));
      t.ok(lines.length >= 2 && lines.every((l) => l.startsWith('ok ')), `${where}: every run ok:\n${r.body}`);
      t.match(r.body, /^ok {3}backup hoster snapshot [0-9a-f]{8}/m, `${where}: cattery itself is in it`);
    } else {
      t.match(r.body, /^[0-9a-f]{8} \S+ \S+ cattery,hoster$/m, `${where}: the snapshots are listed, cattery's own among them`);
    }
    return;
  }
  const add = /^node bin\/cattery\.js users add (\S+) --name "([^"]+)" --role (\S+)$/.exec(r.cmd);
  if (!add) { t.fail(`${where}: this test does not know what \`${r.cmd}\` should print: teach it`); return; }
  const [, login, name, roles] = add;
  const m = new RegExp(`^${login} added\\. First password \\(shown once, to change at the first sign-in\\): (\\S{8,})$`, 'm').exec(r.body);
  t.ok(m, `${where}: prints the first password${m ? '' : `\n${r.body}`}`);
  const users = await api('/api/users');
  const user = (users.json as { login: string; name: string; roles: string[] }[]).find((u) => u.login === login);
  t.ok(user, `${where}: ${login} is in the server's database (same data folder)`);
  t.equal(user?.name, name, 'with the name given');
  t.same(user?.roles, roles!.split(','), 'and the roles given');
  // They sign in with it at /login and must then choose their own.
  const db = new Database(path.join(dataDir, 'cattery.db'), { readonly: true, fileMustExist: true });
  try {
    const row = db.prepare('select password_hash h, must_change_password c from users where login = ?').get(login) as { h: string; c: number } | undefined;
    t.ok(m && await verifyPassword(m[1]!, row?.h ?? null), 'the printed password is the one stored');
    t.equal(row?.c, 1, 'and must be changed at the first sign-in');
  } finally { db.close(); }
}

async function checkCurl(t: Test, r: Ran, where: string, api: Api, hosterId: string, dataDir: string): Promise<void> {
  const j = r.json as any;
  const cmd = r.cmd;
  const body = /-d '([^']*)'/.exec(cmd)?.[1];
  const sent = body ? JSON.parse(body) : undefined;
  if (/ \S+\/api\/catalog\b/.test(cmd)) {
    const ids = (Array.isArray(j) ? j : []).map((s: { id: string }) => s.id);
    for (const id of ['mail', 'pads', 'files']) t.ok(ids.includes(id), `${where}: the catalog offers ${id}`);
  } else if (/-XPOST '?\S+\/api\/instances(\?wait=true)?'? /.test(cmd)) {
    t.equal(j?.slug, sent.slug, `${where}: instance ${sent.slug} created`);
    t.equal(j?.service, sent.service, `of service ${sent.service}`);
    if (/\?wait=true/.test(cmd)) {
      t.ok(['healthy', 'running'].includes(j?.observed), `${where}: ?wait=true came back converged (${j?.observed}${j?.lastError ? `: ${j.lastError}` : ''})`);
      const now = await api(`/api/instances/${sent.slug}`);
      t.ok(['healthy', 'running'].includes(now.json?.observed), `${sent.slug} is ${now.json?.observed} afterwards`);
      if (sent.service === 'mail') {
        // The README's fingerprint command, for this hoster's container (`<CATTERY_HOSTER_ID>-<slug>`).
        const fp = /`(docker exec cattery-(\S+) openssl x509 [^`]+)`/.exec(README);
        t.ok(fp, 'the README says how to read the mail certificate\'s fingerprint');
        if (fp && fp[2] === sent.slug) {
          const run = spawnSync(BASH, ['--noprofile', '--norc', '-c', fp[1]!.replace('cattery-', `${hosterId}-`)], { encoding: 'utf8', timeout: 20_000 });
          t.equal(run.status, 0, `${where}: the fingerprint command runs (${run.stderr.trim()})`);
          t.match(run.stdout, /^sha256 Fingerprint=([0-9A-F]{2}:){31}[0-9A-F]{2}$/m, 'and prints the SHA-256 fingerprint');
        }
      }
    }
  } else if (/-XPOST \S+\/api\/instances\/[a-z0-9-]+\/accounts /.test(cmd)) {
    const slug = /\/api\/instances\/([a-z0-9-]+)\/accounts/.exec(cmd)![1]!;
    t.equal(j?.username, sent.username, `${where}: account ${sent.username} in ${slug} answered`);
    const acc = await api(`/api/instances/${slug}/accounts/${sent.username}`);
    t.equal(acc.status, 200, `${where}: ${slug}/${sent.username} exists afterwards`);
    t.equal(acc.json?.quotaMb, sent.quotaMb, `with quota ${sent.quotaMb} MB`);
  } else if (/-XPOST \S+\/api\/tokens /.test(cmd)) {
    t.match(j?.token, /^ct_/, `${where}: the token is shown: {"token":"ct_…","info":{…}}`);
    t.same(j?.info?.roles, sent.roles, 'with the roles asked for');
    const list = await api('/api/tokens');
    t.ok((list.json as { id: number }[]).some((x) => x.id === j?.info?.id), 'it is listed afterwards');
    const power = await api('/api/metering/power', {}, j?.token);
    t.equal(power.status, 200, 'and it reads power (city role)');
    const person = await api('/api/metering/accounts/nobody/nobody', {}, j?.token);
    t.equal(person.status, 403, 'never one person\'s figures');
  } else if (/-XPUT \S+\/api\/servers\/([a-z0-9-]+)\/energy /.test(cmd)) {
    const name = /\/api\/servers\/([a-z0-9-]+)\/energy/.exec(cmd)![1];
    t.same(j, sent, `${where}: the server's figures are stored as sent`);
    // GET /api/servers does not show them: read the server's database (same data folder).
    const db = new Database(path.join(dataDir, 'cattery.db'), { readonly: true, fileMustExist: true });
    try {
      const row = db.prepare('select energy from servers where name = ?').get(name) as { energy: string } | undefined;
      t.same(row ? JSON.parse(row.energy) : undefined, sent, `server ${name} has them afterwards`);
    } finally { db.close(); }
  } else if (/\/api\/metering\/energy\?by=service/.test(cmd)) {
    t.ok(j && typeof j === 'object' && !Array.isArray(j), `${where}: an energy report`);
  } else if (/\/api\/metering\/power\b/.test(cmd)) {
    t.ok(Array.isArray(j?.servers) && j.servers.length > 0, `${where}: power per server`);
  } else if (/\/api\/metering\/top\?limit=(\d+)/.test(cmd)) {
    const limit = Number(/\?limit=(\d+)/.exec(cmd)![1]);
    t.ok(Array.isArray(j) && j.length <= limit, `${where}: at most ${limit} instances`);
  } else if (/\/api\/metering\/accounts\/[a-z0-9-]+\/[a-z0-9._-]+/.test(cmd)) {
    t.equal(typeof j?.keyShare, 'number', `${where}: one account's share`);
  } else if (/\/metrics\b/.test(cmd)) {
    for (const m of /# Prometheus: ([^\n]+)/.exec(cmd)?.[1]?.split(/,\s*|…/).filter((x) => /^cattery_/.test(x.trim())) ?? []) {
      t.match(r.body, new RegExp(`^${m.trim()}\\b`, 'm'), `${where}: /metrics has ${m.trim()}`);
    }
  } else if (/-XPOST \S+\/api\/instances\/[a-z0-9-]+\/stop/.test(cmd)) {
    t.equal(j?.desired, 'stopped', `${where}: the instance is to be stopped`);
  } else if (/-XDELETE '?\S+\/api\/instances\/[a-z0-9-]+(\?purge=true)?'?/.test(cmd)) {
    t.ok(j === undefined || j === null || j?.desired === 'deleted' || j?.observed === 'deleted', `${where}: the instance is to be deleted`);
  } else if (/-H "\$A" \S+\/api\/instances\/[a-z0-9-]+\s/.test(`${cmd} `)) {
    const slug = /\/api\/instances\/([a-z0-9-]+)/.exec(cmd)![1];
    t.equal(j?.slug, slug, `${where}: instance ${slug} read`);
    t.ok(j && 'desired' in j && 'observed' in j && 'ports' in j && 'lastError' in j, 'with desired and observed state, ports and last error');
  } else if (/\/api\/governance\/colleges /.test(cmd)) {
    t.same(j?.map((c: { slug: string }) => c.slug), sent.map((c: { slug: string }) => c.slug), `${where}: the colleges are set`);
    const g = await api('/api/governance');
    t.same(g.json?.colleges.map((c: { slug: string; weightPct: number }) => [c.slug, c.weightPct]), sent.map((c: { slug: string; weightPct: number }) => [c.slug, c.weightPct]), 'with their weights, afterwards');
  } else if (/\/api\/governance\/settings /.test(cmd)) {
    for (const [k, v] of Object.entries(sent)) t.equal(j?.[k], v, `${where}: ${k} is ${String(v)}`);
  } else if (/\/api\/governance\/categories\/[a-z0-9-]+ /.test(cmd)) {
    t.equal(j?.slug, /categories\/([a-z0-9-]+)/.exec(cmd)![1], `${where}: the dues category is stored`);
    t.equal(j?.amountCents, sent.amountCents, `at ${sent.amountCents} cents`);
  } else if (/-XPOST \S+\/api\/members /.test(cmd)) {
    t.equal(j?.name, sent.name, `${where}: ${sent.name} applies`);
    t.equal(j?.status, 'applicant', 'as an applicant');
  } else if (/\/api\/members\/\d+\/admit/.test(cmd)) {
    t.equal(j?.status, 'admitted', `${where}: the member is admitted`);
  } else if (/\/api\/members\/\d+\/payments /.test(cmd)) {
    t.equal(j?.payment?.amountCents, sent.amountCents, `${where}: the payment is recorded`);
    t.equal(j?.member?.dues?.status, 'current', 'and the member\'s dues are current');
  } else if (/\/api\/services\/[a-z0-9-]+\/settings /.test(cmd)) {
    const id = /services\/([a-z0-9-]+)\/settings/.exec(cmd)![1];
    t.equal(j?.membersOnly, sent.membersOnly, `${where}: ${id} is for members only`);
    const cat = await api('/api/catalog');
    t.equal((cat.json as { id: string; membersOnly: boolean }[]).find((x) => x.id === id)?.membersOnly, sent.membersOnly, 'and the catalog says so');
  } else if (/-XPOST \S+\/api\/polls /.test(cmd)) {
    t.equal(j?.title, sent.title, `${where}: the proposal is open`);
    t.same(j?.action, sent.action, 'with its action');
    const list = await api('/api/polls');
    t.ok((list.json as { id: number }[]).some((p) => p.id === j?.id), 'it is listed afterwards');
  } else if (/\/api\/decisions\b/.test(cmd)) {
    t.ok(Array.isArray(j), `${where}: the public register answers without a token`);
  } else {
    t.fail(`${where}: this test does not know what this example should do; teach it: ${cmd}`);
  }
}

/** What a block leaves behind. */
async function afterBlock(t: Test, b: Block, ran: Ran[], api: Api): Promise<void> {
  const deleted = new Set(ran.filter((r) => /-XDELETE/.test(r.cmd)).map((r) => /\/api\/instances\/([a-z0-9-]+)/.exec(r.cmd)?.[1]));
  for (const slug of deleted) {
    if (!slug) continue;
    const gone = await waitFor(`${slug} to be deleted`, async () => (await api(`/api/instances/${slug}`)).status === 404, 60_000, 500)
      .then(() => true, () => false);
    t.ok(gone, `README.md:${b.line}: ${slug} is gone after the block's delete`);
  }
}
