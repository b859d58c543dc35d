#!/bin/sh
# Healthy when Postfix's master and Dovecot both run (both: one without the other loses mail or logins).
postfix status >/dev/null 2>&1 && doveadm service status >/dev/null 2>&1
