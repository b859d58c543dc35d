# Shared by the entrypoint and the account adapter (sourced, not run): where the state lives, the instance's
# domain checked once, and the Postfix maps derived from Dovecot's passwd file.
state=/var/lib/cattery-mail
tls="$state/tls"

# MAIL_DOMAIN has no default: a mailbox on a domain nobody chose would accept and lose residents' mail. The shape is
# the manifest's own pattern (lowercase labels, a TLD starting with a letter, 4 to 253 characters); the case
# pattern first refuses anything outside [a-z0-9.-], newlines included, so that grep -x sees a single line.
mail_domain() {
  d="${MAIL_DOMAIN:-}"
  case "$d" in ''|*[!a-z0-9.-]*) return 1 ;; esac
  [ "${#d}" -ge 4 ] && [ "${#d}" -le 253 ] || return 1
  printf '%s\n' "$d" | grep -Eqx '([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?' || return 1
  printf '%s' "$d"
}

# Postfix's views of the passwd file, by its first field only (the full address): who may receive mail, and which
# login owns which sender address (smtpd_sender_login_maps: each address is sent only by its own login).
# texthash maps need no postmap; Postfix reads them when its processes start, hence the reload by the caller.
regen_maps() {
  awk -F: 'NF && $1 != "" { print $1 " OK" }' "$state/passwd" > "$state/vmailbox.tmp"
  awk -F: 'NF && $1 != "" { print $1 " " $1 }' "$state/passwd" > "$state/senders.tmp"
  chmod 0600 "$state/vmailbox.tmp" "$state/senders.tmp"
  mv "$state/vmailbox.tmp" "$state/vmailbox"
  mv "$state/senders.tmp" "$state/senders"
}

# MAIL_DNS_RESOLVER: "docker" (the default: Docker's embedded DNS, as the container got it) or one IPv4 address, e.g.
# a validating resolver the association runs (as Mail-in-a-Box does), or a test's own DNS server. Printed when it
# is an address, nothing for "docker", failure for anything else; each octet is checked as a number (0-255).
mail_resolver() {
  r="${MAIL_DNS_RESOLVER:-docker}"
  [ "$r" = docker ] && return 0
  case "$r" in ''|*[!0-9.]*|.*|*.|*..*) return 1 ;; esac
  printf '%s\n' "$r" | awk -F. 'NF != 4 { exit 1 } { for (i = 1; i <= 4; i++) if (length($i) > 3 || $i + 0 > 255) exit 1 }' || return 1
  printf '%s' "$r"
}
