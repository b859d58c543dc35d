#!/bin/bash
# cattery's administration commands for a mail instance, run inside its container:
#   cattery-mail-admin dkim-show     the domain's DKIM keys, as JSON on stdout (the records to publish)
#   cattery-mail-admin dkim-rotate   a new key signs from now on; the previous one stays listed, inactive
#   cattery-mail-admin tls-install   a certificate and its key, as JSON on stdin, served from now on
# (and dkim-init, run by the entrypoint at each start). Success: JSON on stdout, exit 0. Failure: one line on
# stderr, nothing on stdout, exit 65 for bad input (EX_DATAERR) and 70 for anything else (EX_SOFTWARE).
# Nothing from the input is ever evaluated or used as a pattern; every expansion is quoted.
set -euo pipefail
umask 077
. /usr/local/lib/cattery-mail.sh

die() { printf 'cattery-mail-admin %s: %s\n' "$op" "$2" >&2; exit "$1"; }
op="${1:-}"
domain=$(mail_domain) || die 70 "MAIL_DOMAIN is missing or not a domain name"
dkim="$state/dkim/$domain"

exec 9>"$state/admin.lock"
flock 9

# ---- DKIM (RFC 6376) ----------------------------------------------------------------------------------------------
# One folder per domain: <selector>.key (the private key, 0600, owned by opendkim, which reads it again when told to
# reload as its own unprivileged user) and "active" (the selector that signs). Selectors are named by the day the key
# was made (c20261202; c20261202-2 for a second key the same day): RFC 6376 section 3.1 leaves the naming to the
# signer, and a date tells an administrator how old the published record is.
SELECTOR_SHAPE='^c[0-9]{8}(-[0-9]{1,3})?$'
is_selector() { [[ "$1" =~ $SELECTOR_SHAPE ]]; }

active_selector() {
  local s=''
  [ -s "$dkim/active" ] && s=$(head -n 1 -- "$dkim/active")
  is_selector "$s" && [ -s "$dkim/$s.key" ] && printf '%s' "$s"
}

# The selectors that have a key, by name: the active one first in dkim-show's list (below).
selectors() {
  local f s
  for f in "$dkim"/*.key; do
    [ -e "$f" ] || continue
    s=${f##*/}; s=${s%.key}
    is_selector "$s" && printf '%s\n' "$s"
  done
}

new_key() {
  local base n=2 s tmp
  base="c$(date -u +%Y%m%d)"
  s="$base"
  while [ -e "$dkim/$s.key" ]; do s="$base-$n"; n=$((n + 1)); done
  is_selector "$s" || die 70 "no free selector for today"
  tmp=$(mktemp "$dkim/new.XXXXXX")
  # RSA 2048: the size RFC 8301 section 3.2 asks signers to use at least; Ed25519 (RFC 8463) is not yet verified by
  # every large receiver, so it would only be a second signature.
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$tmp" 2>/dev/null || { rm -f -- "$tmp"; die 70 "openssl could not make a key"; }
  chown opendkim:opendkim "$tmp" && chmod 0600 "$tmp"
  mv -- "$tmp" "$dkim/$s.key"
  printf '%s\n' "$s" > "$dkim/active.new" && chmod 0640 "$dkim/active.new" && mv -- "$dkim/active.new" "$dkim/active"
  printf '%s' "$s"
}

