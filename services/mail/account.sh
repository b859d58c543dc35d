#!/bin/sh
# cattery's account adapter for the mail service: `cattery-account <operation>`, input as one JSON object on stdin
# (secrets included: never in argv or the environment), result as one JSON object on stdout, exit 0 on success.
# cattery has already checked every value against a strict pattern; this script checks again, quotes every
# expansion, never evaluates input, and matches accounts by the passwd file's whole first field (never a substring:
# `dupont` and `marie.dupont` are two accounts, and an operation on one never touches the other).
set -eu
umask 077
. /usr/local/lib/cattery-mail.sh
op="${1:-}"
# import's input is one line of JSON, then the archive: `read` takes the line byte by byte from the pipe and leaves
# the archive on stdin for the operation itself. Every other operation's input is all of stdin.
if [ "$op" = import ]; then
  IFS= read -r input || [ -n "$input" ] || input=''
else
  input=$(cat)
fi
field() { printf '%s' "$input" | jq -er --arg k "$1" '.[$k] // empty'; }
fail() { jq -cn --arg e "$1" '{ok:false,error:$e}'; exit 1; }
# One JSON object, or nothing is done (jq refuses, e.g., a lone UTF-16 surrogate escape: said as such, not as a
# missing field).
printf '%s' "$input" | jq -e 'type == "object"' >/dev/null 2>&1 || fail "input: not one JSON object"

domain=$(mail_domain) || fail "MAIL_DOMAIN is missing or not a domain name"
user=$(field username) || fail "username missing"
# The same shape as cattery's USERNAME_PATTERN: 2 to 32 characters, a letter first, a letter or digit last, no "..".
case "$user" in
  *[!a-z0-9._-]*|[!a-z]*|*[!a-z0-9]|*..*) fail "invalid username" ;;
esac
[ "${#user}" -ge 2 ] && [ "${#user}" -le 32 ] || fail "invalid username"
addr="$user@$domain"
maildir="/var/mail/vhosts/$domain/$user"
# awk reads the address from the environment: -v would interpret backslashes, ENVIRON does not.
export CATTERY_ADDR="$addr"

exec 9>"$state/lock"
# An import takes the lock only around its own short steps (import.sh): receiving and checking an archive takes as
# long as the upload, and another resident's operation must not wait behind it.
[ "$op" = import ] || flock 9

# The account's line, found by its whole first field; empty when there is none.
line_of() { awk -F: '$1 == ENVIRON["CATTERY_ADDR"] { print; exit }' "$state/passwd"; }
# Replace the account's line with $1, or remove it when $1 is empty; every other line is copied as it is.
write_line() {
  tmp=$(mktemp "$state/passwd.XXXXXX")
  awk -F: '$1 != ENVIRON["CATTERY_ADDR"]' "$state/passwd" > "$tmp"
  if [ -n "$1" ]; then printf '%s\n' "$1" >> "$tmp"; fi
  chmod 0640 "$tmp"; chgrp dovecot "$tmp"
  # Dovecot reads the file again only when its modification time (in whole seconds) or size differ from what it last
  # read: a password changed, or an account suspended or deleted, in the same second as the last read (same size:
  # SHA512-CRYPT hashes all have one length) went unseen, and the old password kept working. The new file's time is
  # therefore always later than the old one's, by a second at least.
  old_mtime=$(stat -c %Y "$state/passwd" 2>/dev/null || echo 0)
  now=$(date +%s)
  if [ "$now" -le "$old_mtime" ]; then touch -d "@$((old_mtime + 1))" "$tmp"; fi
  mv "$tmp" "$state/passwd"
  # Dovecot also looks at the file at most once per second of its event loop (db-passwd-file.c, passwd_file_sync:
  # `last_sync_time == ioloop_time`): a login in the second of this write may have looked already and would keep the
  # old copy until the next second. Returning only once that second is over means every login that follows the
  # operation's answer sees the change.
  written=$(date +%s)
  regen_maps
  postfix reload >/dev/null 2>&1 || true
  doveadm auth cache flush >/dev/null 2>&1 || true
  while [ "$(date +%s)" -le "$written" ]; do sleep 0.05; done
}
hash_of() { printf '%s' "$1" | openssl passwd -6 -stdin; }
quota_field() { printf 'userdb_quota_rule=*:storage=%sM' "$1"; }
# Fields of the account's own line ($cur), by position: 2 is the password, 3-7 uid..shell, 8 the extra fields.
pw_of() { printf '%s\n' "$cur" | cut -d: -f2; }
rest_of() { printf '%s\n' "$cur" | cut -d: -f3-; }
# A suspended account's password is "{SHA512-CRYPT}!<hash>": the "!" makes every password check fail.
SCHEME='{SHA512-CRYPT}'

