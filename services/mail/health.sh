#!/bin/sh
# Healthy when Postfix's master, Dovecot and the three milters run (any one missing loses mail or logins, or leaves mail
# waiting: Postfix defers while a milter does not answer).
alive() { [ -s "$1" ] && kill -0 "$(head -n 1 "$1")" 2>/dev/null; }
postfix status >/dev/null 2>&1 && doveadm service status >/dev/null 2>&1 \
  && alive /run/opendkim/opendkim.pid && alive /run/opendmarc/opendmarc.pid && alive /run/cattery-from-check/pid
