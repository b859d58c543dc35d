// Prometheus text for /metrics, in the naming of Scaphandre and Kepler. Totals come from the daily rollups (kept for
// good), so the counters only grow; power is the last pass's. The totals are read once per scrape, whatever the
// number of metrics that show them.
import { Counter, Gauge, Registry } from 'prom-client';
import type { Db } from '../db/connection.js';
import type { Collector } from './collector.js';
import { totalsByLine, type LineTotal } from './store.js';

export interface Prometheus {
  contentType: string;
  scrape(): Promise<string>;
}

/** `extra` registers other domains' metrics on the same registry (backups/metrics.ts): one scrape, one page. */
export function createPrometheus(db: Db, collector: Collector, extra: ((registry: Registry) => void)[] = []): Prometheus {
  const registry = new Registry();
  for (const add of extra) add(registry);
  let totals: LineTotal[] = [];
  new Gauge({
    name: 'cattery_server_power_watts', help: 'Server power over the last metering pass', labelNames: ['server', 'method', 'model'],
    registers: [registry],
    collect() { this.reset(); for (const r of collector.current()) this.set({ server: r.server, method: r.method, model: r.model }, r.watts); },
  });
  new Gauge({
    name: 'cattery_instance_power_watts', help: 'Instance active power over the last pass (CPU share of active power)',
    labelNames: ['server', 'instance', 'service'], registers: [registry],
    collect() {
      this.reset();
      for (const r of collector.current()) for (const i of r.instances) this.set({ server: r.server, instance: i.slug, service: i.service }, i.watts);
    },
  });
  new Counter({
    name: 'cattery_server_energy_joules_total', help: 'Server energy since metering began, by part: idle, other processes, instances',
    labelNames: ['server', 'part'], registers: [registry],
    collect() {
      this.reset();
      for (const r of totals) if (r.scope !== 'server') this.inc({ server: r.server, part: r.scope }, r.e);
    },
  });
  new Counter({
    name: 'cattery_instance_energy_joules_total', help: 'Instance energy since metering began: active (CPU share) and allocated idle, apart',
    labelNames: ['server', 'instance', 'service', 'kind'], registers: [registry],
    collect() {
      this.reset();
      for (const r of totals) if (r.scope === 'instance') {
        this.inc({ server: r.server, instance: r.slug, service: r.service, kind: 'active' }, r.e);
        this.inc({ server: r.server, instance: r.slug, service: r.service, kind: 'idle_share' }, r.i);
      }
    },
  });
  new Counter({
    name: 'cattery_instance_cpu_seconds_total', help: 'Instance CPU time since metering began', labelNames: ['server', 'instance', 'service'],
    registers: [registry],
    collect() {
      this.reset();
      for (const r of totals) if (r.scope === 'instance') this.inc({ server: r.server, instance: r.slug, service: r.service }, r.c);
    },
  });
  return {
    contentType: registry.contentType,
    async scrape() {
      totals = totalsByLine(db);
      return registry.metrics();
    },
  };
}