# OpenDKIM's whole configuration, written again at each start and each rotation. Port 25 verifies; mail is signed
# when it comes from submission (Postfix names those daemons ORIGINATING, master.cf) or from this container itself
# (127.0.0.1: Postfix presents non-SMTP mail and its own bounces to the milter as coming from there).
write_opendkim_conf() {
  local sel="$1" ns tmp
  # libunbound inside OpenDKIM does not read /etc/resolv.conf: it gets the container's resolvers (Docker's, or
  # MAIL_DNS_RESOLVER) by name. No trust anchor: with a forwarder that strips DNSSEC (Docker's embedded DNS) every
  # answer would be bogus; validation belongs to the resolver named there (as Mail-in-a-Box runs its own).
  # libunbound also answers NXDOMAIN by itself for the special-use names of RFC 6761 (.test among them) before
  # asking anyone; the resolver it forwards to decides instead, as it does for OpenDMARC and the SPF policy server
  # (which use libc's resolver), so that the three checks see the same DNS.
  ns=$(awk '$1 == "nameserver" && $2 ~ /^[0-9a-fA-F.:]+$/ { print $2 }' /etc/resolv.conf | paste -sd, -)
  printf '%s\n' 'server:' '  local-zone: "test." nodefault' > /etc/opendkim-unbound.conf
  chmod 0644 /etc/opendkim-unbound.conf
  tmp=$(mktemp /etc/opendkim.conf.XXXXXX)
  {
    echo '# Written by cattery-mail-admin at each start and each rotation; edits here are lost.'
    echo 'Syslog no'
    echo 'UserID opendkim'
    echo 'UMask 007'
    echo 'Socket inet:8891@127.0.0.1'
    echo 'PidFile /run/opendkim/opendkim.pid'
    echo 'Mode sv'
    # relaxed/relaxed survives the whitespace changes of relays and mailing lists (RFC 6376 section 3.4).
    echo 'Canonicalization relaxed/relaxed'
    echo 'SignatureAlgorithm rsa-sha256'
    # A From: added below the signature would otherwise be shown to the reader and still verify.
    echo 'OversignHeaders From'
    echo "Domain $domain"
    # Mail from a subdomain (mail.<domain>, a program's own address) is signed with d=<domain> too. Postfix's own
    # notices are from MAILER-DAEMON@<domain> itself (myorigin, entrypoint.sh): the published DMARC record asks for
    # strict alignment, which a subdomain would not pass (RFC 7489 section 3.1.1).
    echo 'SubDomains yes'
    echo "Selector $sel"
    echo "KeyFile $dkim/$sel.key"
    echo 'MTA ORIGINATING'
    echo 'InternalHosts 127.0.0.1'
    echo "AuthservID mail.$domain"
    # "dkim=none" too on unsigned mail: residents' programs (and tests) see every check that was made.
    echo 'AlwaysAddARHeader yes'
    echo 'ResolverConfiguration /etc/opendkim-unbound.conf'
    [ -n "$ns" ] && echo "Nameservers $ns"
  } > "$tmp"
  chmod 0644 "$tmp"
  mv -- "$tmp" /etc/opendkim.conf
}

dkim_json() {
  local act out
  act=$(active_selector) || die 70 "no active DKIM key (the instance has not started yet?)"
  # Built whole before anything is printed: a key that cannot be read gives an error, never half a list.
  out=$(dkim_list "$act")
  printf '%s\n' "$out"
}

dkim_list() {
  local act="$1" s pub
  { printf '%s\n' "$act"; selectors | awk -v a="$act" '$0 != a'; } | while IFS= read -r s; do
    # The p= value of the DKIM record: the public key as base64 DER SubjectPublicKeyInfo (RFC 6376 section 3.6.1).
    pub=$(openssl pkey -in "$dkim/$s.key" -pubout -outform DER 2>/dev/null | base64 -w 0) || die 70 "unreadable key $s"
    [ -n "$pub" ] || die 70 "unreadable key $s"
    jq -cn --arg s "$s" --arg p "$pub" --argjson a "$([ "$s" = "$act" ] && echo true || echo false)" \
      '{selector:$s,publicKey:$p,active:$a}'
  done | jq -cs --arg d "$domain" '{domain:$d,keys:.}'
}

dkim_prepare() {
  mkdir -p "$dkim"
  # The state folder itself is 0751 (entrypoint.sh): opendkim may pass through it to its own folder only.
  chown root:opendkim "$state/dkim" "$dkim" && chmod 0750 "$state/dkim" "$dkim"
}

