#!/bin/sh
# Healthy when Postfix's master and Dovecot both run.
postfix status >/dev/null 2>&1 && doveadm service status >/dev/null 2>&1 || pidof dovecot >/dev/null
