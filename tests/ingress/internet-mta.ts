// "The rest of the Internet" for the mail tests: an independent mail server with a domain of its own, in a container
// beside the mail instance. Exim (Debian's exim4-daemon-heavy), not Postfix: another SMTP implementation, another TLS
// library (GnuTLS, where ours is OpenSSL), and its own DKIM verifier (Exim's built-in one) and SPF checker (libspf2),
// none of which cattery's mail image uses (OpenDKIM, policyd-spf). Exim has no DMARC of its own in Debian's build,
// so its data ACL hands its own DKIM and SPF verdicts to Mail::DMARC (Debian's libmail-dmarc-perl, a complete RFC 7489
// implementation in Perl: policy discovery, organizational domain, alignment, pct) through Exim's embedded Perl,
// and applies the disposition: refused at DATA for "reject", filed in Junk for "quarantine". What it concludes is
// written where a receiver writes it, Authentication-Results (RFC 8601), and the Received header says whether the
// hop was TLS.
import crypto from 'node:crypto';
import type { Test } from 'tap';
import { pino } from 'pino';
import { execIn, waitFor } from '../helpers.js';
import { startBeside, testImage, type Beside } from '../services/beside.js';
import { smtpSession } from '../services/smtp-client.js';
import type { TestCa } from '../services/test-ca.js';
import { rdataText } from '../../src/ingress/dns-records.js';
import { connectEngine } from '../../src/orchestrator/docker/engine.js';
import { execWithInput } from '../../src/orchestrator/docker/exec.js';

export const EXIM_DOCKERFILE = [
  'ARG BASE',
  'FROM ${BASE}',
  'RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends exim4-daemon-heavy libmail-dmarc-perl ca-certificates && rm -rf /var/lib/apt/lists/*',
  '',
].join('\n');

const DIR = '/etc/exim4/elsewhere';
const SELECTOR = 's1';

/** Exim's whole configuration (no Debian split config): receive for `domain`'s mailboxes, send anywhere else. */
function eximConf(domain: string, host: string): string {
  return `# Written by the test (tests/ingress/internet-mta.ts).
primary_hostname = ${host}
domainlist local_domains = ${domain}
qualify_domain = ${domain}
never_users = root
keep_environment =
# No reverse lookup of clients, no ident: nothing depends on them here.
host_lookup =
rfc1413_hosts =
daemon_smtp_ports = 25
tls_advertise_hosts = *
tls_certificate = ${DIR}/cert.pem
tls_privatekey = ${DIR}/key.pem
log_selector = +tls_certificate_verified +tls_peerdn +received_recipients +smtp_confirmation
perl_startup = do '${DIR}/dmarc.pl'
perl_at_start = true
acl_smtp_rcpt = acl_rcpt
acl_smtp_dkim = acl_dkim
acl_smtp_data = acl_data

begin acl
acl_rcpt:
  deny    message = relay not permitted
          !domains = +local_domains
  # SPF of the envelope sender (RFC 7208), kept for Authentication-Results and DMARC; an SPF fail alone refuses
  # nothing: DMARC decides (RFC 7489 section 10.1).
  warn    spf = pass : fail : softfail : neutral : none : temperror : permerror
  accept

# Once per signature: the domains (d=) whose signature verified.
acl_dkim:
  warn    condition = \${if eq{$dkim_verify_status}{pass}}
          set acl_m_dkim = $acl_m_dkim $dkim_cur_signer
  accept

acl_data:
  warn    set acl_m_dmarc = \${perl{dmarc}{$sender_host_address}{$sender_address_domain}{$sender_helo_name}{$spf_result}{\${domain:\${address:$h_from:}}}{$acl_m_dkim}}
  deny    condition = \${if eq{\${extract{disposition}{$acl_m_dmarc}}}{reject}}
          message = 5.7.1 DMARC: \${extract{from}{$acl_m_dmarc}} asks that mail failing DMARC be refused
  warn    add_header = :at_start:\${authresults{$primary_hostname}}
  warn    add_header = :at_start:Authentication-Results: $primary_hostname; dmarc=\${extract{result}{$acl_m_dmarc}} (p=\${extract{p}{$acl_m_dmarc}} dis=\${extract{disposition}{$acl_m_dmarc}}) header.from=\${extract{from}{$acl_m_dmarc}}
  accept

begin routers
remote:
  driver = dnslookup
  domains = ! +local_domains
  transport = remote_smtp
  no_more
mailbox:
  driver = accept
  domains = +local_domains
  local_parts = lsearch;${DIR}/mailboxes
  transport = maildir

begin transports
# Outgoing: TLS required and the server's certificate verified against the test's CA for the MX host's name (what
# an MTA-STS "enforce" policy asks of senders, RFC 8461 section 4.2), every message signed for the domain.
remote_smtp:
  driver = smtp
  hosts_require_tls = *
  tls_verify_hosts = *
  tls_verify_certificates = ${DIR}/ca.pem
  tls_verify_cert_hostnames = *
  hosts_try_dane =
  dkim_domain = ${domain}
  dkim_selector = ${SELECTOR}
  dkim_private_key = ${DIR}/dkim.key
  dkim_canon = relaxed

maildir:
  driver = appendfile
  directory = /var/mail/elsewhere/$local_part_data\${if eq{\${extract{disposition}{$acl_m_dmarc}}}{quarantine}{/.Junk}{}}
  maildir_format
  create_directory
  delivery_date_add
  envelope_to_add
  return_path_add
  user = mail
  group = mail
  mode = 0600

begin retry
*   *   F,2m,5s
`;
}

