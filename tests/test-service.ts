// A service written by a test (its manifest given here, busybox from the probe's Dockerfile), built and run in a
// runtime of its own: for account operations that hang, babble, fail, record what they get, or export a lot.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import type { Test } from 'tap';
import type { Config } from '../src/config.js';
import { loadCatalog } from '../src/catalog/load.js';
import { connectEngine } from '../src/orchestrator/docker/engine.js';
import { buildImages, buildWorkDir } from '../src/orchestrator/docker/images.js';
import type { ExecLimits } from '../src/orchestrator/docker/index.js';
import { detachUnder } from '../src/orchestrator/sized-volumes.js';
import { createRuntime, type Runtime } from '../src/runtime.js';
import { ROOT, asOperator, quickHealthChecks, removeHosterObjects, testConfig } from './helpers.js';

/** An account operation that reads its input and answers ok. */
export const OK_OP = ['/bin/sh', '-c', 'cat >/dev/null; echo \'{"ok":true,"bytes":1,"items":1}\''];

/** The manifest of a small busybox HTTP service with one sized volume; `extra` sets what differs. */
export function busyboxService(id: string, extra: Record<string, unknown>): Record<string, unknown> {
  return {
    id, openForSignup: false,
    image: { production: 'busybox:1.36.1', local: { base: 'busybox', dockerfile: 'Dockerfile' } },
    // httpd as PID 1 would ignore SIGTERM (the kernel drops a signal PID 1 has no handler for), and every stop or
    // restart waited Docker's 10 s grace before its SIGKILL: the shell stays PID 1 and ends the server on TERM.
    command: ['/bin/sh', '-c', "echo ok > /tmp/index.html || exit 1; httpd -f -p 8080 -h /tmp & trap 'kill $!; exit 0' TERM; wait"],
    user: '65534:65534',
    ports: [{ name: 'http', container: 8080, protocol: 'tcp', publish: true }],
    volumes: [{ name: 'data', path: '/data', sizeMb: 16 }],
    environment: {},
    health: { command: ['/bin/wget', '-q', '-O', '/dev/null', 'http://127.0.0.1:8080/index.html'], intervalSeconds: 1, timeoutSeconds: 2, retries: 3, startPeriodSeconds: 0 },
    limits: { memoryMb: 32, cpus: 0.25, pids: 32 },
    capabilities: [],
    readOnlyRootfs: true,
    tmpfs: [{ path: '/tmp', sizeMb: 4 }],
    ...extra,
  };
}

/** Write the service to a catalog folder of the test's and build its image (cached by the hash of its files, as
 * every service's); the folder is removed at the test's end. */
export async function serviceCatalog(t: Test, manifest: Record<string, unknown>): Promise<string> {
  const id = String(manifest.id);
  const catDir = fs.mkdtempSync(path.join(os.tmpdir(), `cattery-${id}-`));
  t.teardown(() => fs.rmSync(catDir, { recursive: true, force: true }));
  fs.mkdirSync(path.join(catDir, id));
  fs.writeFileSync(path.join(catDir, id, 'service.json'), JSON.stringify(manifest, null, 2));
  fs.copyFileSync(path.join(ROOT, 'tests/fixtures/services/probe/Dockerfile'), path.join(catDir, id, 'Dockerfile'));
  const catalog = loadCatalog([catDir]);
  t.same(catalog.errors, []);
  const build = testConfig(t);
  const engine = connectEngine(build.dockerEndpoint, { hosterId: build.hosterId, timeoutSeconds: 60, log: pino({ level: 'silent' }) });
  await buildImages(engine, catalog, { mirror: build.debianMirror, workDir: buildWorkDir(build.dataDir), only: [id], progress: () => undefined });
  return catDir;
}

/** Write the service to a catalog folder of the test's, build its image, and start a runtime that knows it (and,
 * with `withCatalog`, the real catalog too), cleaned up at the test's end. */
export async function runtimeWithService(t: Test, manifest: Record<string, unknown>, opts: {
  withCatalog?: boolean; config?: Partial<Config>; accountLimits?: ExecLimits;
} = {}): Promise<{ rt: Runtime; config: Config }> {
  const catDir = await serviceCatalog(t, manifest);
  const config = testConfig(t, { catalogDirs: [...(opts.withCatalog ? [path.join(ROOT, 'services')] : []), catDir], ...opts.config });
  const rt = await createRuntime(config, pino({ level: config.logLevel }), { maxBackoffSeconds: 2, ...(opts.accountLimits ? { accountLimits: opts.accountLimits } : {}) });
  quickHealthChecks(rt.catalog);
  rt.start(config.reconcileIntervalSeconds);
  asOperator(rt.app);
  t.teardown(async () => { await rt.close(); await removeHosterObjects(config.hosterId); await detachUnder(config.dataDir); });
  return { rt, config };
}