. /usr/local/lib/cattery-mail-import.sh
. /usr/local/lib/cattery-mail-forward.sh

# A forwarded account (a resident who moved to another hoster) is no account any more: no sign-in, no data. Only
# forward again (new terms), usage (nothing) and delete (the end of the period) apply; anything else is refused, so
# that no operation brings a login or a mailbox back to an address whose owner has gone.
if is_forwarded; then
  case "$op" in
    forward|usage|delete) ;;
    *) fail "this address is forwarded to its owner's new address (a move): it has no mailbox here any more" ;;
  esac
fi

case "$op" in
  create)
    pass=$(field password) || fail "password missing"
    quota=$(field quotaMb) || fail "quotaMb missing"
    # Creating an existing account changes nothing (cattery treats it as success).
    if [ -z "$(line_of)" ]; then
      write_line "$addr:$SCHEME$(hash_of "$pass")::::::$(quota_field "$quota")"
    fi
    mkdir -p "$maildir"; chown mail:mail "/var/mail/vhosts/$domain" "$maildir"
    jq -cn --arg a "$addr" '{ok:true,address:$a}' ;;
  setPassword)
    pass=$(field password) || fail "password missing"
    cur=$(line_of); [ -n "$cur" ] || fail "no such account"
    # A new password keeps a suspended account suspended.
    mark=''
    case "$(pw_of)" in "$SCHEME!"*) mark='!' ;; esac
    write_line "$addr:$SCHEME$mark$(hash_of "$pass"):$(rest_of)"
    jq -cn '{ok:true}' ;;
  suspend|resume)
    cur=$(line_of); [ -n "$cur" ] || fail "no such account"
    hash=$(pw_of); hash="${hash#"$SCHEME"}"; hash="${hash#!}"
    mark=''; [ "$op" = suspend ] && mark='!'
    write_line "$addr:$SCHEME$mark$hash:$(rest_of)"
    jq -cn '{ok:true}' ;;
  setQuota)
    quota=$(field quotaMb) || fail "quotaMb missing"
    cur=$(line_of); [ -n "$cur" ] || fail "no such account"
    write_line "$(printf '%s\n' "$cur" | cut -d: -f1-7):$(quota_field "$quota")"
    jq -cn '{ok:true}' ;;
  usage)
    [ -n "$(line_of)" ] || fail "no such account"
    bytes=0; items=0
    if [ -d "$maildir" ]; then
      bytes=$(du -sb -- "$maildir" | cut -f1)
      items=$(find "$maildir" -type f \( -path '*/cur/*' -o -path '*/new/*' \) | wc -l)
    fi
    jq -cn --argjson b "$bytes" --argjson i "$items" '{ok:true,bytes:$b,items:$i}' ;;
  export)
    # The Maildir as a tar stream on stdout: the one operation whose output is not JSON. Only this account's own
    # folder is named (a member name is never a pattern when creating an archive); tar's exit code is the
    # script's, so a failure midway is seen by cattery.
    [ -n "$(line_of)" ] || fail "no such account"
    if [ ! -d "$maildir" ]; then mkdir -p "$maildir"; chown mail:mail "$maildir"; fi
    exec tar -C "/var/mail/vhosts/$domain" -cf - -- "$user" ;;
  import) import_archive ;;
  forward) forward_account ;;
  delete)
    drop_forward
    write_line ""
    # $user has been checked above (no "/", no ".."): this is this account's folder and nothing else.
    rm -rf -- "$maildir"
    jq -cn '{ok:true}' ;;
  *) fail "unknown operation" ;;
esac