/** Mail::DMARC fed Exim's verdicts; one line of key=value for Exim's ${extract}. */
function dmarcPl(domain: string): string {
  return `use strict;
use warnings;
use Mail::DMARC::PurePerl;

sub dmarc {
  my ($ip, $mfrom, $helo, $spf, $from, $dkim) = @_;
  $from = lc($from // '');
  my $d = Mail::DMARC::PurePerl->new(config_file => '${DIR}/mail-dmarc.ini');
  my $r = eval {
    $d->source_ip($ip) if $ip;
    $d->envelope_to('${domain}');
    $d->header_from($from);
    # RFC 7489 section 4.1: SPF's identity is the envelope sender's domain, or the HELO name for the null sender.
    my ($spf_domain, $scope) = $mfrom ne '' ? ($mfrom, 'mfrom') : ($helo, 'helo');
    $d->envelope_from($spf_domain);
    $d->spf(domain => lc $spf_domain, scope => $scope, result => $spf);
    $d->dkim([ map { { domain => lc $_, selector => '-', result => 'pass' } } grep { !/\\@/ } split ' ', ($dkim // '') ]);
    $d->validate;
  };
  return "result=temperror disposition=none p=none from=$from" if !$r;
  my $p = eval { $r->published->p } // 'none';
  return sprintf('result=%s disposition=%s p=%s from=%s', $r->result, $r->disposition, $p, $from);
}
1;
`;
}

export interface InternetMta extends Beside {
  domain: string;
  host: string;
  /** The zone this domain publishes (RFC 1035 master file, SOA and NS included): MX, A, SPF, DKIM, DMARC p=reject. */
  zone: string;
  /** Port 25 on 127.0.0.1, for mail from "anywhere" (the connection arrives from the network's gateway). */
  smtpPort: number;
  /** A message handed to Exim as its own users' programs do (`exim -t`), delivered at once; Exim's exit code. */
  send(from: string, raw: string): Promise<{ code: number; err: string }>;
  /** The raw messages of `user`'s folder (`INBOX` or `Junk`). */
  mailbox(user: string, folder: 'INBOX' | 'Junk'): Promise<string[]>;
  /** Exim's main log. */
  log(): Promise<string>;
}