# ---- TLS ----------------------------------------------------------------------------------------------------------
tls_install() {
  # $tmp is global: the EXIT trap that removes it runs after this function has returned.
  local input cert key n f i leaf_pub key_pub start now end fp
  # A chain of a few certificates is a few kB: 1 MB is far more than any, and bounds what is read.
  input=$(head -c 1048576)
  cert=$(jq -er '.cert | strings' <<<"$input" 2>/dev/null) || die 65 'input must be JSON {"cert":"<PEM chain>","key":"<PEM key>"}'
  key=$(jq -er '.key | strings' <<<"$input" 2>/dev/null) || die 65 'input must be JSON {"cert":"<PEM chain>","key":"<PEM key>"}'
  mkdir -p "$tls"
  tmp=$(mktemp -d "$tls/install.XXXXXX")
  trap 'rm -rf -- "$tmp"' EXIT
  # Only the certificate blocks of the chain are kept, leaf first as given, each read whole by openssl: a chain with
  # one bad block would make Postfix and Dovecot fail every TLS connection once reloaded.
  printf '%s\n' "$cert" | awk -v dir="$tmp" '
    { sub(/\r$/, "") }
    $0 == "-----BEGIN CERTIFICATE-----" { n++; inside = 1 }
    inside { print > (dir "/block." n) }
    $0 == "-----END CERTIFICATE-----" { inside = 0 }'
  n=0
  for f in "$tmp"/block.*; do [ -e "$f" ] && n=$((n + 1)); done
  [ "$n" -ge 1 ] || die 65 "cert holds no PEM certificate"
  [ "$n" -le 10 ] || die 65 "cert holds more than 10 certificates"
  : > "$tmp/cert.pem"
  for ((i = 1; i <= n; i++)); do
    openssl x509 -in "$tmp/block.$i" -noout 2>/dev/null || die 65 "certificate $i of the chain cannot be read"
    cat -- "$tmp/block.$i" >> "$tmp/cert.pem"
  done
  # An encrypted key (no passphrase can be given) or anything else that is not a private key is refused here.
  printf '%s\n' "$key" > "$tmp/key.in"
  openssl pkey -in "$tmp/key.in" -passin pass: -out "$tmp/key.pem" 2>/dev/null || die 65 "key is not an unencrypted PEM private key"
  leaf_pub=$(openssl x509 -in "$tmp/cert.pem" -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum)
  key_pub=$(openssl pkey -in "$tmp/key.pem" -pubout -outform DER | sha256sum)
  [ "$leaf_pub" = "$key_pub" ] || die 65 "the key does not match the certificate"
  now=$(date -u +%s)
  start=$(date -u -d "$(openssl x509 -in "$tmp/cert.pem" -noout -startdate | cut -d= -f2-)" +%s) || die 65 "unreadable notBefore"
  end=$(date -u -d "$(openssl x509 -in "$tmp/cert.pem" -noout -enddate | cut -d= -f2-)" +%s) || die 65 "unreadable notAfter"
  [ "$start" -le "$now" ] || die 65 "the certificate is not valid yet"
  [ "$end" -gt "$now" ] || die 65 "the certificate has expired"
  fp=$(openssl x509 -in "$tmp/cert.pem" -noout -fingerprint -sha256 | cut -d= -f2-)

  # Postfix reads one file holding key then chain (smtpd_tls_chain_files), replaced in one rename, so that an smtpd
  # started at any moment sees a matching pair. Dovecot reads its two files only when told to reload, after both.
  cat -- "$tmp/key.pem" "$tmp/cert.pem" > "$tmp/chain.pem"
  chmod 0600 "$tmp/key.pem" "$tmp/cert.pem" "$tmp/chain.pem"
  mv -- "$tmp/chain.pem" "$tls/chain.pem"
  mv -- "$tmp/key.pem" "$tls/key.pem"
  mv -- "$tmp/cert.pem" "$tls/cert.pem"
  printf 'installed\n' > "$tls/source"
  # Both reloads let every open session finish on the certificate it began with (Postfix's processes exit once idle,
  # Dovecot's old imap processes keep their connections); new connections get the new one.
  postfix reload >/dev/null 2>&1 || die 70 "installed, but postfix reload failed"
  doveadm reload >/dev/null 2>&1 || die 70 "installed, but doveadm reload failed"
  jq -cn --arg n "$(date -u -d "@$end" +%Y-%m-%dT%H:%M:%SZ)" --arg f "$fp" '{ok:true,notAfter:$n,sha256:$f}'
}

case "$op" in
  dkim-init)
    # At each start (entrypoint.sh): a key when the domain has none, and OpenDKIM's configuration.
    dkim_prepare
    sel=$(active_selector) || sel=$(new_key)
    write_opendkim_conf "$sel" ;;
  dkim-show)
    dkim_json ;;
  dkim-rotate)
    dkim_prepare
    prev=$(active_selector) || prev=''
    sel=$(new_key)
    # The new key and the one it replaces are kept (the old record stays published until mail signed with it has
    # been verified: receivers check at arrival, and retries last up to 5 days, RFC 5321 section 4.5.4.1); older
    # ones go.
    selectors | while IFS= read -r s; do
      if [ "$s" != "$sel" ] && [ "$s" != "$prev" ]; then rm -f -- "$dkim/$s.key"; fi
    done
    write_opendkim_conf "$sel"
    # SIGUSR1 makes OpenDKIM read its configuration and the new key again, without a gap in signing.
    if [ -s /run/opendkim/opendkim.pid ]; then
      kill -USR1 "$(head -n 1 /run/opendkim/opendkim.pid)" 2>/dev/null || die 70 "key made, but OpenDKIM could not be told to reload"
    fi
    dkim_json ;;
  tls-install)
    tls_install ;;
  *)
    die 64 "unknown command (dkim-show, dkim-rotate, tls-install)" ;;
esac
