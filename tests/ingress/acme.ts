// The test CA (bench/lib/acme-ca.mjs, shared with bench/ingress) with the test's teardown.
import type { Test } from 'tap';
import { docker } from '../helpers.js';
import { serviceImageRef, systemImage } from '../../src/orchestrator/docker/index.js';
// @ts-expect-error: plain JavaScript shared with the benchmark, typed here.
import * as ca from '../../bench/lib/acme-ca.mjs';

export interface AcmeCa { id: string; rootPem: string; rootFile: string; remove: () => Promise<void> }
export const ACME_DIRECTORY: string = ca.ACME_DIRECTORY;

export async function startAcmeCa(t: Test, hosterId: string, dir: string): Promise<AcmeCa> {
  const started = await ca.startAcmeCa(docker, { hosterId, image: serviceImageRef(systemImage('ingress')), dir }) as AcmeCa;
  t.teardown(started.remove);
  return started;
}

export async function wireAcmeCa(started: AcmeCa, hosterId: string, names: string[]): Promise<void> {
  await ca.wireAcmeCa(docker, started, hosterId, names);
}
