// Splitting a server's energy between what ran on it, as Kepler does: the idle part (what the server draws doing
// nothing) on its own line; the active part (total − idle) shared by CPU time between cattery's containers and the
// server's other processes (OS, dockerd, cattery itself). Totals are conserved by construction:
//   server = idle + other + Σ instances
// The idle line may also be *allocated* to instances by the association's policy, always reported apart.
export type IdlePolicy = 'reserved' | 'equal' | 'none';

export interface InstanceInterval {
  slug: string;
  /** CPU seconds the container used in the interval. */
  cpuSeconds: number;
  /** Memory the instance reserves (its manifest limit), for the `reserved` idle policy. */
  reservedMemoryMb: number;
}

export interface Split {
  idleJ: number;
  otherJ: number;
  instances: Map<string, { energyJ: number; idleShareJ: number }>;
}

/**
 * @param serverJ energy of the server over the interval (measured or modelled)
 * @param idleW the server's idle power
 * @param seconds interval length
 * @param busyCpuSeconds CPU seconds all processes of the server used (from /proc/stat)
 */
export function splitEnergy(serverJ: number, idleW: number, seconds: number, busyCpuSeconds: number, instances: InstanceInterval[], policy: IdlePolicy): Split {
  const idleJ = Math.min(serverJ, Math.max(0, idleW * seconds));
  const activeJ = serverJ - idleJ;
  const containersCpu = instances.reduce((a, i) => a + Math.max(0, i.cpuSeconds), 0);
  // /proc/stat and the cgroups are read a few microseconds apart: containers may briefly show more than the host.
  const busy = Math.max(busyCpuSeconds, containersCpu);
  const out = new Map<string, { energyJ: number; idleShareJ: number }>();
  const weightOf = (i: InstanceInterval) => (policy === 'equal' ? 1 : policy === 'reserved' ? Math.max(0, i.reservedMemoryMb) : 0);
  const totalWeight = instances.reduce((a, i) => a + weightOf(i), 0);
  let given = 0;
  for (const i of instances) {
    const energyJ = busy > 0 ? activeJ * (Math.max(0, i.cpuSeconds) / busy) : 0;
    given += energyJ;
    out.set(i.slug, { energyJ, idleShareJ: totalWeight > 0 ? idleJ * (weightOf(i) / totalWeight) : 0 });
  }
  // With no CPU at all in the interval, the active part (if any) belongs to the server's own processes.
  return { idleJ, otherJ: activeJ - given, instances: out };
}

/** Where the default grid intensity comes from: the French average consumption mix (ADEME Base Empreinte, electricity,
 * France mainland, 2022, life-cycle: 52 gCO2e/kWh). Set CATTERY_GRID_GCO2E_PER_KWH for another country or year. */
export const FRENCH_GRID_GCO2E_PER_KWH = 52;

export const J_PER_KWH = 3_600_000;

export interface Carbon { operationalG: number; embodiedG: number; totalG: number }

/** CO2e of an energy over a period: operational (kWh × grid intensity) plus the server's embodied emissions amortised
 * linearly over its service life, in proportion to the share of the server this energy stands for. */
export function carbon(energyJ: number, gPerKwh: number, embodied: { kgCo2e: number; lifeYears: number; seconds: number; share: number }): Carbon {
  const operationalG = (energyJ / J_PER_KWH) * gPerKwh;
  const perSecondG = (embodied.kgCo2e * 1000) / (embodied.lifeYears * 365.25 * 86400);
  const embodiedG = perSecondG * embodied.seconds * Math.min(1, Math.max(0, embodied.share));
  return { operationalG, embodiedG, totalG: operationalG + embodiedG };
}

/** A resident's share of an instance's energy: half by their share of its storage, half by their share of its items
 * (messages, files, pads: the activity the service can count). Modelled, and documented as such. */
export function accountKey(account: { bytes: number; items: number }, all: { bytes: number; items: number }[]): number {
  const sb = all.reduce((a, x) => a + x.bytes, 0);
  const si = all.reduce((a, x) => a + x.items, 0);
  const n = all.length || 1;
  const byBytes = sb > 0 ? account.bytes / sb : 1 / n;
  const byItems = si > 0 ? account.items / si : 1 / n;
  return 0.5 * byBytes + 0.5 * byItems;
}
