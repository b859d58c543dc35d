// Dues reminders: before a period ends (remindDays ahead) and after it has ended. Each is due once per member, kind
// and period end (the table's key), and goes by email when the member has an address and cattery can send mail;
// otherwise it is shown on the member's page and on the mediators' printable list, for members who have no email.
import fs from 'node:fs';
import { and, eq, isNull, sql } from 'drizzle-orm';
import nodemailer from 'nodemailer';
import type { Config } from '../config.js';
import type { Db } from '../db/connection.js';
import { users } from '../db/schema.js';
import type { Logger } from '../log.js';
import { addDays, statusesOn, today } from './dues.js';
import { getSettings } from './settings.js';
import { duesReminders, members } from './schema.js';

export interface Mailer { send(to: string, subject: string, text: string): Promise<void> }

/** Mail through the association's SMTP submission server, its certificate verified (a private CA only by file).
 * `servername`: the name to verify when the URL gives an address (tests reach the server on loopback). */
export function createMailer(mail: NonNullable<Config['mail']>, opts: { servername?: string } = {}): Mailer {
  const transport = nodemailer.createTransport({
    url: mail.smtpUrl,
    requireTLS: true,
    tls: { ...(mail.caFile ? { ca: fs.readFileSync(mail.caFile, 'utf8') } : {}), ...(opts.servername ? { servername: opts.servername } : {}) },
    connectionTimeout: 15_000, greetingTimeout: 15_000, socketTimeout: 30_000,
  } as never);
  return { async send(to, subject, text) { await transport.sendMail({ from: mail.from, to, subject, text }); } };
}

type Kind = 'before' | 'after';

/** Writes the reminders due today (idempotent: one per member, kind and period end). */
export function queueReminders(db: Db, canMail: boolean, on = today()): number {
  const { remindDays } = getSettings(db);
  let queued = 0;
  for (const s of statusesOn(db, on).values()) {
    if (s.until === null && s.status === 'current') continue;
    const until = s.until ?? (s.member.admittedAt ?? on).slice(0, 10);
    let kind: Kind | null = null;
    if (s.status === 'current' && s.until && on >= addDays(s.until, -remindDays)) kind = 'before';
    else if (s.status !== 'current') kind = 'after';
    if (!kind) continue;
    const email = emailOf(db, s.member);
    const channel = canMail && email ? 'email' as const : 'page' as const;
    // A reminder shown on the page only (no address, or no mail server, back then) goes by email once it can.
    const r = db.insert(duesReminders).values({ memberId: s.member.id, kind, periodUntil: until, channel })
      .onConflictDoUpdate({
        target: [duesReminders.memberId, duesReminders.kind, duesReminders.periodUntil], set: { channel },
        setWhere: sql`${duesReminders.channel} = 'page' and ${channel} = 'email'`,
      }).run();
    queued += r.changes;
  }
  return queued;
}

function emailOf(db: Db, m: typeof members.$inferSelect): string | null {
  if (m.email) return m.email;
  if (m.userId === null) return null;
  return db.select({ e: users.email }).from(users).where(eq(users.id, m.userId)).get()?.e ?? null;
}

function langOf(db: Db, m: typeof members.$inferSelect): 'fr' | 'en' {
  if (m.userId === null) return 'fr';
  return db.select({ l: users.lang }).from(users).where(eq(users.id, m.userId)).get()?.l === 'en' ? 'en' : 'fr';
}

/** The reminder in plain words, in the member's language. */
export function reminderText(kind: Kind, lang: 'fr' | 'en', name: string, until: string, graceUntil: string | null, publicUrl: string) {
  if (lang === 'en') {
    return kind === 'before'
      ? { subject: 'Your membership dues', text: `Hello ${name},\n\nYour membership dues cover you until ${until}. You can renew them with the association's treasurer (cash, cheque or transfer).\n\nYour membership page: ${publicUrl}/me/membership\n` }
      : { subject: 'Your membership dues have ended', text: `Hello ${name},\n\nYour membership dues ended on ${until}.${graceUntil ? ` Your services for members stay open until ${graceUntil}; after that date they are suspended (nothing is deleted) until the dues are paid.` : ''}\n\nYour membership page: ${publicUrl}/me/membership\n` };
  }
  return kind === 'before'
    ? { subject: 'Votre cotisation à l’association', text: `Bonjour ${name},\n\nVotre cotisation est à jour jusqu’au ${until}. Vous pouvez la renouveler auprès de la trésorière ou du trésorier de l’association (espèces, chèque ou virement).\n\nVotre page d’adhésion : ${publicUrl}/me/membership\n` }
    : { subject: 'Votre cotisation est arrivée à échéance', text: `Bonjour ${name},\n\nVotre cotisation est arrivée à échéance le ${until}.${graceUntil ? ` Vos services réservés aux membres restent ouverts jusqu’au ${graceUntil} ; après cette date, ils sont suspendus (rien n’est effacé) jusqu’au paiement de la cotisation.` : ''}\n\nVotre page d’adhésion : ${publicUrl}/me/membership\n` };
}

/** Sends the email reminders not sent yet; a failure is kept on the row and tried again next time. */
export async function sendReminders(db: Db, mailer: Mailer, publicUrl: string, log: Logger): Promise<{ sent: number; failed: number }> {
  const due = db.select({ r: duesReminders, m: members }).from(duesReminders).innerJoin(members, eq(members.id, duesReminders.memberId))
    .where(and(eq(duesReminders.channel, 'email'), isNull(duesReminders.sentAt))).all();
  const grace = getSettings(db).graceDays;
  let sent = 0; let failed = 0;
  for (const { r, m } of due) {
    const to = emailOf(db, m);
    const where = and(eq(duesReminders.memberId, r.memberId), eq(duesReminders.kind, r.kind), eq(duesReminders.periodUntil, r.periodUntil));
    if (!to) { db.update(duesReminders).set({ channel: 'page' }).where(where).run(); continue; }
    const msg = reminderText(r.kind as Kind, langOf(db, m), m.representative ?? m.name, r.periodUntil, addDays(r.periodUntil, grace), publicUrl);
    try {
      await mailer.send(to, msg.subject, msg.text);
      db.update(duesReminders).set({ sentAt: new Date().toISOString(), error: null }).where(where).run();
      sent++;
    } catch (err) {
      db.update(duesReminders).set({ error: (err as Error).message.slice(0, 500) }).where(where).run();
      log.warn({ memberId: m.id, err: (err as Error).message }, 'a dues reminder could not be sent');
      failed++;
    }
  }
  return { sent, failed };
}

/** Reminders shown on pages: a member's own, or every one for the mediators' printable list. */
/** Reminders of a period since renewed are left out. */
export function pageReminders(db: Db, memberId?: number, on = today()) {
  const rows = db.select({ r: duesReminders, m: members }).from(duesReminders).innerJoin(members, eq(members.id, duesReminders.memberId))
    .where(and(eq(duesReminders.channel, 'page'), memberId !== undefined ? eq(duesReminders.memberId, memberId) : undefined, eq(members.status, 'admitted'))).all();
  const statuses = statusesOn(db, on, [...new Set(rows.map((x) => x.m.id))]);
  return rows.filter(({ r, m }) => {
    const s = statuses.get(m.id);
    return s !== undefined && !(s.until !== null && s.until > r.periodUntil) && !(s.status === 'current' && s.until === null);
  }).map(({ r, m }) => ({ ...r, name: m.name, representative: m.representative, status: statuses.get(m.id)!.status, graceUntil: statuses.get(m.id)!.graceUntil }));
}
