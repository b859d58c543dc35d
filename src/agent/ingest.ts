// The manager's side of the samples: check one (signature by the key pinned for its server, that server, its time,
// its sequence), then split and record it exactly as the local loop records its own passes (metering/split-pass.ts
// and store.ts), so that a node's energy is conserved the same way: server = idle + other + Σ instances.
import { eq } from 'drizzle-orm';
import { Value } from '@sinclair/typebox/value';
import type { Catalog } from '../catalog/load.js';
import type { Db } from '../db/connection.js';
import { servers, type Server, type ServerEnergy } from '../db/schema.js';
import { fail } from '../errors.js';
import { namedKid, verifyDocument } from '../federation/jws.js';
import type { Logger } from '../log.js';
import type { ContainerUsage } from '../metering/cgroup.js';
import type { IdlePolicy } from '../metering/energy-model.js';
import { DEFAULT_SERVER_ENERGY, readExternalMeter } from '../metering/power.js';
import type { RaplDomain } from '../metering/rapl.js';
import { splitPass, type PowerReading, type ServerState } from '../metering/split-pass.js';
import { recordPass } from '../metering/store.js';
import { LABEL_INSTANCE, LABEL_SERVICE, type Unit } from '../orchestrator/docker/index.js';
import { agentNodes, type AgentNode } from './schema.js';
import { nextIsolation } from './isolation.js';
import { MAX_AGE_MS, MAX_AHEAD_MS, SamplePayload } from './protocol.js';

export interface IngestDeps {
  db: Db;
  catalog: Catalog;
  idlePolicy: IdlePolicy;
  log: Logger;
  /** Where a node's power now goes (the collector's live figures: dashboards, /metrics, the stream). */
  publish?: (r: PowerReading) => void;
  /** Told when a sample shows an instance task running without no-new-privileges (after the check is recorded):
   * the manager takes the node's `cattery.no-new-privileges` label away, so that Swarm places nothing more there. */
  onIsolationFailed?: (server: Server, missing: string[]) => Promise<void>;
}

export interface CheckedSample { node: AgentNode; server: Server; payload: SamplePayload }

/** The previous sample of each server, in memory: after a restart of the manager, a node's first sample only sets
 * its baseline, as the local loop's first pass does. */
interface Previous { run: string; state: ServerState; rapl: RaplDomain[]; at: number }

/** How much longer than the wall-clock time between two samples a node's own clock may say passed. */
const INTERVAL_SLACK_S = 1;

export interface AgentIngest {
  /** Everything but the recording: throws a typed error (AGENT_SIGNATURE, AGENT_UNKNOWN, AGENT_CLOCK, AGENT_REPLAY,
   * VALIDATION) for a sample that is refused. */
  check(jws: string, now?: Date): Promise<CheckedSample>;
  /** Record a checked sample; the sequence is checked again in the same transaction (two copies sent at once: one
   * is recorded, the other refused as a replay). Returns the power now, or undefined for a baseline. */
  record(s: CheckedSample): Promise<PowerReading | undefined>;
}

function usageOf(c: SamplePayload['containers'][number]): ContainerUsage {
  return { cpuNs: c.cpuNs, memoryBytes: c.memoryBytes, netRxBytes: c.netRxBytes, netTxBytes: c.netTxBytes, blkReadBytes: c.blkReadBytes, blkWriteBytes: c.blkWriteBytes };
}

