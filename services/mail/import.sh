# The import operation of the mail account adapter (sourced by account.sh, which has checked the username, read the
# first line of stdin into $input and holds the accounts lock): the archive that follows on stdin becomes the
# account's Maildir, whole or not at all. Its layout is export's: members `<user>/...`.
#
# 1. The archive is stored in a staging folder on the mail volume (.import-<user>@XXXXXX: a username never holds
#    "@" nor starts with ".", so it is never an account's folder nor another account's staging).
# 2. GNU tar lists it (-tvR, names quoted C-style, so that one member is one line): every member must be a regular
#    file or a folder named <user>/... or the folder <user>, with no empty, "." or ".." segment; the list must end with the
#    end-of-archive blocks (a tar cut at a member boundary is otherwise a valid, shorter archive); sizes add up
#    within the quota and the hard cap.
# 3. Only then is it extracted, into an empty folder, by the same tar that listed it (no second parser to disagree
#    with), with options that never keep the archive's owners, modes or folders over ours; what came out is checked
#    again (only files and folders, no hard link, nothing but <user> at the top).
# 4. Owner and modes become Dovecot's own (mail:mail, 0700 folders, 0600 files); Dovecot's binary index caches and
#    the Maildir++ quota file are left out (Dovecot rebuilds both from the messages, and they are not for an
#    archive to dictate); dovecot-uidlist and keywords stay, so clients keep their UIDs and flags.
# 5. The staged Maildir and the live one are exchanged in one renameat2(RENAME_EXCHANGE): at every instant the
#    account has either its whole old Maildir or its whole new one. The old one, now in the staging folder, goes
#    with it. A crash leaves a staging folder behind, removed by the account's next import.

# Bytes at most in one import: the mail volume is 10 GiB (service.json), and an import needs the archive and its
# extraction side by side.
IMPORT_CAP=$((4 * 1024 * 1024 * 1024))
# Members at most: a generous mailbox (a message is a file) within what a listing in a shell pipeline handles.
IMPORT_MEMBERS_MAX=500000