export async function startInternetMta(t: Test, o: {
  name: string; network: string; address: string; resolver: string; label: string; domain: string; mailboxes: string[]; ca: TestCa;
}): Promise<InternetMta> {
  const host = `mx.${o.domain}`;
  const image = await testImage('exim', EXIM_DOCKERFILE);
  const leaf = o.ca.issue([host]);
  const dkim = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const txt = (value: string) => rdataText({ type: 'TXT', value });
  const zone = [
    '$TTL 60',
    `${o.domain}. 60 IN SOA ns.invalid. hostmaster.${o.domain}. 1 3600 600 86400 60`,
    `${o.domain}. 60 IN NS ns.invalid.`,
    `${o.domain}. 60 IN MX 10 ${host}.`,
    `${host}. 60 IN A ${o.address}`,
    `${o.domain}. 60 IN TXT ${txt('v=spf1 mx -all')}`,
    `${SELECTOR}._domainkey.${o.domain}. 60 IN TXT ${txt(`v=DKIM1; k=rsa; p=${dkim.publicKey.export({ type: 'spki', format: 'der' }).toString('base64')}`)}`,
    `_dmarc.${o.domain}. 60 IN TXT ${txt('v=DMARC1; p=reject')}`,
    '',
  ].join('\n');
  const beside = await startBeside(t, {
    name: o.name, image, network: o.network, address: o.address, label: o.label, memoryMb: 192, publish: [25],
    files: {
      '/etc/exim4/exim4.conf': eximConf(o.domain, host),
      [`${DIR}/dmarc.pl`]: dmarcPl(o.domain),
      // .test is a top-level name for testing (RFC 6761 section 6.2): Mail::DMARC accepts a domain only under a
      // public suffix, so the test's receiver adds it to Debian's list.
      [`${DIR}/mail-dmarc.ini`]: `[dns]\ntimeout = 5\npublic_suffix_list = ${DIR}/psl.dat\n[report_store]\nauto_save = 0\n`,
      [`${DIR}/mailboxes`]: o.mailboxes.map((m) => `${m}: ${m}`).join('\n') + '\n',
      [`${DIR}/cert.pem`]: leaf.cert,
      [`${DIR}/key.pem`]: leaf.key,
      [`${DIR}/ca.pem`]: o.ca.pem,
      [`${DIR}/dkim.key`]: dkim.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    },
    // Its own resolver, written in place as cattery's mail image does (Docker mounts /etc/resolv.conf as a file).
    // Exim reads its keys as its own user (Debian-exim) once it has dropped root.
    cmd: ['sh', '-c', [
      'set -eu',
      `printf 'nameserver %s\\n' '${o.resolver}' > /etc/resolv.conf`,
      `{ cat /usr/share/publicsuffix/public_suffix_list.dat; echo test; } > ${DIR}/psl.dat`,
      `chown -R root:Debian-exim ${DIR} && chmod 0750 ${DIR} && chmod 0640 ${DIR}/*`,
      'mkdir -p /var/mail/elsewhere && chown mail:mail /var/mail/elsewhere',
      'exec exim -bdf -q5s',
    ].join('\n')],
  });
  const smtpPort = await beside.hostPort(25);
  await waitFor(`${host} answering on 127.0.0.1:${smtpPort}`, async () => {
    const c = await smtpSession(smtpPort, { replyTimeoutMs: 2000 });
    c.close();
    return true;
  }, 60_000, 500);
  const engine = connectEngine('unix:///var/run/docker.sock', { hosterId: o.label, timeoutSeconds: 60, log: pino({ level: 'silent' }) });
  return {
    ...beside, domain: o.domain, host, zone, smtpPort,
    async send(from, raw) {
      const r = await execWithInput(engine, o.name, ['exim', '-odf', '-f', from, '-t'], raw);
      return { code: r.exitCode, err: r.stderr };
    },
    async mailbox(user, folder) {
      const dir = `/var/mail/elsewhere/${user}${folder === 'Junk' ? '/.Junk' : ''}`;
      // One message after another, each followed by a record separator (0x1e) that no header or body holds here.
      const r = await execIn(o.name, ['sh', '-c', 'for f in "$1"/new/* "$1"/cur/*; do [ -f "$f" ] && { cat "$f"; printf "\\036"; }; done; true', 'sh', dir]);
      return r.out.split('\x1e').filter((m) => m.trim() !== '');
    },
    async log() {
      return (await execIn(o.name, ['cat', '/var/log/exim4/mainlog'])).out;
    },
  };
}
