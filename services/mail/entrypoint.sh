#!/bin/sh
# Configure Postfix and Dovecot for virtual mailboxes under /var/mail, then run both in the foreground.
# Authentication only ever happens inside TLS (submission 587 after STARTTLS, IMAP 143 after STARTTLS); port 25
# receives mail for this domain's mailboxes and offers no authentication at all.
set -eu
. /usr/local/lib/cattery-mail.sh
if ! domain=$(mail_domain); then
  echo "cattery mail: MAIL_DOMAIN is missing or not a domain name (lowercase, e.g. asso.example); refusing to start" >&2
  exit 64
fi
tls="$state/tls"

mkdir -p "$state" /var/mail/vhosts
touch "$state/passwd"
chgrp dovecot "$state/passwd" && chmod 0640 "$state/passwd"
chmod 0750 "$state" && chgrp dovecot "$state"
chown -R mail:mail /var/mail/vhosts
# Rebuilt from the passwd file at every start: a volume made by an older image gets the sender map too.
regen_maps

# This instance's own key and self-signed certificate, made at first start into the state volume and kept across
# restarts (clients that trusted it keep trusting it). Made again only when missing, expiring within a day, or not
# for this domain. The image carries no key at all (Dockerfile removes Debian's snakeoil).
tls_usable() {
  [ -s "$tls/key.pem" ] && [ -s "$tls/cert.pem" ] || return 1
  openssl x509 -in "$tls/cert.pem" -noout -checkend 86400 >/dev/null 2>&1 || return 1
  openssl x509 -in "$tls/cert.pem" -noout -checkhost "mail.$domain" 2>/dev/null | grep -q ' does match'
}
if ! tls_usable; then
  mkdir -p "$tls" && chmod 0700 "$tls"
  # RSA for the widest client support; 825 days is the longest validity mainstream clients accept for a leaf.
  openssl req -x509 -newkey rsa:3072 -nodes -sha256 -days 825 -subj "/CN=mail.$domain" \
    -addext "subjectAltName=DNS:mail.$domain,DNS:$domain" -addext "basicConstraints=critical,CA:FALSE" \
    -keyout "$tls/key.new" -out "$tls/cert.new" 2>/dev/null
  chmod 0600 "$tls/key.new" && chmod 0644 "$tls/cert.new"
  mv "$tls/key.new" "$tls/key.pem" && mv "$tls/cert.new" "$tls/cert.pem"
fi
chmod 0700 "$tls" && chmod 0600 "$tls/key.pem"

# Postfix, main.cf: what every smtpd does, i.e. port 25 (receiving from anywhere for this domain's mailboxes).
# Postfix and Dovecot read the key as root before dropping privileges, so it stays readable by root alone.
postconf -e \
  "myhostname=mail.$domain" "mydomain=$domain" "mydestination=localhost" "inet_protocols=ipv4" \
  "maillog_file=/dev/stdout" "disable_vrfy_command=yes" \
  "virtual_mailbox_domains=$domain" "virtual_transport=lmtp:unix:private/dovecot-lmtp" \
  "virtual_mailbox_maps=texthash:$state/vmailbox" \
  "smtpd_sender_login_maps=texthash:$state/senders" \
  "smtpd_tls_cert_file=$tls/cert.pem" "smtpd_tls_key_file=$tls/key.pem" \
  "smtpd_tls_security_level=may" "smtpd_tls_mandatory_protocols=>=TLSv1.2" "smtpd_tls_protocols=>=TLSv1.2" \
  "smtpd_sasl_type=dovecot" "smtpd_sasl_path=private/auth" \
  "smtpd_sasl_auth_enable=no" "smtpd_tls_auth_only=yes" \
  "smtpd_relay_restrictions=reject_unauth_destination" \
  "smtpd_recipient_restrictions=reject_unauth_destination" \
  "smtpd_sender_restrictions=reject_non_fqdn_sender, check_sender_access texthash:/etc/postfix/cattery-own-domains, check_sender_access regexp:/etc/postfix/cattery-literal-senders"
# The last line: nobody on port 25 sends as one of our addresses. Port 25 has no SASL (no AUTH there, on purpose),
# so no client on it is ever logged in, and a login-based check (reject_unauthenticated_sender_login_mismatch) would
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

# Postfix, master.cf: submission (587) overrides main.cf. TLS first, then AUTH, then only authenticated clients,
# each sending only as the address its login owns (smtpd_sender_login_maps above), and never with the null sender
# (reject_sender_login_mismatch lets <> through: the map above refuses it first). Commas, not spaces, inside a value.
# Only the envelope sender is bound to the login here: the header From: is not checked (Postfix cannot compare a
# header with the login or the envelope without a milter).
submission_opts='
  syslog_name=postfix/submission
  smtpd_tls_security_level=encrypt
  smtpd_tls_auth_only=yes
  smtpd_sasl_auth_enable=yes
  smtpd_client_restrictions=permit_sasl_authenticated,reject
  smtpd_sender_restrictions=check_sender_access,texthash:/etc/postfix/cattery-null-sender,reject_sender_login_mismatch,permit_sasl_authenticated,reject
  smtpd_relay_restrictions=permit_sasl_authenticated,reject
  smtpd_recipient_restrictions=permit_sasl_authenticated,reject'
args=''
for o in $submission_opts; do args="$args -o $o"; done
postconf -M "submission/inet=submission inet n - y - - smtpd$args"

cat > /etc/dovecot/local.conf <<CONF
protocols = imap lmtp
# No login before TLS: 143 offers STARTTLS and announces LOGINDISABLED until it is used.
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
CONF
dovecot
exec postfix start-fg
