// The test CA (bench/lib/acme-ca.mjs, shared with bench/ingress) with the test's teardown.
import type { Test } from 'tap';
import { docker } from '../helpers.js';
import { serviceImageRef, systemImage } from '../../src/orchestrator/docker/index.js';
import { ingressSubnet } from '../../src/orchestrator/subnets.js';
// @ts-expect-error: plain JavaScript shared with the benchmark, typed here.
import * as ca from '../../bench/lib/acme-ca.mjs';

export interface AcmeCa { id: string; rootPem: string; rootFile: string; remove: () => Promise<void> }
export const ACME_DIRECTORY: string = ca.ACME_DIRECTORY;

/** `pool`: the test's subnet pool; the CA's network takes the /28 below the front door's (the pool's last), which no
 * instance of the test gets before the pool is nearly full. */
export async function startAcmeCa(t: Test, hosterId: string, dir: string, pool: string): Promise<AcmeCa> {
  const door = ingressSubnet(pool).split('/')[0]!.split('.').map(Number);
  const below = ((door[0]! << 24 | door[1]! << 16 | door[2]! << 8 | door[3]!) >>> 0) - 16;
  const subnet = `${below >>> 24}.${(below >>> 16) & 255}.${(below >>> 8) & 255}.${below & 255}/28`;
  const started = await ca.startAcmeCa(docker, { hosterId, image: serviceImageRef(systemImage('ingress')), dir, subnet }) as AcmeCa;
  t.teardown(started.remove);
  return started;
}

export async function wireAcmeCa(started: AcmeCa, hosterId: string, names: string[]): Promise<void> {
  await ca.wireAcmeCa(docker, started, hosterId, names);
}
