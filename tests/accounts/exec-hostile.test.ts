// Outside review of the account operations' exec plumbing added for import and restore-account
// (src/orchestrator/docker/exec.ts execFromFile, src/accounts/accounts.ts exportToFile), against a hostile
// service: one plain container of the backup image (full Debian userland) stands for a compromised service, and
// each operation is a shell line. Each subtest is a defect an outside review found (now fixed), or an attack that
// did not work.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { pino } from 'pino';
import { createRuntime } from '../../src/runtime.js';
import { exportToFile } from '../../src/accounts/accounts.js';
import { execFromFile, execWithInput, serviceImageRef, systemImage } from '../../src/orchestrator/docker/index.js';
import type { Catalog } from '../../src/catalog/load.js';
import { docker, execIn, removeHosterObjects, testConfig } from '../helpers.js';

t.test('a hostile service answering import and export', async (t) => {
  const config = testConfig(t);
  const rt = await createRuntime(config, pino({ level: 'silent' }), { maxBackoffSeconds: 2 });
  t.teardown(async () => { await rt.close(); await removeHosterObjects(config.hosterId); });
  const server = rt.backups.localServer();
  const engine = rt.accounts.engineFor(server);
  const slug = 'hostile';
  const name = `${config.hosterId}-${slug}`;
  const c = await docker.createContainer({
    name, Image: serviceImageRef(systemImage('backup')), Entrypoint: ['/usr/bin/sleep'], Cmd: ['infinity'],
    Labels: { 'cattery.hoster': config.hosterId }, HostConfig: { NetworkMode: 'none' },
  });
  await c.start();
  const archive = path.join(config.dataDir, 'archive.tar');
  fs.writeFileSync(archive, Buffer.alloc(5 * 1024 * 1024), { mode: 0o600 });

  // A backup pauses a service's container for its copy: an operation asked meanwhile waits for the pause to end
  // (within its deadline) rather than failing with Docker's conflict.
  t.test('an operation asked while a backup holds the container paused waits for it', async (t) => {
    await c.pause();
    const unpause = new Promise((r) => setTimeout(r, 2000)).then(() => c.unpause());
    const r = await execWithInput(engine, name, ['sh', '-c', 'cat >/dev/null; echo \'{"ok":true}\''], '{}', { timeoutMs: 30_000, maxBytes: 1024 });
    await unpause;
    t.equal(r.exitCode, 0, 'it ran once the pause ended');
    t.equal(r.stdout.toString().trim(), '{"ok":true}');
    await c.pause();
    await t.rejects(execWithInput(engine, name, ['true'], '', { timeoutMs: 1500, maxBytes: 1024 }), 'a pause past its deadline is still an error');
    await c.unpause();
  });

  // Found in review (medium): an import cut at its deadline goes on in the container (Docker has no call to kill an exec,
  // exec.ts says so), and may still swap the account's data in after cattery answered "refused, and nothing of the
  // account changed" (accounts.ts importAccount) and restore-account recorded its run as failed. For an import (the
  // one operation that replaces a resident's data) the exec should be killed, or bounded inside the container
  // (e.g. run under `timeout`, or its pid recorded and killed), before cattery reports that nothing changed.
  t.test('an import past its deadline does not swap the data in afterwards', async (t) => {
    await execIn(name, ['rm', '-f', '/tmp/swapped']);
    const argv = ['sh', '-c', 'cat >/dev/null; sleep 4; : > /tmp/swapped; echo \'{"ok":true}\''];
    await t.rejects(execFromFile(engine, name, argv, '{"username":"alice","quotaMb":20}\n', archive, { timeoutMs: 1500, maxBytes: 1024 * 1024 }, 'import'),
      /did not finish/, 'cattery reports the import failed');
    await new Promise((r) => setTimeout(r, 6000));
    const swapped = await execIn(name, ['test', '-e', '/tmp/swapped']);
    t.not(swapped.code, 0, 'and the import did not complete behind its back');
  });

  // Found in review (medium): exportToFile leaves what a failed or cut export wrote at `file`. restoreAccount passes
  // data/backups/accounts/<slug>-<user>-<time>.tar as that file for the live account's copy: when that export fails,
  // a truncated or junk "copy" stays there for good and the answer says `kept: true` (backups.ts keptAt is set
  // before the export). exportAccount removes its staging on failure; exportToFile does not.
  const withExport = (exec: string[]): Catalog => {
    const files = rt.catalog.services.get('files')!;
    const manifest = { ...files.manifest, accounts: { ...files.manifest.accounts!, operations: { ...files.manifest.accounts!.operations, export: { exec } } } };
    return { ...rt.catalog, services: new Map([...rt.catalog.services, ['files', { ...files, manifest }]]) } as Catalog;
  };
  for (const [what, line] of [['exits 3 after a partial tar', 'printf partial-archive; exit 3'], ['writes past its bound', 'exec yes']] as const) {
    t.test(`an export that ${what} leaves no file behind`, async (t) => {
      const file = path.join(config.dataDir, `kept-${what.replace(/\W+/g, '-')}.tar`);
      const deps = { ...rt.accounts, catalog: withExport(['sh', '-c', line]) };
      await t.rejects(exportToFile(deps, { slug, service: 'files', serverId: server.id }, 'alice', 1, file), 'the export fails');
      t.notOk(fs.existsSync(file), `nothing is left at ${path.basename(file)} (${fs.existsSync(file) ? fs.statSync(file).size : 0} bytes)`);
    });
  }

  // Held in review: an import that refuses before reading its archive is answered with its refusal, not a broken pipe.
  t.test('a refusal before the archive is read comes back as the operation\'s answer', async (t) => {
    const argv = ['sh', '-c', 'read -r line; echo \'{"ok":false,"error":"refused early"}\'; exit 1'];
    const r = await execFromFile(engine, name, argv, '{"username":"alice","quotaMb":20}\n', archive, { timeoutMs: 30_000, maxBytes: 1024 * 1024 }, 'import');
    t.equal(r.exitCode, 1);
    t.match(r.stdout.toString(), /refused early/);
  });

  // Held in review: endless output from an import is cut at the answer's cap, within the time.
  t.test('an import printing without end is cut at the cap', async (t) => {
    await t.rejects(execFromFile(engine, name, ['sh', '-c', 'exec yes'], '{}\n', archive, { timeoutMs: 30_000, maxBytes: 1024 * 1024 }, 'import'), /wrote more than/);
  });
});
