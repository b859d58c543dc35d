#!/bin/sh
# Configure Postfix, Dovecot and the mail-authentication milters for virtual mailboxes under /var/mail, then run them.
# Authentication only ever happens inside TLS (submission 587 after STARTTLS or 465 in TLS, IMAP 143 after STARTTLS
# or 993 in TLS); port 25 receives mail for this domain's mailboxes and offers no authentication at all.
set -eu
. /usr/local/lib/cattery-mail.sh
if ! domain=$(mail_domain); then
  echo "cattery mail: MAIL_DOMAIN is missing or not a domain name (lowercase, e.g. asso.example); refusing to start" >&2
  exit 64
fi
if ! resolver=$(mail_resolver); then
  echo "cattery mail: MAIL_DNS_RESOLVER is neither \"docker\" nor an IPv4 address; refusing to start" >&2
  exit 64
fi
# SPF, DKIM and DMARC are DNS lookups: with MAIL_DNS_RESOLVER every daemon asks that server only. Docker mounts
# /etc/resolv.conf as a file, so it is written in place.
if [ -n "$resolver" ]; then
  printf 'nameserver %s\n' "$resolver" > /etc/resolv.conf
fi
# Postfix's chrooted processes (smtp, the SMTP client for outgoing mail) read these files inside the chroot; Debian
# copies them only from its init script, which a container does not run, so outgoing mail could not resolve MX.
mkdir -p /var/spool/postfix/etc
for f in resolv.conf hosts services nsswitch.conf host.conf localtime; do
  if [ -e "/etc/$f" ]; then cp -L "/etc/$f" "/var/spool/postfix/etc/$f.new" && mv "/var/spool/postfix/etc/$f.new" "/var/spool/postfix/etc/$f"; fi
done

mkdir -p "$state" /var/mail/vhosts
touch "$state/passwd"
chgrp dovecot "$state/passwd" && chmod 0640 "$state/passwd"
# 0751: Dovecot's group reads the passwd file; others (opendkim, for its own key folder) may only pass through, never
# list. Every file here has its own restrictive mode.
chmod 0751 "$state" && chgrp dovecot "$state"
chown -R mail:mail /var/mail/vhosts
# Rebuilt from the passwd file at every start: a volume made by an older image gets the sender map too.
regen_maps

# This instance's own key and self-signed certificate, made at first start into the state volume and kept across
# restarts (clients that trusted it keep trusting it). Made again only when missing, expiring within a day, or not
# for this domain. The image carries no key at all (Dockerfile removes Debian's snakeoil). A certificate installed
# by `cattery-mail-admin tls-install` (the front door's, for whatever name it was issued) is kept as long as it is
# valid and matches its key; then the instance falls back to a self-made one.
pub_of_cert() { openssl x509 -in "$1" -noout -pubkey 2>/dev/null | openssl pkey -pubin -outform DER 2>/dev/null | sha256sum; }
pub_of_key() { openssl pkey -in "$1" -pubout -outform DER 2>/dev/null | sha256sum; }
tls_usable() {
  [ -s "$tls/key.pem" ] && [ -s "$tls/cert.pem" ] || return 1
  [ "$(pub_of_cert "$tls/cert.pem")" = "$(pub_of_key "$tls/key.pem")" ] || return 1
  if [ "$(cat "$tls/source" 2>/dev/null || true)" = installed ]; then
    openssl x509 -in "$tls/cert.pem" -noout -checkend 0 >/dev/null 2>&1
    return
  fi
  openssl x509 -in "$tls/cert.pem" -noout -checkend 86400 >/dev/null 2>&1 || return 1
  openssl x509 -in "$tls/cert.pem" -noout -checkhost "mail.$domain" 2>/dev/null | grep -q ' does match'
}
if ! tls_usable; then
  mkdir -p "$tls" && chmod 0700 "$tls"
  rm -f "$tls/source"
  # RSA for the widest client support; 825 days is the longest validity mainstream clients accept for a leaf.
  openssl req -x509 -newkey rsa:3072 -nodes -sha256 -days 825 -subj "/CN=mail.$domain" \
    -addext "subjectAltName=DNS:mail.$domain,DNS:$domain" -addext "basicConstraints=critical,CA:FALSE" \
    -keyout "$tls/key.new" -out "$tls/cert.new" 2>/dev/null
  chmod 0600 "$tls/key.new" && chmod 0644 "$tls/cert.new"
  mv "$tls/key.new" "$tls/key.pem" && mv "$tls/cert.new" "$tls/cert.pem"
