// A server's power: measured where a meter exists (RAPL counters, a smart plug or PDU answering HTTP JSON or
// Prometheus text), otherwise modelled from its power curve and the CPU load. Every figure says which.
import type { MeterSpec, ServerEnergy } from '../db/schema.js';

/** Used until an administrator sets the server's own figures (PUT /api/servers/:id/energy). An order of magnitude
 * for a small single-socket server, not a measurement: docs/energy.md says where to find real ones. */
export const DEFAULT_SERVER_ENERGY: ServerEnergy = { idleWatts: 50, maxWatts: 200, embodiedKgCo2e: 1000, serviceLifeYears: 6 };

/** Watts at a CPU load between 0 and 1: the SPECpower-style 11-point curve interpolated, else linear idle → max. */
export function curveWatts(e: Pick<ServerEnergy, 'idleWatts' | 'maxWatts' | 'curve'>, load: number): number {
  const u = Math.min(1, Math.max(0, Number.isFinite(load) ? load : 0));
  const pts = e.curve && e.curve.length === 11 ? e.curve : undefined;
  if (!pts) return e.idleWatts + (e.maxWatts - e.idleWatts) * u;
  const x = u * 10;
  const i = Math.min(9, Math.floor(x));
  return pts[i]! + (pts[i + 1]! - pts[i]!) * (x - i);
}

export function modelName(e: ServerEnergy, usedMeter: MeterSpec['kind'] | null): string {
  if (usedMeter) return `meter:${usedMeter}`;
  return e.curve?.length === 11 ? 'power-curve:specpower-11pt' : `power-curve:linear(${e.idleWatts}W-${e.maxWatts}W)`;
}

/** Read an external meter once: watts. A plug answering `{"power": {"w": 41.5}}` is read with field `power.w`. */
export async function readExternalMeter(spec: Exclude<MeterSpec, { kind: 'rapl' }>, timeoutMs = 3000): Promise<number> {
  const res = await fetch(spec.url, { signal: AbortSignal.timeout(timeoutMs) });
  if (!res.ok) throw new Error(`meter ${spec.url} answered ${res.status}`);
  const text = await res.text();
  let w: number | undefined;
  if (spec.kind === 'http-json') {
    let v: unknown = JSON.parse(text);
    for (const k of spec.field.split('.')) v = (v as Record<string, unknown> | undefined)?.[k];
    w = Number(v);
  } else {
    // Prometheus text: the first sample of the metric (any labels), e.g. `pdu_outlet_power_watts{outlet="3"} 41.5`.
    const line = text.split('\n').find((l) => l.startsWith(`${spec.metric} `) || l.startsWith(`${spec.metric}{`));
    w = Number(line?.trim().split(/\s+/).at(-1));
  }
  if (!Number.isFinite(w) || w! < 0) throw new Error(`meter ${spec.url} gave no power reading`);
  return w!;
}
