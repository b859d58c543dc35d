# The forward operation of the mail account adapter (sourced by account.sh, which has checked the username, read
# stdin into $input and holds the accounts lock). A resident who moved to another hoster (docs/migration-format.md,
# step 6) leaves their old address behind: input {username, to, until, message}.
#   - the account's sign-in is disabled for good and its mailbox removed, as delete does (the data is at the new
#     hoster: the move's receipt said so);
#   - mail to the old address is redirected to `to` by a Sieve script of the account's own (Dovecot's LMTP runs it),
#     with the old address as the envelope sender (sieve_redirect_envelope_from, entrypoint.sh): the new hoster then
#     checks SPF against this server, which did send it, and never sees one of its own addresses come in on port 25;
#   - the sender gets one reply (Sieve vacation, RFC 5230, once per sender per VACATION_DAYS), never to a list, a bulk
#     or an automatic message, nor to the null sender (Pigeonhole's own rules, RFC 5230 section 4.5 and RFC 3834);
#   - `until` is kept beside the script; cattery deletes the account when it is over (delete removes the forward).
# Every value is checked here again (cattery has already): nothing from the input reaches the script unchecked, and
# the message reaches it only inside one quoted string with its quotes and backslashes escaped (RFC 5228 2.4.2).

forwards="$state/forward"
forward_script() { printf '%s/%s.sieve' "$forwards" "$addr"; }
is_forwarded() { [ -f "$(forward_script)" ]; }
# RFC 5230 section 4.1: the period is the sender's, so a loop between two auto-responders is one message a week.
VACATION_DAYS=7
# The longest message: a few paragraphs in two languages. Lines are bounded in octets (UTF-8), so that the reply's
# body keeps within SMTP's 998 octets per line (RFC 5322 section 2.1.1).
MESSAGE_MAX=2000
MESSAGE_LINE_MAX=900
MESSAGE_LINES_MAX=60
# A forward lasts what the association decides, bounded by cattery (governance settings); a year and a day here.
FORWARD_MAX_S=$((366 * 86400))

drop_forward() {
  rm -f -- "$(forward_script)" "$forwards/$addr.svbin" "$forwards/$addr.json"
}