fi
chmod 0700 "$tls" && chmod 0600 "$tls/key.pem"
# Postfix reads key and chain from one file (smtpd_tls_chain_files), which tls-install replaces in one rename.
cat "$tls/key.pem" "$tls/cert.pem" > "$tls/chain.new" && chmod 0600 "$tls/chain.new" && mv "$tls/chain.new" "$tls/chain.pem"

# DKIM: the domain's signing key (made at first start) and OpenDKIM's configuration.
/usr/local/bin/cattery-mail-admin dkim-init

# OpenDMARC (RFC 7489) on port 25 only. It does its own SPF check (RFC 7208) and ignores every SPF result written in
# the message; it trusts only Authentication-Results from this host's OpenDKIM, and Postfix removes any that arrive
# with the message (header_checks, below) before the milters read it. A failing message is refused when the
# From domain publishes p=reject (550 5.7.1); with p=quarantine it is accepted with "dmarc=fail (p=quarantine ...)"
# in its Authentication-Results, which Dovecot's Sieve files into Junk (below). A DNS error in the lookup defers the
# message (4xx) instead of letting it through unchecked. A message whose header is not what RFC 5322 section 3.6 asks
# (exactly one From: and one Date:) or whose From: names several domains is refused: OpenDMARC would judge only one
# of the From: addresses, and a reader's program may show the other (the known way around DMARC). Postfix first adds
# what a sloppy sender left out (always_add_missing_headers, above: Date: of arrival, From: the envelope sender that
# SPF judged), as it does for local mail, so that only a header that says two things is refused.
cat > /etc/opendmarc.conf <<CONF
Syslog false
UserID opendmarc
UMask 0002
Socket inet:8893@127.0.0.1
PidFile /run/opendmarc/opendmarc.pid
AuthservID mail.$domain
TrustedAuthservIDs mail.$domain
RejectFailures true
HoldQuarantinedMessages false
SPFSelfValidate true
SPFIgnoreResults true
IgnoreAuthenticatedClients true
RequiredHeaders true
RejectMultiValueFrom true
FailureReports false
PublicSuffixList /usr/share/publicsuffix/public_suffix_list.dat
CONF