export function createAgentIngest(deps: IngestDeps): AgentIngest {
  const { db, log } = deps;
  const previous = new Map<number, Previous>();
  const nodeByKid = db.$client.prepare('SELECT server_id FROM agent_nodes WHERE kid = ?');
  const instanceRow = db.$client.prepare('SELECT i.server_id AS serverId, s.swarm_role AS swarmRole FROM instances i JOIN servers s ON s.id = i.server_id WHERE i.slug = ? AND i.service = ? LIMIT 1');
  /** Whether a node may credit this instance: one of its own server's, or, on Swarm, a stateless one (Swarm runs
   * it on whichever node it chooses). A node never credits a stateful instance of another server, nor anything of a
   * server outside the swarm (an outside review of issue 15: any node could charge energy to any resident). */
  const mayCredit = (server: Server, slug: string, service: string): boolean => {
    const row = instanceRow.get(slug, service) as { serverId: number; swarmRole: string | null } | undefined;
    if (!row) return false;
    if (row.serverId === server.id) return true;
    const stateless = (deps.catalog.services.get(service)?.manifest.volumes.length ?? 1) === 0;
    return stateless && !!server.swarmRole && !!row.swarmRole;
  };

  async function check(jws: string, now = new Date()): Promise<CheckedSample> {
    // The key is found by the kid the header names, then the signature checked against the key pinned under it: a
    // header naming a kid nobody enrolled is an unknown node, whatever else it says.
    const kid = namedKid(jws);
    const row = kid ? (nodeByKid.get(kid) as { server_id: number } | undefined) : undefined;
    if (!row) throw fail('CATTERY_ERR_AGENT_UNKNOWN', 'no server has this key pinned: enrol the node first');
    const node = db.select().from(agentNodes).where(eq(agentNodes.serverId, row.server_id)).get()!;
    const v = await verifyDocument(jws, 'agentSample', node.jwk)
      .catch((err: unknown) => { throw fail('CATTERY_ERR_AGENT_SIGNATURE', 'the sample does not verify against the key pinned for its server', err); });
    if (!Value.Check(SamplePayload, v.payload)) throw fail('CATTERY_ERR_VALIDATION', 'the sample is not one this manager reads');
    const payload = v.payload;
    if (payload.server !== node.serverId) throw fail('CATTERY_ERR_AGENT_UNKNOWN', 'the sample names another server than the one its key is pinned to');
    const skew = now.getTime() - payload.at;
    if (skew > MAX_AGE_MS) throw fail('CATTERY_ERR_AGENT_CLOCK', `the sample is ${Math.round(skew / 1000)} s old`);
    if (skew < -MAX_AHEAD_MS) throw fail('CATTERY_ERR_AGENT_CLOCK', `the sample is ${Math.round(-skew / 1000)} s ahead of the manager`);
    if (payload.seq <= node.lastSeq) throw fail('CATTERY_ERR_AGENT_REPLAY', `sequence ${payload.seq} is not after ${node.lastSeq}`);
    const server = db.select().from(servers).where(eq(servers.id, node.serverId)).get()!;
    return { node, server, payload };
  }

  async function record({ node, server, payload: p }: CheckedSample): Promise<PowerReading | undefined> {
    const energy: ServerEnergy = server.energy ?? DEFAULT_SERVER_ENERGY;
    const rapl: RaplDomain[] = (p.rapl ?? []).map((d, i) => ({ name: `node:${i}`, file: '', maxUj: d.maxUj }));
    const raplNow = energy.meter?.kind === 'rapl' && rapl.length ? (p.rapl ?? []).map((d) => d.uj) : undefined;
    // An external meter (a smart plug, a PDU) is the manager's to read, as for the local server: it is configured here.
    let meterW: number | undefined;
    if (energy.meter && energy.meter.kind !== 'rapl') {
      try { meterW = await readExternalMeter(energy.meter); } catch (err) { log.warn({ err, server: server.name }, 'power meter unreadable; the power curve stands in'); }
    }
    // Only containers of instances this node may run are credited; anything else it lists stays in "other".
    const listed = p.containers.filter((c) => mayCredit(server, c.slug, c.service));
    const isolation = nextIsolation(server.isolation ?? null, listed, new Date(p.at));
    const usage = new Map(listed.map((c) => [c.id, usageOf(c)]));
    const containers: Unit[] = listed.map((c) => ({ id: c.id, names: [], running: true, labels: { [LABEL_INSTANCE]: c.slug, [LABEL_SERVICE]: c.service } }));
    const state: ServerState = {
      atNs: BigInt(p.mono), usage, host: p.host, ...(raplNow ? { rapl: raplNow } : {}), ...(meterW !== undefined ? { meterW } : {}),
    };
    const prev = previous.get(server.id);
    const at = new Date(p.at);
    // The node's monotonic clock says how long the pass was, bounded by the wall-clock time between the two samples
    // (checked against the manager's clock in `check`): a node claiming an hour between samples 10 s apart would
    // multiply its energy by 360.
    // The node's own `at` is its word too, anywhere within the manager's tolerance (60 s behind to 15 s ahead): it must
    // also only go forward (a sample whose `at` does not sets a new baseline, counted for nothing), so that over any
    // run of samples the passes add up to the manager's elapsed time plus that tolerance once, never more.
    const monoSeconds = prev && prev.run === p.run && p.at > prev.at ? Number(state.atNs - prev.state.atNs) / 1e9 : 0;
    const seconds = prev ? Math.min(monoSeconds, Math.max(0, (p.at - prev.at) / 1000) + INTERVAL_SLACK_S) : 0;
    const split = prev && seconds > 0 ? splitPass({
      server, energy, seconds, at, containers, usage, prev: prev.state, rapl, catalog: deps.catalog, idlePolicy: deps.idlePolicy,
      host: p.host, hostMem: p.mem, ...(raplNow ? { raplNow } : {}), ...(meterW !== undefined ? { meterW } : {}),
    }) : undefined;
    // Synchronous: the replay check, the sequence and the lines in one transaction.
    db.$client.transaction(() => {
      const latest = db.select({ lastSeq: agentNodes.lastSeq, kid: agentNodes.kid }).from(agentNodes).where(eq(agentNodes.serverId, server.id)).get();
      if (!latest || latest.kid !== node.kid) throw fail('CATTERY_ERR_AGENT_UNKNOWN', 'the node was enrolled again or forgotten meanwhile');
      if (p.seq <= latest.lastSeq) throw fail('CATTERY_ERR_AGENT_REPLAY', `sequence ${p.seq} is not after ${latest.lastSeq}`);
      db.update(agentNodes).set({ lastSeq: p.seq, lastSampleAt: at.toISOString() }).where(eq(agentNodes.serverId, server.id)).run();
      if (isolation !== (server.isolation ?? null)) db.update(servers).set({ isolation }).where(eq(servers.id, server.id)).run();
      if (split) recordPass(db, server.id, at, split.lines);
    })();
    // The latest `at` seen stays the mark (a sample going back in time does not lower it for the next one).
    previous.set(server.id, { run: p.run, state, rapl, at: prev && prev.run === p.run ? Math.max(prev.at, p.at) : p.at });
    if (isolation?.noNewPrivs === 'failed') {
      log.warn({ server: server.name, missing: isolation.missing }, 'an instance task runs without no-new-privileges on this server: placement keeps away from it');
      // Not awaited: the node's answer does not wait on the manager's engine (the next failed sample tries again).
      void deps.onIsolationFailed?.(server, isolation.missing).catch((err: unknown) => log.error({ err, server: server.name }, 'the node\'s no-new-privileges label could not be taken away'));
    }
    if (split) deps.publish?.(split.reading);
    return split?.reading;
  }

  return { check, record };
}
