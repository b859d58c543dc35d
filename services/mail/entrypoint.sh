#!/bin/sh
# Configure Postfix and Dovecot for virtual mailboxes under /var/mail, then run both in the foreground.
set -eu
domain="${MAIL_DOMAIN:-example.org}"
state=/var/lib/cattery-mail
mkdir -p "$state" /var/mail/vhosts
touch "$state/passwd" "$state/vmailbox"
chgrp dovecot "$state/passwd" && chmod 0640 "$state/passwd"
chmod 0750 "$state" && chgrp dovecot "$state"
chown -R mail:mail /var/mail/vhosts
postconf -e "myhostname=mail.$domain" "mydomain=$domain" "mydestination=localhost" \
  "virtual_mailbox_domains=$domain" "virtual_transport=lmtp:unix:private/dovecot-lmtp" \
  "virtual_mailbox_maps=texthash:$state/vmailbox" \
  "smtpd_sasl_type=dovecot" "smtpd_sasl_path=private/auth" "smtpd_sasl_auth_enable=yes" \
  "smtpd_recipient_restrictions=permit_sasl_authenticated,reject_unauth_destination" \
  "maillog_file=/dev/stdout" "inet_protocols=ipv4"
postconf -M "submission/inet=submission inet n - y - - smtpd -o smtpd_sasl_auth_enable=yes -o smtpd_client_restrictions=permit_sasl_authenticated,reject"
cat > /etc/dovecot/local.conf <<CONF
protocols = imap lmtp
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:/var/mail/vhosts/%d/%n
mail_plugins = \$mail_plugins quota
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
