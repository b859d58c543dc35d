// The mail service's certificate is the one the front door obtained for the mail host: Caddy gets and renews it by
// ACME (the name is in `certOnly`, caddy-config.ts); each pass reads it from the door's storage and, when it is not
// the one the mail instance holds, gives it to the instance through `cattery-mail-admin tls-install`, which checks
// it and reloads Postfix and Dovecot without dropping open connections (services/mail/admin.sh).
import crypto from 'node:crypto';
import type { Logger } from '../log.js';
import { containerName, execWithInput, readIngressFile, type Engine } from '../orchestrator/docker/index.js';
import { STORAGE_ROOT } from './caddy-config.js';
import type { HostnameRow } from './store.js';

const TLS_INSTALL = ['/usr/local/bin/cattery-mail-admin', 'tls-install'];
const LIMITS = { timeoutMs: 60_000, maxBytes: 64 * 1024 };
const RECHECK_MS = 10 * 60_000;

/** Where certmagic keeps an ACME issuer's certificates: the directory URL's host and path, `/` made `-`
 * (e.g. acme-v02.api.letsencrypt.org-directory). */
export function issuerFolder(directory: string): string {
  const u = new URL(directory);
  return `${u.host}${u.pathname}`.replace(/\/+$/, '').replace(/[/:]/g, '-').toLowerCase();
}

/** The name whose certificate a mail instance serves: `mail.<its domain>` when it has it, else its first name. */
export function mailCertificateName(names: readonly string[], mailDomain: string | undefined): string | undefined {
  return names.includes(`mail.${mailDomain}`) ? `mail.${mailDomain}` : [...names].sort()[0];
}

export interface CertificateHandOff {
  /** Give each mail instance of this server the door's certificate for its name, if it changed. */
  sync(engine: Engine, rows: readonly HostnameRow[], mailDomainOf: (slug: string) => string | undefined): Promise<void>;
}

export function createCertificateHandOff(opts: { hosterId: string; acmeDirectory: string; log: Logger }): CertificateHandOff {
  // What each instance was last given (by fingerprint): a restart of cattery gives it once more, which is harmless.
  const given = new Map<number, string>();
  // Once an instance has its certificate, the door's storage is read again only every RECHECK_MS: a renewal comes
  // weeks before expiry, and two archive reads per mail instance on every pass would be wasted work.
  const checkedAt = new Map<number, number>();
  const folder = issuerFolder(opts.acmeDirectory);
  return {
    async sync(engine, rows, mailDomainOf) {
      // By instance id, not slug: an instance deleted and made again under the same slug is a new one to give it to.
      const byInstance = new Map<number, { slug: string; names: string[] }>();
      for (const r of rows.filter((x) => x.service === 'mail' && x.desired === 'running')) {
        const entry = byInstance.get(r.instanceId) ?? { slug: r.slug, names: [] };
        entry.names.push(r.hostname);
        byInstance.set(r.instanceId, entry);
      }
      for (const [id, { slug, names }] of byInstance) {
        const name = mailCertificateName(names, mailDomainOf(slug));
        if (!name) continue;
        if (given.has(id) && Date.now() - (checkedAt.get(id) ?? 0) < RECHECK_MS) continue;
        checkedAt.set(id, Date.now());
        const base = `${STORAGE_ROOT}/certificates/${folder}/${name}/${name}`;
        const [cert, key] = await Promise.all([readIngressFile(engine, `${base}.crt`), readIngressFile(engine, `${base}.key`)]);
        if (!cert || !key) continue; // not obtained yet: the next pass looks again
        const fingerprint = crypto.createHash('sha256').update(cert).digest('hex');
        if (given.get(id) === fingerprint) continue;
        const r = await execWithInput(engine, containerName(opts.hosterId, slug), TLS_INSTALL,
          JSON.stringify({ cert: cert.toString('utf8'), key: key.toString('utf8') }), LIMITS, `tls-install in ${slug}`);
        if (r.exitCode !== 0) {
          opts.log.warn({ slug, name, err: r.stderr.slice(0, 300) }, 'the mail instance refused the front door\'s certificate');
          continue;
        }
        given.set(id, fingerprint);
        opts.log.info({ slug, name }, 'mail certificate installed');
      }
    },
  };
}