forward_account() {
  cur=$(line_of); [ -n "$cur" ] || fail "no such account"
  # Each read as a JSON string of the allowed characters before the shell sees it: a NUL or a line break inside
  # would otherwise be dropped or split by the command substitution, and another address taken for this one.
  printf '%s' "$input" | jq -e '.to | type == "string" and test("\\A[A-Za-z0-9._+@-]{1,254}\\z")' >/dev/null 2>&1 \
    || fail "to: not a plain e-mail address"
  printf '%s' "$input" | jq -e '.until | type == "string" and test("\\A[0-9TZ:.-]{1,40}\\z")' >/dev/null 2>&1 \
    || fail "until: a UTC date and time, YYYY-MM-DDTHH:MM:SSZ"
  to=$(field to) || fail "to missing"
  until=$(field until) || fail "until missing"
  # The address: ASCII letters, digits and . _ + - before the @, a domain of the shape MAIL_DOMAIN has after it;
  # one @, no dot at either end of the local part, no "..", at most 254 octets (RFC 5321 section 4.5.3.1).
  case "$to" in *[!A-Za-z0-9.@+_-]*|*@*@*|@*|*@|.*|*.@*|*@.*|*..*) fail "to: not a plain e-mail address" ;; esac
  case "$to" in *@*) ;; *) fail "to: not a plain e-mail address" ;; esac
  [ "${#to}" -le 254 ] || fail "to: longer than 254 characters"
  local_part=${to%@*}; to_domain=${to#*@}
  [ "${#local_part}" -ge 1 ] && [ "${#local_part}" -le 64 ] || fail "to: the part before @ is 1 to 64 characters"
  MAIL_DOMAIN="$to_domain" mail_domain >/dev/null || fail "to: the domain is not a domain name (lowercase)"
  [ "$(printf '%s' "$to" | tr 'A-Z' 'a-z')" != "$addr" ] || fail "to: the account's own address (a loop)"
  # until: a UTC time as cattery writes it (ISO 8601, seconds), in the future, at most FORWARD_MAX_S ahead.
  printf '%s\n' "$until" | grep -Eqx '[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{3})?Z' \
    || fail "until: a UTC date and time, YYYY-MM-DDTHH:MM:SSZ"
  end=$(date -u -d "$until" +%s 2>/dev/null) || fail "until: not a date"
  now=$(date -u +%s)
  [ "$end" -gt "$now" ] || fail "until: in the past"
  [ "$end" -le $((now + FORWARD_MAX_S)) ] || fail "until: more than 366 days ahead"
  # The message: plain text, checked by code point (jq reads the JSON string, escapes included): line feeds and
  # printable characters only; no other control character (C0, DEL, C1), no line or paragraph separator, no
  # invisible direction or format mark that could hide part of the text, no byte-order mark.
  printf '%s' "$input" | jq -e --argjson max "$MESSAGE_MAX" --argjson line "$MESSAGE_LINE_MAX" --argjson lines "$MESSAGE_LINES_MAX" '
    (.message | type == "string") and (.message | length) <= $max and (.message | test("[^ \\n]"))
    and (.message | split("\n") | length <= $lines and all(utf8bytelength <= $line))
    and (.message | explode | all(. == 10 or (. >= 32 and . < 127) or (. >= 160
      and . != 173 and (. < 8203 or . > 8207) and . != 8232 and . != 8233 and (. < 8234 or . > 8238)
      and (. < 8288 or . > 8303) and . != 65279 and (. < 65529 or . > 65535))))' >/dev/null 2>&1 \
    || fail "message: 1 to $MESSAGE_MAX characters of plain text, at most $MESSAGE_LINES_MAX lines of $MESSAGE_LINE_MAX octets"
  # Escaped for a Sieve quoted string: backslash first, then the double quote; nothing else is special inside one
  # (no "variables" or "encoded-character" extension is required by the script, so "${" is plain text).
  # (The "x" keeps the message's own trailing line feeds from the command substitution.)
  msg=$(printf '%s' "$input" | jq -j '.message' | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g'; printf x); msg=${msg%x}

  mkdir -p "$forwards"; chown root:mail "$forwards"; chmod 0750 "$forwards"
  # What a crash left half-made (under the lock: no other forward is being written now).
  for old in "$forwards"/.new.*; do [ -e "$old" ] && rm -rf -- "$old"; done
  # Not $tmp: write_line (account.sh) uses that name.
  new=$(mktemp -d "$forwards/.new.XXXXXX")
  # The script first, compiled: a forward that Pigeonhole would refuse changes nothing of the account.
  {
    printf '%s\n' '# Written by cattery-account forward; replaced by the next forward, removed by delete.'
    printf 'require ["vacation"];\n'
    printf 'vacation :days %s :subject "Nouvelle adresse / New address" "%s";\n' "$VACATION_DAYS" "$msg"
    printf 'redirect "%s";\n' "$to"
  } > "$new/script.sieve"
  sievec "$new/script.sieve" "$new/script.svbin" 2> "$new/err" \
    || { why=$(head -c 300 "$new/err" | tr '\n' ' '); rm -rf -- "$new"; fail "the forward could not be compiled: $why"; }
  jq -cn --arg to "$to" --arg until "$until" '{to:$to,until:$until}' > "$new/terms.json"
  chown root:mail "$new/script.sieve" "$new/terms.json"
  chmod 0640 "$new/script.sieve" "$new/terms.json"

  # The forward first, then the account goes: stopped half-way, the address forwards and a retry finishes. The script
  # is renamed whole into place, then compiled there (a binary records its script's location, so the one made above
  # is not reused; Dovecot's LMTP may not write here, and a delivery in between compiles it in memory).
  mv -f -- "$new/terms.json" "$forwards/$addr.json"
  mv -f -- "$new/script.sieve" "$(forward_script)"
  rm -rf -- "$new"
  sievec "$(forward_script)" 2>/dev/null || true
  if [ -f "$forwards/$addr.svbin" ]; then chown root:mail "$forwards/$addr.svbin"; chmod 0640 "$forwards/$addr.svbin"; fi
  # The sign-in goes for good: no hash at all, so neither a resume (which strips the "!") nor a cached password
  # opens it; quota and the other fields stay (Dovecot still needs the user for delivery).
  write_line "$addr:$SCHEME!forwarded-after-a-move:$(rest_of)"
  doveadm kick "$addr" >/dev/null 2>&1 || true
  # Its data goes as delete removes it; an empty home stays, where Pigeonhole keeps whom it has answered.
  rm -rf -- "$maildir"
  mkdir -p "$maildir"; chown mail:mail "/var/mail/vhosts/$domain" "$maildir"; chmod 0700 "$maildir"
  jq -cn --arg a "$addr" --arg to "$to" --arg until "$until" '{ok:true,address:$a,to:$to,until:$until}'
}
