#!/bin/sh
# cattery's account adapter for the mail service: `cattery-account <operation>`, input as one JSON object on stdin
# (secrets included: never in argv or the environment), result as one JSON object on stdout, exit 0 on success.
# cattery has already checked every value against a strict pattern; this script still quotes every expansion and
# never evaluates input.
set -eu
umask 077
op="${1:-}"
state=/var/lib/cattery-mail
domain="${MAIL_DOMAIN:-example.org}"
input=$(cat)
field() { printf '%s' "$input" | jq -er --arg k "$1" '.[$k] // empty'; }
fail() { jq -cn --arg e "$1" '{ok:false,error:$e}'; exit 1; }

user=$(field username) || fail "username missing"
case "$user" in *[!a-z0-9._-]*|'') fail "invalid username";; esac
addr="$user@$domain"
maildir="/var/mail/vhosts/$domain/$user"

exec 9>"$state/lock"
flock 9

line_of() { grep -F -- "$addr:" "$state/passwd" | head -n 1 || true; }
write_line() { # $1 = new line, or empty to remove
  tmp=$(mktemp "$state/passwd.XXXXXX")
  grep -v -F -- "$addr:" "$state/passwd" > "$tmp" || true
  [ -n "$1" ] && printf '%s\n' "$1" >> "$tmp"
  chmod 0640 "$tmp"; chgrp dovecot "$tmp" 2>/dev/null || true
  mv "$tmp" "$state/passwd"
  grep -o '^[^:]*' "$state/passwd" | sed 's/$/ OK/' > "$state/vmailbox.tmp"
  mv "$state/vmailbox.tmp" "$state/vmailbox"
  postfix reload >/dev/null 2>&1 || true
  doveadm auth cache flush >/dev/null 2>&1 || true
}
hash_of() { printf '%s' "$1" | openssl passwd -6 -stdin; }
quota_field() { printf 'userdb_quota_rule=*:storage=%sM' "$1"; }

case "$op" in
  create)
    pass=$(field password) || fail "password missing"
    quota=$(field quotaMb) || fail "quotaMb missing"
    if [ -z "$(line_of)" ]; then
      write_line "$addr:{SHA512-CRYPT}$(hash_of "$pass")::::::$(quota_field "$quota")"
    fi
    mkdir -p "$maildir"; chown mail:mail "/var/mail/vhosts/$domain" "$maildir"
    jq -cn --arg a "$addr" '{ok:true,address:$a}' ;;
  setPassword)
    pass=$(field password) || fail "password missing"
    cur=$(line_of); [ -n "$cur" ] || fail "no such account"
    disabled=$(printf '%s' "$cur" | cut -d: -f2 | grep -o '}!' || true)
    prefix='{SHA512-CRYPT}'; [ -n "$disabled" ] && prefix='{SHA512-CRYPT}!'
    write_line "$addr:$prefix$(hash_of "$pass"):$(printf '%s' "$cur" | cut -d: -f3-)"
    jq -cn '{ok:true}' ;;
  suspend|resume)
    cur=$(line_of); [ -n "$cur" ] || fail "no such account"
    pw=$(printf '%s' "$cur" | cut -d: -f2 | sed 's/^{SHA512-CRYPT}!*//')
    mark=''; [ "$op" = suspend ] && mark='!'
    write_line "$addr:{SHA512-CRYPT}$mark$pw:$(printf '%s' "$cur" | cut -d: -f3-)"
    jq -cn '{ok:true}' ;;
  setQuota)
    quota=$(field quotaMb) || fail "quotaMb missing"
    cur=$(line_of); [ -n "$cur" ] || fail "no such account"
    write_line "$(printf '%s' "$cur" | cut -d: -f1-7):$(quota_field "$quota")"
    jq -cn '{ok:true}' ;;
  usage)
    [ -n "$(line_of)" ] || fail "no such account"
    bytes=0; items=0
    if [ -d "$maildir" ]; then
      bytes=$(du -sb "$maildir" | cut -f1)
      items=$(find "$maildir" -type f \( -path '*/cur/*' -o -path '*/new/*' \) | wc -l)
    fi
    jq -cn --argjson b "$bytes" --argjson i "$items" '{ok:true,bytes:$b,items:$i}' ;;
  export)
    # The Maildir as a tar stream on stdout: the one operation whose output is not JSON.
    [ -d "$maildir" ] || mkdir -p "$maildir"
    exec tar -C "/var/mail/vhosts/$domain" -cf - "$user" ;;
  delete)
    write_line ""
    rm -rf -- "$maildir"
    jq -cn '{ok:true}' ;;
  *) fail "unknown operation" ;;
esac