import_archive() {
  quota=$(field quotaMb) || fail "quotaMb missing"
  case "$quota" in ''|*[!0-9]*) fail "invalid quotaMb" ;; esac
  [ "${#quota}" -le 9 ] || fail "invalid quotaMb"
  [ -n "$(line_of)" ] || fail "no such account"
  vhost="/var/mail/vhosts/$domain"
  mkdir -p "$vhost"; chown mail:mail "$vhost"
  # Leftovers of this account's earlier imports (a crash): this account's only ("@" ends the name), removed. Under
  # the lock, then released: the archive is received and checked without it.
  flock 9
  for old in "$vhost/.import-$user@"*; do
    [ -e "$old" ] || continue
    rm -rf -- "$old"
  done
  stage=$(mktemp -d "$vhost/.import-$user@XXXXXX") || fail "cannot make a staging folder"
  flock -u 9
  trap 'rm -rf -- "$stage"' EXIT
  trap 'exit 1' HUP INT TERM

  # The archive may be larger than what it unpacks to (512 bytes of header per member, data padded to 512): twice
  # the quota and 64 MiB, within the cap, is room for that and no more.
  limit=$IMPORT_CAP
  if [ "$quota" -gt 0 ]; then
    q=$((quota * 1024 * 1024 * 2 + 64 * 1024 * 1024))
    [ "$q" -lt "$limit" ] && limit=$q
  fi
  head -c "$((limit + 1))" > "$stage/archive.tar" || fail "the archive could not be stored (volume full?)"
  [ "$(stat -c %s "$stage/archive.tar")" -le "$limit" ] || fail "the archive is larger than $limit bytes"

  tar -tvPR --numeric-owner --quoting-style=c -f "$stage/archive.tar" > "$stage/list" 2> "$stage/err" \
    || fail "not a readable tar archive: $(head -c 300 "$stage/err" | tr '\n' ' ')"
  verdict=$(CATTERY_USER="$user" awk '
    function bad(why) { if (!why_) why_ = why " (" name ")"; exit }
    BEGIN { u = ENVIRON["CATTERY_USER"]; n = 0; bytes = 0; eof = 0 }
    {
      name = ""
      if (eof) bad("data after the end of the archive")
      if ($0 ~ /^block [0-9]+: \*\* Block of NULs \*\*$/) { eof = 1; next }
      if (!match($0, /^block [0-9]+: [^ ]+ +[^ ]+ +[0-9]+ +[^ ]+ +[^ ]+ +"/)) { name = substr($0, 1, 80); bad("not a regular file or folder, or an unreadable entry") }
      name = substr($0, RLENGTH + 1)
      t = substr($0, index($0, ":") + 2, 1)
      if (t != "-" && t != "d") bad("not a regular file or folder")
      if (substr(name, length(name)) != "\"") bad("unreadable name")
      name = substr(name, 1, length(name) - 1)
      rest = name; gsub(/\\./, "", rest)
      if (index(rest, "\"") || index(rest, "\\")) bad("unreadable name")
      if (t == "d") sub(/\/$/, "", name)
      k = split(name, seg, "/")
      if (k < 1 || seg[1] != u) bad("outside the account")
      if (k == 1 && t != "d") bad("the account itself is not a folder")
      for (i = 2; i <= k; i++) if (seg[i] == "" || seg[i] == "." || seg[i] == "..") bad("not a plain path")
      split(substr($0, index($0, ":") + 2), f, " ")
      n++
      if (t == "-") bytes += f[3]
    }
    END {
      if (why_) { print "bad " why_; exit }
      if (!eof) { print "bad the archive ends before its end-of-archive blocks (truncated?)"; exit }
      if (n == 0) { print "bad the archive is empty"; exit }
      printf "ok %d %.0f\n", n, bytes
    }' "$stage/list")
  case "$verdict" in
    ok\ *) ;;
    *) fail "refused archive: ${verdict#bad }" ;;
  esac
  members=$(printf '%s' "$verdict" | cut -d' ' -f2)
  bytes=$(printf '%s' "$verdict" | cut -d' ' -f3)
  [ "$members" -le "$IMPORT_MEMBERS_MAX" ] || fail "refused archive: more than $IMPORT_MEMBERS_MAX members"
  [ "$bytes" -le "$IMPORT_CAP" ] || fail "refused archive: $bytes bytes, above the cap of $IMPORT_CAP"
  if [ "$quota" -gt 0 ] && [ "$bytes" -gt $((quota * 1024 * 1024)) ]; then
    fail "refused archive: $bytes bytes, above the quota of $quota MB"
  fi

  mkdir "$stage/tree"
  tar -xf "$stage/archive.tar" -C "$stage/tree" --no-same-owner --no-same-permissions --no-overwrite-dir \
      --no-xattrs --no-acls --no-selinux 2> "$stage/err" \
    || fail "the archive could not be extracted: $(head -c 300 "$stage/err" | tr '\n' ' ')"
  rm -f -- "$stage/archive.tar"
  new="$stage/tree/$user"
  [ -d "$new" ] && [ ! -L "$new" ] || fail "refused archive: no $user folder"
  [ -z "$(find "$stage/tree" -mindepth 1 -maxdepth 1 ! -name "$user" -print -quit)" ] || fail "refused archive: something beside $user"
  [ -z "$(find "$new" \( ! -type f ! -type d \) -print -quit)" ] || fail "refused archive: not only files and folders"
  [ -z "$(find "$new" -type f -links +1 -print -quit)" ] || fail "refused archive: hard links"

  find "$new" -type f \( -name 'dovecot.index*' -o -name 'dovecot.list.index*' -o -name maildirsize \) \
    ! -path '*/cur/*' ! -path '*/new/*' ! -path '*/tmp/*' -delete
  # Only files and folders are left (checked above): chown and chmod meet no link to follow.
  chown -R mail:mail "$new"
  find "$new" -type d -exec chmod 0700 {} +
  find "$new" -type f -exec chmod 0600 {} +

  # The swap, under the lock: the account still there (not deleted while the archive came in), nothing else
  # changing the accounts meanwhile.
  flock 9
  [ -n "$(line_of)" ] || fail "no such account (deleted during the import)"
  [ -d "$stage/tree" ] || fail "the import was interrupted (another import of this account began)"
  if [ ! -d "$maildir" ]; then mkdir "$maildir"; chown mail:mail "$maildir"; fi
  # renameat2 has no command in bookworm (util-linux's exch is 2.40, coreutils' mv --exchange 9.5): Python's ctypes
  # calls glibc's. Should the file system refuse the flag, two renames, the old one moved aside first.
  if ! python3 -c '
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, RENAME_EXCHANGE = -100, 2
if libc.renameat2(AT_FDCWD, os.fsencode(sys.argv[1]), AT_FDCWD, os.fsencode(sys.argv[2]), RENAME_EXCHANGE) != 0:
    sys.exit(os.strerror(ctypes.get_errno()))
' "$new" "$maildir" 2> "$stage/err"; then
    mv -T -- "$maildir" "$stage/old" || fail "the Maildir could not be replaced"
    mv -T -- "$new" "$maildir" || { mv -T -- "$stage/old" "$maildir"; fail "the Maildir could not be replaced"; }
  fi
  # Sessions open on the old Maildir are closed (their clients reconnect and see the new one); the quota is
  # counted again from the messages now there.
  doveadm kick "$addr" >/dev/null 2>&1 || true
  doveadm quota recalc -u "$addr" >/dev/null 2>&1 || true
  jq -cn '{ok:true}'
}