# Postfix, main.cf: what every smtpd does, i.e. port 25 (receiving from anywhere for this domain's mailboxes).
# Postfix and Dovecot read the key as root before dropping privileges, so it stays readable by root alone.
# myorigin: Postfix's own mail (bounces and delay notices from MAILER-DAEMON, what a local program sends without a
# domain) is from @$domain, not from @mail.$domain (the default, $myhostname): the DMARC record cattery publishes asks
# for strict alignment (adkim=s, src/ingress/dns-records.ts), which d=$domain passes only for a From: in $domain
# itself (RFC 7489 section 3.1.1). A bounce from the subdomain failed DMARC at other servers and went to their spam.
postconf -e \
  "myhostname=mail.$domain" "mydomain=$domain" "myorigin=$domain" "mydestination=localhost" "inet_protocols=ipv4" \
  "maillog_file=/dev/stdout" "disable_vrfy_command=yes" \
  "virtual_mailbox_domains=$domain" "virtual_transport=lmtp:unix:private/dovecot-lmtp" \
  "virtual_mailbox_maps=texthash:$state/vmailbox" \
  "smtpd_sender_login_maps=texthash:$state/senders" \
  "smtpd_tls_chain_files=$tls/chain.pem" \
  "smtpd_tls_security_level=may" "smtpd_tls_mandatory_protocols=>=TLSv1.2" "smtpd_tls_protocols=>=TLSv1.2" \
  "smtpd_tls_received_header=yes" \
  "smtp_tls_security_level=may" "smtp_tls_mandatory_protocols=>=TLSv1.2" "smtp_tls_protocols=>=TLSv1.2" \
  "smtp_tls_CAfile=/etc/ssl/certs/ca-certificates.crt" "smtp_tls_loglevel=1" \
  "smtpd_sasl_type=dovecot" "smtpd_sasl_path=private/auth" \
  "smtpd_sasl_auth_enable=no" "smtpd_tls_auth_only=yes" \
  "smtpd_relay_restrictions=reject_unauth_destination" \
  "smtpd_recipient_restrictions=reject_unauth_destination, check_policy_service unix:private/policyd-spf" \
  "policyd-spf_time_limit=3600" \
  "smtpd_milters=inet:127.0.0.1:8891, inet:127.0.0.1:8893" "non_smtpd_milters=inet:127.0.0.1:8891" \
  "milter_default_action=tempfail" "milter_protocol=6" "internal_mail_filter_classes=bounce,notify" \
  "header_checks=regexp:/etc/postfix/cattery-header-checks" "always_add_missing_headers=yes" \
  "smtpd_sender_restrictions=reject_non_fqdn_sender, check_sender_access texthash:/etc/postfix/cattery-own-domains, check_sender_access regexp:/etc/postfix/cattery-literal-senders"
# chain.pem replaces Debian's separate certificate and key settings (they named the snakeoil pair).
postconf -X smtpd_tls_cert_file smtpd_tls_key_file
# Opportunistic TLS both ways on port 25 (RFC 3207: "may", never required of other servers), TLS 1.2 at least
# (RFC 8996 deprecates 1.0 and 1.1). The certificate comes from chain.pem (above). Milters: OpenDKIM then OpenDMARC
# (which reads OpenDKIM's result); when one does not answer, mail waits (tempfail) rather than going out unsigned or
# coming in unchecked. Postfix's own bounces and notices are signed too (internal_mail_filter_classes). The SPF
# policy server refuses at RCPT a sender whose domain's SPF says "-all" for this client (policyd-spf's default,
# HELO_reject and Mail_From_reject = Fail), and adds a Received-SPF header otherwise.
# The last line of smtpd_sender_restrictions: nobody on port 25 sends as one of our addresses. Port 25 has no SASL
# (no AUTH there, on purpose), so no client on it is ever logged in, and a login-based check (reject_unauthenticated_sender_login_mismatch) would
# be ignored by Postfix ("no SASL support"): instead, an envelope sender in this domain or any of its subdomains
# (mail.$domain is Postfix's own name), at localhost, at an address literal (this server's own address is one), or
# without a fully qualified domain (Postfix would complete it with its own name) is refused. Residents send through
# 587, logged in. Postfix looks the sender up as it resolves it: case, a trailing dot, quotes, a source route, a
# bang path or a percent hack aimed at one of our own destinations all end up as one of our addresses and are
# refused. The null sender <> (bounces from other servers) matches none of these and is still accepted.
m='REJECT 5.7.1 mail from this domain is sent through submission (port 587), logged in'
printf '%s %s\n' "$domain" "$m" ".$domain" "$m" localhost "$m" .localhost "$m" > /etc/postfix/cattery-own-domains
printf '%s\n' '/@\[[^@"]*\]$/ REJECT 5.7.1 no address literal as the sender (this server has one)' > /etc/postfix/cattery-literal-senders
# Postfix looks "<>" up for the null sender (smtpd_null_access_lookup_key): submission refuses it (below).
printf '%s\n' '<> REJECT 5.7.1 a logged-in client sends as its own address, never with the null sender' \
  > /etc/postfix/cattery-null-sender
