// Metering's pure parts on recorded fixture trees: cgroup v1 and v2, RAPL with wrap-around, the power curve, the
// Kepler-style split (conserved, checked with fast-check), CO2e and the per-account key.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import fc from 'fast-check';
import { cgroupVersion, containerCgroup, readContainerUsage, readHostCpu, readHostMemory } from '../../src/metering/cgroup.js';
import { findRaplDomains, raplDeltaJoules, readRapl } from '../../src/metering/rapl.js';
import { curveWatts } from '../../src/metering/power.js';
import { accountKey, carbon, splitEnergy } from '../../src/metering/energy-model.js';
import { ROOT } from '../helpers.js';

const F = path.join(ROOT, 'tests/fixtures/metering');

t.test('cgroup v1: cpuacct, memory usage − cache, blkio, the netns without lo', async (t) => {
  const roots = { cgroup: path.join(F, 'v1/cgroup'), proc: path.join(F, 'v1/proc') };
  t.equal(cgroupVersion(roots), 1);
  t.same(readContainerUsage(roots, 1, 4242), {
    cpuNs: 3131149901, memoryBytes: 827392 - 266240, blkReadBytes: 4096 + 1024, blkWriteBytes: 12288, netRxBytes: 736, netTxBytes: 420,
  });
  t.same(readHostCpu(roots), { totalJiffies: 679898 + 4224 + 306428 + 1397542 + 9154 + 0 + 7970 + 64666, idleJiffies: 1397542 + 9154 });
  t.same(readHostMemory(roots), { totalBytes: 24576000 * 1024, availableBytes: 12288000 * 1024 });
  t.throws(() => readContainerUsage(roots, 1, 9999), 'a pid that is gone');
});

t.test('cgroup v2: cpu.stat, memory.current − inactive_file, io.stat', async (t) => {
  const roots = { cgroup: path.join(F, 'v2/cgroup'), proc: path.join(F, 'v2/proc') };
  t.equal(cgroupVersion(roots), 2);
  t.same(readContainerUsage(roots, 2, 777), {
    cpuNs: 2_500_000_000, memoryBytes: 10485760 - 4194304, blkReadBytes: 8292, blkWriteBytes: 4296, netRxBytes: 736, netTxBytes: 420,
  });
});

t.test('a container\'s cgroup found from its id alone (no Docker call): cgroupfs on v1, systemd scope on v2', async (t) => {
  const id = 'e8876abda71924ce30c16540058320f6b0d357bdf1f468ef730d4023708cf57a';
  const v1 = { cgroup: path.join(F, 'v1/cgroup'), proc: path.join(F, 'v1/proc') };
  const v2 = { cgroup: path.join(F, 'v2/cgroup'), proc: path.join(F, 'v2/proc') };
  const one = containerCgroup(v1, 1, id)!;
  t.equal(one.pid, 4242, 'v1: the first process of the memory cgroup');
  t.same(readContainerUsage(v1, 1, one.pid, one.paths), readContainerUsage(v1, 1, 4242), 'v1: the same usage as through /proc/<pid>/cgroup');
  const two = containerCgroup(v2, 2, id)!;
  t.equal(two.pid, 777);
  t.same(readContainerUsage(v2, 2, two.pid, two.paths), readContainerUsage(v2, 2, 777), 'v2: the same usage as through /proc/<pid>/cgroup');
  t.equal(containerCgroup(v1, 1, 'a'.repeat(64)), undefined, 'a container with no cgroup (not started, gone)');
  for (const bad of ['../../../etc', `${id}/..`, '', 'E8876ABD', id + 'x', 'abc']) t.equal(containerCgroup(v1, 1, bad), undefined, `an id that is not one: ${JSON.stringify(bad)}`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cg-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.cpSync(path.join(F, 'v1/cgroup'), dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'memory/docker', id, 'cgroup.procs'), '');
  t.equal(containerCgroup({ cgroup: dir, proc: v1.proc }, 1, id), undefined, 'a cgroup with no process left (the container exited)');
});

