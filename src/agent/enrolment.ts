// The manager's side of a node joining: an administrator issues a one-time token for a server (API or CLI); the
// node's agent makes its own key, signs an enrolment with it carrying the token, and the manager pins that key to the
// server. The token proves the administrator meant this node to be that server; the signature proves the node holds
// the key it asks to pin. A token is good once, for a short time, and only its hash is stored.
import crypto from 'node:crypto';
import { eq } from 'drizzle-orm';
import { Value } from '@sinclair/typebox/value';
import type { Db } from '../db/connection.js';
import { servers } from '../db/schema.js';
import { fail } from '../errors.js';
import { fingerprintOf, verifyDocument, type PublicJwk } from '../federation/jws.js';
import { agentEnrolments, agentNodes } from './schema.js';
import { EnrolmentPayload, MAX_AGE_MS, MAX_AHEAD_MS } from './protocol.js';

/** A node is usually started within minutes of its token being made; a day covers a join done the next morning. */
export const DEFAULT_TOKEN_HOURS = 24;

const sha256 = (s: string) => crypto.createHash('sha256').update(s).digest('hex');
const refuse = (why: string): never => { throw fail('CATTERY_ERR_AGENT_ENROLMENT', why); };

/** A new one-time token for a server, replacing any open one. Shown once: only its hash is kept. */
export function issueEnrolmentToken(db: Db, serverName: string, hours = DEFAULT_TOKEN_HOURS, now = new Date()): { token: string; server: string; expiresAt: string } {
  if (!(hours > 0 && hours <= 24 * 30)) throw fail('CATTERY_ERR_VALIDATION', 'a token lasts between a moment and 30 days');
  const server = db.select().from(servers).where(eq(servers.name, serverName)).get();
  if (!server) throw fail('CATTERY_ERR_NOT_FOUND', `No server "${serverName}"`);
  const token = `${server.id}.${crypto.randomBytes(32).toString('base64url')}`;
  const expiresAt = new Date(now.getTime() + hours * 3_600_000).toISOString();
  db.insert(agentEnrolments).values({ serverId: server.id, tokenSha256: sha256(token), expiresAt })
    .onConflictDoUpdate({ target: agentEnrolments.serverId, set: { tokenSha256: sha256(token), expiresAt, createdAt: now.toISOString() } }).run();
  return { token, server: server.name, expiresAt };
}

export interface EnrolmentClaim { serverId: number; serverName: string; tokenSha256: string; jwk: PublicJwk; kid: string }

/** Check an enrolment without spending its token: the self-signature, the token's server, time and validity. */
export async function checkEnrolment(db: Db, jws: string, now = new Date()): Promise<EnrolmentClaim> {
  const v = await verifyDocument(jws, 'agentEnrolment').catch((err: unknown) => { throw fail('CATTERY_ERR_AGENT_SIGNATURE', 'the enrolment is not signed by the key it names', err); });
  if (!Value.Check(EnrolmentPayload, v.payload)) throw fail('CATTERY_ERR_VALIDATION', 'the enrolment is not one this manager reads');
  const p = v.payload;
  const age = now.getTime() - p.iat * 1000;
  if (age > MAX_AGE_MS || age < -MAX_AHEAD_MS) throw fail('CATTERY_ERR_AGENT_CLOCK', 'the enrolment was not made just now');
  const serverId = Number(p.token.split('.')[0]);
  const open = db.select().from(agentEnrolments).where(eq(agentEnrolments.serverId, serverId)).get();
  // Same answer for an unknown, a spent and a wrong token: a caller learns nothing about which servers wait.
  const hash = sha256(p.token);
  if (!open || !crypto.timingSafeEqual(Buffer.from(open.tokenSha256), Buffer.from(hash))) refuse('the token is unknown or already used');
  if (Date.parse(open!.expiresAt) <= now.getTime()) refuse('the token has expired: issue a new one');
  const server = db.select().from(servers).where(eq(servers.id, serverId)).get();
  if (!server) refuse('the token is unknown or already used');
  const other = db.select().from(agentNodes).where(eq(agentNodes.kid, v.kid)).get();
  if (other && other.serverId !== serverId) refuse('this key is already enrolled for another server: each node has its own');
  return { serverId, serverName: server!.name, tokenSha256: hash, jwk: v.jwk, kid: v.kid };
}

/** Spend the token and pin the key, in one transaction: of two enrolments with one token, one wins. A new key for a
 * server (a node reinstalled) replaces the old one, whose samples are refused from then on. */
export function completeEnrolment(db: Db, c: EnrolmentClaim): { serverId: number; server: string; kid: string; fingerprint: string } {
  db.transaction((tx) => {
    const spent = tx.delete(agentEnrolments).where(eq(agentEnrolments.tokenSha256, c.tokenSha256)).returning().all();
    if (spent.length !== 1) refuse('the token is unknown or already used');
    tx.insert(agentNodes).values({ serverId: c.serverId, kid: c.kid, jwk: c.jwk, lastSeq: 0, enrolledAt: new Date().toISOString(), lastSampleAt: null })
      .onConflictDoUpdate({ target: agentNodes.serverId, set: { kid: c.kid, jwk: c.jwk, lastSeq: 0, enrolledAt: new Date().toISOString(), lastSampleAt: null } }).run();
  });
  return { serverId: c.serverId, server: c.serverName, kid: c.kid, fingerprint: fingerprintOf(c.kid) };
}

/** Forget a server's agent: its key is unpinned (its samples refused) and the local loop meters the server again. */
export function forgetAgent(db: Db, serverName: string): boolean {
  const server = db.select().from(servers).where(eq(servers.name, serverName)).get();
  if (!server) throw fail('CATTERY_ERR_NOT_FOUND', `No server "${serverName}"`);
  return db.delete(agentNodes).where(eq(agentNodes.serverId, server.id)).run().changes > 0;
}

export interface AgentView { server: string; kid: string | null; fingerprint: string | null; enrolledAt: string | null; lastSampleAt: string | null; enrolmentOpenUntil: string | null }

/** Every server with its agent's state: enrolled (and when it last reported), waiting for one, or neither. */
export function listAgents(db: Db): AgentView[] {
  const nodes = new Map(db.select().from(agentNodes).all().map((n) => [n.serverId, n]));
  const open = new Map(db.select().from(agentEnrolments).all().map((e) => [e.serverId, e]));
  return db.select().from(servers).all().map((s) => {
    const n = nodes.get(s.id);
    return {
      server: s.name, kid: n?.kid ?? null, fingerprint: n ? fingerprintOf(n.kid) : null, enrolledAt: n?.enrolledAt ?? null,
      lastSampleAt: n?.lastSampleAt ?? null, enrolmentOpenUntil: open.get(s.id)?.expiresAt ?? null,
    };
  });
}

/** Whether a server is metered by its own agent (then the manager's local loop leaves it alone). Read each pass: an
 * enrolment or a forget takes effect at the next one. */
export function agentMeteredServers(db: Db): Set<number> {
  return new Set(db.select({ id: agentNodes.serverId }).from(agentNodes).all().map((r) => r.id));
}