# Authentication-Results written by anyone else are removed (RFC 8601 section 5: a receiver removes those that claim
# to be its own, and we are the last hop for our mailboxes): a forged "dkim=pass" must not reach OpenDMARC or a
# resident's mail program. Postfix applies header_checks as the message comes in, before the milters read it, and
# never to the headers the milters add.
printf '%s\n' '/^Authentication-Results:/ IGNORE' > /etc/postfix/cattery-header-checks

# Sieve before each delivery: what OpenDMARC accepted although it failed DMARC for a domain that asks for quarantine
# (RFC 7489 section 6.3, p=quarantine: "treat as suspicious"; also p=reject when its pct= sampling let it through,
# section 6.6.4) goes to the Junk folder, made when needed. OpenDMARC writes "dmarc=fail (p=<policy> dis=none)" for
# those: it leaves the quarantine itself to the delivery (HoldQuarantinedMessages false, above).
mkdir -p /etc/dovecot/sieve
cat > /etc/dovecot/sieve/cattery-dmarc.sieve <<SIEVE
require ["fileinto", "mailbox"];
if anyof (header :matches "Authentication-Results" "mail.$domain;*dmarc=fail (p=quarantine*",
          header :matches "Authentication-Results" "mail.$domain;*dmarc=fail (p=reject*") {
  fileinto :create "Junk";
  stop;
}
SIEVE
sievec /etc/dovecot/sieve/cattery-dmarc.sieve

# Postfix, master.cf: submission (587) overrides main.cf. TLS first, then AUTH, then only authenticated clients,
# each sending only as the address its login owns (smtpd_sender_login_maps above), and never with the null sender
# (reject_sender_login_mismatch lets <> through: the map above refuses it first). Commas, not spaces, inside a value.
# The header From: is bound to the login too, by cattery-from-check (from-check.py), a milter run before OpenDKIM:
# Postfix alone cannot compare a header with the login, and OpenDKIM would sign a From: of any address of the domain.
submission_opts='
  smtpd_tls_security_level=encrypt
  smtpd_tls_auth_only=yes
  smtpd_sasl_auth_enable=yes
  smtpd_client_restrictions=permit_sasl_authenticated,reject
  smtpd_sender_restrictions=check_sender_access,texthash:/etc/postfix/cattery-null-sender,reject_sender_login_mismatch,permit_sasl_authenticated,reject
  smtpd_relay_restrictions=permit_sasl_authenticated,reject
  smtpd_recipient_restrictions=permit_sasl_authenticated,reject
  milter_macro_daemon_name=ORIGINATING
  smtpd_milters=inet:127.0.0.1:8894,inet:127.0.0.1:8891'
# The same service on 465 with TLS from the first byte (RFC 8314 section 3.3: implicit TLS for submission). Both are
# named ORIGINATING for OpenDKIM, which signs what they take (its "MTA" setting), and run OpenDKIM only.
args=''
for o in $submission_opts; do args="$args -o $o"; done
postconf -M "submission/inet=submission inet n - y - - smtpd -o syslog_name=postfix/submission$args"
postconf -M "submissions/inet=submissions inet n - y - - smtpd -o syslog_name=postfix/submissions -o smtpd_tls_wrappermode=yes$args"
# The instance's own programs' door (Pigeonhole's redirects and auto-replies, above): on the container's loopback
# only, where nothing from outside arrives; it relays for 127.0.0.1 alone, signs with OpenDKIM (InternalHosts) and,
# unlike port 25, takes this domain's own addresses as senders: a redirect goes out from the old address.
postconf -M "127.0.0.1:10025/inet=127.0.0.1:10025 inet n - n - - smtpd -o syslog_name=postfix/internal -o mynetworks=127.0.0.0/8 -o smtpd_client_restrictions=permit_mynetworks,reject -o smtpd_helo_restrictions= -o smtpd_sender_restrictions= -o smtpd_relay_restrictions=permit_mynetworks,reject -o smtpd_recipient_restrictions=permit_mynetworks,reject -o smtpd_milters=inet:127.0.0.1:8891 -o smtpd_sasl_auth_enable=no -o smtpd_tls_security_level=none"
# Debian's SPF policy server, one process per port-25 session that asks; a few at once (each is a Python process of
# about 20 MB; smtpd waits for a free one) so that a burst of connections stays within the memory limit.
postconf -M "policyd-spf/unix=policyd-spf unix - n n - 4 spawn user=policyd-spf argv=/usr/bin/policyd-spf"