t.test('RAPL: package domains only, and a counter that wraps', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rapl-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.cpSync(path.join(F, 'powercap'), dir, { recursive: true });
  const domains = findRaplDomains(dir);
  t.same(domains.map((d) => d.name), ['package-0'], 'the dram sub-zone is inside the package: not counted twice');
  const before = readRapl(domains);
  // 328,850 µJ to the top of the range, then 1,671,150 µJ after the wrap: 2 J in all.
  fs.writeFileSync(path.join(dir, 'intel-rapl:0/energy_uj'), '1671150');
  const after = readRapl(domains);
  t.equal(raplDeltaJoules(domains, before, after), 2);
  t.equal(raplDeltaJoules(domains, [100], [5_000_100]), 5, 'without a wrap');
  t.same(findRaplDomains(path.join(dir, 'nowhere')), [], 'no RAPL: no domains (the power curve stands in)');
});

t.test('power curve: linear by default, SPECpower 11 points when given', async (t) => {
  t.equal(curveWatts({ idleWatts: 50, maxWatts: 200 }, 0), 50);
  t.equal(curveWatts({ idleWatts: 50, maxWatts: 200 }, 0.5), 125);
  t.equal(curveWatts({ idleWatts: 50, maxWatts: 200 }, 7), 200, 'clamped');
  const curve = [40, 60, 70, 78, 85, 92, 100, 110, 122, 136, 150];
  t.equal(curveWatts({ idleWatts: 40, maxWatts: 150, curve }, 0.25), 74);
  t.equal(curveWatts({ idleWatts: 40, maxWatts: 150, curve }, 1), 150);
});

t.test('the split is conserved: idle + other + Σ instances = server, for any input', async (t) => {
  fc.assert(fc.property(
    fc.double({ min: 0, max: 1e6, noNaN: true }), fc.double({ min: 0, max: 500, noNaN: true }), fc.double({ min: 0.1, max: 3600, noNaN: true }),
    fc.double({ min: 0, max: 1e4, noNaN: true }),
    fc.array(fc.record({ cpu: fc.double({ min: 0, max: 1e4, noNaN: true }), mem: fc.integer({ min: 0, max: 4096 }) }), { maxLength: 30 }),
    fc.constantFrom('reserved', 'equal', 'none'),
    (serverJ, idleW, seconds, busy, list, policy) => {
      const inst = list.map((x, i) => ({ slug: `i${i}`, cpuSeconds: x.cpu, reservedMemoryMb: x.mem }));
      const s = splitEnergy(serverJ, idleW, seconds, busy, inst, policy as 'equal');
      const sum = s.idleJ + s.otherJ + [...s.instances.values()].reduce((a, v) => a + v.energyJ, 0);
      const idleAllocated = [...s.instances.values()].reduce((a, v) => a + v.idleShareJ, 0);
      return Math.abs(sum - serverJ) <= 1e-9 * Math.max(1, serverJ) && s.otherJ >= -1e-9 * Math.max(1, serverJ)
        && idleAllocated <= s.idleJ * (1 + 1e-9) + 1e-9 && (policy !== 'none' || idleAllocated === 0);
    },
  ), { numRuns: 500 });
  const s = splitEnergy(1000, 40, 10, 4, [{ slug: 'burn', cpuSeconds: 3, reservedMemoryMb: 64 }, { slug: 'calm', cpuSeconds: 0.01, reservedMemoryMb: 192 }], 'reserved');
  t.equal(s.idleJ, 400);
  t.equal(Math.round(s.instances.get('burn')!.energyJ), 450, 'three quarters of the active 600 J');
  t.equal(s.instances.get('calm')!.idleShareJ, 300, 'idle by reserved memory: 192 of 256 MB');
});

t.test('CO2e and the account key', async (t) => {
  const c = carbon(3_600_000, 52, { kgCo2e: 1000, lifeYears: 5, seconds: 365.25 * 86400, share: 0.5 });
  t.equal(c.operationalG, 52, '1 kWh at 52 g/kWh');
  t.equal(Math.round(c.embodiedG), 100_000, 'a year of a 1 t server over 5 years, half of it');
  const longer = carbon(0, 52, { kgCo2e: 1000, lifeYears: 7, seconds: 365.25 * 86400, share: 1 });
  t.ok(longer.embodiedG < 200_000, 'keeping the server two more years lowers each year\'s share');
  const all = [{ bytes: 300, items: 1 }, { bytes: 100, items: 3 }];
  t.equal(accountKey(all[0]!, all) + accountKey(all[1]!, all), 1, 'the keys share the whole instance');
  t.equal(accountKey(all[0]!, all), 0.5 * 0.75 + 0.5 * 0.25);
  t.equal(accountKey({ bytes: 0, items: 0 }, [{ bytes: 0, items: 0 }, { bytes: 0, items: 0 }]), 0.5, 'no usage known: equal shares');
});
