// A real authoritative DNS server for the tests: Debian's Knot DNS (deploy/ensure-test-tools.sh), one knotd per zone
// on 127.0.0.1 at a free port, in a temporary folder of its own; and kzonecheck, Knot's own zone checker.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Resolver } from 'node:dns/promises';

/** knotd and kzonecheck live in /usr/sbin and /usr/bin, which a user's PATH may lack. */
export function tool(name: string): string {
  for (const dir of [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/bin']) {
    const p = path.join(dir, name);
    if (dir && fs.existsSync(p)) return p;
  }
  throw new Error(`${name} is missing: run deploy/ensure-test-tools.sh (Debian's knot and knot-dnssecutils)`);
}

/** A port free on loopback for both TCP and UDP (knotd listens on both). */
export async function freePort(): Promise<number> {
  for (;;) {
    const srv = net.createServer();
    const port = await new Promise<number>((resolve) => srv.listen(0, '127.0.0.1', () => resolve((srv.address() as net.AddressInfo).port)));
    const udp = dgram.createSocket('udp4');
    const ok = await new Promise<boolean>((resolve) => { udp.once('error', () => resolve(false)); udp.bind(port, '127.0.0.1', () => resolve(true)); });
    await new Promise((r) => srv.close(r));
    if (ok) { await new Promise<void>((r) => udp.close(() => r())); return port; }
  }
}

/** The SOA and NS a zone needs to load (RFC 1035 §5.2); the NS is outside the zone, so it needs no glue. */
export function zoneFile(domain: string, body: string, serial = 1): string {
  return `$TTL 3600\n${domain}. 3600 IN SOA ns.invalid. hostmaster.${domain}. ${serial} 3600 600 86400 300\n${domain}. 3600 IN NS ns.invalid.\n${body}`;
}

/** kzonecheck's verdict on a zone: exit 0 and no error, or its output. */
export function kzonecheck(domain: string, zone: string): { ok: boolean; output: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cattery-kzc-'));
  try {
    const file = path.join(dir, `${domain}.zone`);
    fs.writeFileSync(file, zone);
    const r = spawnSync(tool('kzonecheck'), ['-o', domain, file], { encoding: 'utf8', timeout: 10_000 });
    return { ok: r.status === 0, output: `${r.stdout}${r.stderr}` };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export interface Knot { address: string; stop(): Promise<void> }

/** knotd serving `zone` for `domain` on 127.0.0.1; resolves once it answers the zone's SOA. */
export async function startKnot(domain: string, zone: string): Promise<Knot> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cattery-knot-'));
  const port = await freePort();
  fs.writeFileSync(path.join(dir, 'zone'), zone);
  fs.writeFileSync(path.join(dir, 'knot.conf'), [
    'server:', `    listen: 127.0.0.1@${port}`, `    rundir: ${dir}`,
    'database:', `    storage: ${dir}/db`,
    'log:', '  - target: stderr', '    any: warning',
    'zone:', `  - domain: ${domain}`, `    file: ${dir}/zone`,
    // The zone file is the test's: knotd never writes it back nor keeps a journal of it.
    '    zonefile-sync: -1', '    journal-content: none', '',
  ].join('\n'));
  const child: ChildProcess = spawn(tool('knotd'), ['-c', path.join(dir, 'knot.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let errors = '';
  child.stderr!.on('data', (c: Buffer) => { errors = (errors + c.toString()).slice(-4000); });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([gone, new Promise((r) => setTimeout(r, 3000))]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const address = `127.0.0.1:${port}`;
  const r = new Resolver({ timeout: 200, tries: 1 });
  r.setServers([address]);
  const deadline = Date.now() + 10_000;
  for (;;) {
    try { await r.resolveSoa(domain); return { address, stop }; } catch { /* not up yet */ }
    if (child.exitCode !== null || Date.now() > deadline) { await stop(); throw new Error(`knotd did not serve ${domain}: ${errors}`); }
    await new Promise((res) => setTimeout(res, 50));
  }
}