cat > /etc/dovecot/local.conf <<CONF
protocols = imap lmtp
# No login before TLS: 143 offers STARTTLS and announces LOGINDISABLED until it is used; 993 is TLS from the first
# byte (RFC 8314 section 3.2), Dovecot's imaps listener as Debian configures it.
ssl = required
ssl_cert = <$tls/cert.pem
ssl_key = <$tls/key.pem
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = yes
auth_mechanisms = plain login
mail_location = maildir:/var/mail/vhosts/%d/%n
mail_plugins = \$mail_plugins quota
# The login is the full address, matched against the passwd file's first field as a whole.
passdb {
  driver = passwd-file
  args = scheme=SHA512-CRYPT $state/passwd
}
userdb {
  driver = passwd-file
  args = $state/passwd
  default_fields = uid=mail gid=mail home=/var/mail/vhosts/%d/%n
}
plugin {
  quota = maildir:User quota
}
protocol imap {
  mail_plugins = \$mail_plugins imap_quota
}
protocol lmtp {
  mail_plugins = \$mail_plugins sieve
}
# The only personal script an account has is the forward of a resident who moved away (forward.sh): no other
# script, no ManageSieve. A redirect goes out with the old address as its envelope sender (the null sender stays
# null: Pigeonhole never gives a bounce a sender), so the new hoster checks SPF against this server, which sent it.
# Pigeonhole sends both (the redirect and the vacation reply) by SMTP to a listener of Postfix on the container's own
# loopback (below), not through sendmail: postdrop's setgid does not apply under no-new-privileges, so its maildrop
# cannot be written. Its log goes to the account's home: the forward folder is not Dovecot's to write.
plugin {
  sieve_before = /etc/dovecot/sieve/cattery-dmarc.sieve
  sieve = file:$state/forward/%u.sieve
  sieve_user_log = ~/.dovecot.sieve.log
  sieve_redirect_envelope_from = recipient
}
submission_host = 127.0.0.1:10025
lmtp_rcpt_check_quota = yes
# Mailboxes belong to Debian's "mail" user (uid 8), below Dovecot's default first_valid_uid of 500.
first_valid_uid = 8
last_valid_uid = 8
service auth {
  unix_listener /var/spool/postfix/private/auth {
    mode = 0660
    user = postfix
    group = postfix
  }
}
service lmtp {
  unix_listener /var/spool/postfix/private/dovecot-lmtp {
    mode = 0600
    user = postfix
    group = postfix
  }
}
log_path = /dev/stderr
# A reload (a new certificate, tls-install) keeps open sessions: Dovecot would otherwise end the processes of the old
# configuration, login processes holding TLS connections included, a few seconds after it.
shutdown_clients = no
CONF
# The milters first: Postfix defers mail while they are not there (milter_default_action above).
mkdir -p /run/opendkim /run/opendmarc
chown opendkim:opendkim /run/opendkim && chown opendmarc:opendmarc /run/opendmarc
rm -f /run/opendkim/opendkim.pid /run/opendmarc/opendmarc.pid
opendkim -x /etc/opendkim.conf
opendmarc -c /etc/opendmarc.conf
# The From: check as nobody (it reads headers, nothing else), its pid where the health check looks.
mkdir -p /run/cattery-from-check && chown nobody:nogroup /run/cattery-from-check
setpriv --reuid=nobody --regid=nogroup --clear-groups --no-new-privs \
  sh -c 'echo $$ > /run/cattery-from-check/pid && exec /usr/local/bin/cattery-from-check' &
dovecot
exec postfix start-fg
