// What a node's agent and the manager say to each other (docs/energy.md, "The node agent"): an enrolment, signed by
// the node's new key and carrying the one-time token an administrator issued for that server; then samples, signed
// by the key pinned at enrolment. Both are compact JWS (EdDSA, federation/jws.ts) inside a small JSON body. A sample
// carries cumulative counters, never deltas: the manager takes the differences (metering/split-pass.ts), so a sample
// lost on the way loses nothing, its interval is counted by the next one.
import { Type, type Static } from '@sinclair/typebox';
import { SLUG_PATTERN } from '../orchestrator/instances.js';

/** The largest request body the sample route reads (413 past it). A container's line is about 250 bytes of JSON,
 * 340 once in base64url: 500 containers, the most a sample may list, fit with room to spare. */
export const SAMPLE_MAX_BYTES = 256 * 1024;
export const MAX_CONTAINERS = 500;
/** An enrolment is a few hundred bytes. */
export const ENROL_MAX_BYTES = 8 * 1024;

/** A sample's time may be this far behind the manager's clock (a sample in flight, a slow manager) or ahead of it
 * (two clocks kept by NTP are within milliseconds; seconds already mean a node without time sync). An older sample
 * is never needed again: the next one carries the same counters, later. */
export const MAX_AGE_MS = 60_000;
export const MAX_AHEAD_MS = 15_000;

/** `<server id>.<32 random bytes, base64url>`: the server id tells the node which server it is (shown to the
 * administrator beside the token); the random part is the secret. */
export const TOKEN_PATTERN = '^[1-9][0-9]{0,9}\\.[A-Za-z0-9_-]{43}$';

const Count = Type.Number({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
const CompactJws = Type.String({ pattern: '^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$', maxLength: SAMPLE_MAX_BYTES, description: 'a compact JWS (RFC 7515)' });

/** The request body of both routes. */
export const SignedBody = Type.Object({ jws: CompactJws }, { additionalProperties: false });

export const EnrolmentPayload = Type.Object({
  v: Type.Literal(1),
  token: Type.String({ pattern: TOKEN_PATTERN }),
  /** Seconds since the epoch: an enrolment is made and sent at once. */
  iat: Type.Integer({ minimum: 0 }),
}, { additionalProperties: false });
export type EnrolmentPayload = Static<typeof EnrolmentPayload>;

export const ContainerReading = Type.Object({
  /** Docker's container id (64 hex): two containers of one instance (a restart) are told apart by it. */
  id: Type.String({ pattern: '^[0-9a-f]{64}$' }),
  slug: Type.String({ pattern: SLUG_PATTERN }),
  service: Type.String({ pattern: '^[a-z][a-z0-9-]{1,30}$' }),
  cpuNs: Count, memoryBytes: Count, netRxBytes: Count, netTxBytes: Count, blkReadBytes: Count, blkWriteBytes: Count,
  /** The task's NoNewPrivs from the node's /proc/<pid>/status (agent/isolation.ts); absent when unreadable (and from
   * agents before it was sent). */
  noNewPrivs: Type.Optional(Type.Union([Type.Literal(0), Type.Literal(1)])),
}, { additionalProperties: false });

export const SamplePayload = Type.Object({
  v: Type.Literal(1),
  /** The server this node was enrolled as: must be the one its key is pinned to. */
  server: Type.Integer({ minimum: 1 }),
  /** Strictly increasing per server (the manager keeps the highest it accepted): a sample sent again is refused. */
  seq: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }),
  /** When it was read, milliseconds since the epoch (checked against the manager's clock). */
  at: Type.Integer({ minimum: 0 }),
  /** This run of the agent (random, made at its start) and its monotonic clock in nanoseconds, in decimal: the
   * interval between two samples of one run is measured on it, never on the wall clock. */
  run: Type.String({ pattern: '^[0-9a-f]{16}$' }),
  mono: Type.String({ pattern: '^[0-9]{1,20}$' }),
  /** /proc/stat's first line and /proc/meminfo, as metering/cgroup.ts reads them. */
  host: Type.Object({ totalJiffies: Count, idleJiffies: Count }, { additionalProperties: false }),
  mem: Type.Object({ totalBytes: Count, availableBytes: Count }, { additionalProperties: false }),
  /** The node's RAPL package counters (metering/rapl.ts), when it has them. */
  rapl: Type.Optional(Type.Array(Type.Object({ uj: Count, maxUj: Count }, { additionalProperties: false }), { maxItems: 16 })),
  containers: Type.Array(ContainerReading, { maxItems: MAX_CONTAINERS }),
}, { additionalProperties: false });
export type SamplePayload = Static<typeof SamplePayload>;
