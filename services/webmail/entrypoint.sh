#!/bin/bash
# Make the configuration, make or upgrade the database, then run PHP-FPM and lighttpd side by side. When either
# stops, the other is stopped and the container exits, so Docker's restart policy restarts both (never a web
# server in front of dead PHP workers, nor the reverse). Runs as www-data throughout.
set -euo pipefail
umask 077
run=/run/cattery-webmail
db=/var/lib/cattery-webmail/roundcube.db
mkdir -p "$run"
php /usr/local/lib/cattery-webmail/make-config.php

# The volume's folder is 0700 and www-data's (copied from the image into the empty volume); the file 0600.
chmod 0700 /var/lib/cattery-webmail
if [ ! -s "$db" ]; then
  # Made under another name and renamed, so an interrupted first start never leaves a half-made database.
  rm -f "$db.new"
  sqlite3 "$db.new" < /usr/share/roundcube/SQL/sqlite.initial.sql
  mv "$db.new" "$db"
else
  # A database made by an older package version: Roundcube's own schema updates (a no-op when up to date).
  /usr/share/roundcube/bin/updatedb.sh --package=roundcube --dir=/usr/share/roundcube/SQL >/dev/null
fi
chmod 0600 "$db"

php-fpm8.2 --nodaemonize --fpm-config /etc/cattery-webmail/php-fpm.conf &
fpm=$!
lighttpd -D -f /etc/cattery-webmail/lighttpd.conf &
httpd=$!
stop() { kill -TERM "$fpm" "$httpd" 2>/dev/null || true; }
trap stop TERM INT
status=0
wait -n "$fpm" "$httpd" || status=$?
stop
wait || true
exit "$status"
