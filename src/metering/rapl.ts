// Intel RAPL package energy counters (/sys/class/powercap/intel-rapl:N/energy_uj), as Scaphandre and Kepler read
// them. The counter wraps at max_energy_range_uj; a delta across the wrap is (max − before) + after. Only top-level
// package domains are summed (intel-rapl:0, intel-rapl:1…), not their sub-zones (core, uncore, dram), which the
// package already contains. RAPL measures the CPU packages (and DRAM on servers), not the whole platform: fans,
// disks and power supply losses are left out (docs/energy.md).
import fs from 'node:fs';
import path from 'node:path';

export interface RaplDomain { name: string; file: string; maxUj: number }

export function findRaplDomains(powercapRoot = '/sys/class/powercap'): RaplDomain[] {
  let entries: string[];
  try { entries = fs.readdirSync(powercapRoot); } catch { return []; }
  return entries.filter((e) => /^intel-rapl:\d+$/.test(e)).sort().flatMap((e) => {
    const dir = path.join(powercapRoot, e);
    try {
      const maxUj = Number(fs.readFileSync(path.join(dir, 'max_energy_range_uj'), 'utf8'));
      fs.readFileSync(path.join(dir, 'energy_uj'));
      const name = fs.existsSync(path.join(dir, 'name')) ? fs.readFileSync(path.join(dir, 'name'), 'utf8').trim() : e;
      return [{ name, file: path.join(dir, 'energy_uj'), maxUj }];
    } catch { return []; }
  });
}

export function readRapl(domains: RaplDomain[]): number[] {
  return domains.map((d) => Number(fs.readFileSync(d.file, 'utf8')));
}

/** Joules between two readings of the same domains, each counter allowed to wrap once. */
export function raplDeltaJoules(domains: RaplDomain[], before: number[], after: number[]): number {
  let uj = 0;
  domains.forEach((d, i) => {
    const a = before[i] ?? 0, b = after[i] ?? 0;
    uj += b >= a ? b - a : d.maxUj - a + b;
  });
  return uj / 1e6;
}
