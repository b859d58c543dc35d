#!/bin/sh
# Makes the "cattery" skin's templates from elastic's own, with what axe-core finds wrong on them fixed, and fixes
# the same in elastic's script. Each template is made from the package's own copy at build time (so a package update
# keeps the rest of it); every edit is checked, and the build fails if the package's text no longer has what is
# replaced. Run from /var/lib/roundcube/skins.
set -eu
e=elastic/templates
c=cattery/templates
mkdir -p "$c/includes"
must() { grep -q -- "$1" "$2" || { echo "patch-elastic: '$1' not found in $2" >&2; exit 1; }; }

# Every page: cattery's stylesheet after elastic's.
sed 's#<link rel="stylesheet" href="/styles/styles.css">#&<link rel="stylesheet" href="/styles/cattery.css">#' \
  "$e/includes/layout.html" > "$c/includes/layout.html"
must 'href="/styles/cattery.css"' "$c/includes/layout.html"

# Login: the footer is a contentinfo landmark nested inside the main one (axe: landmark-contentinfo-is-top-level),
# and the page's heading sits outside every landmark (axe: region): the heading moves into the main landmark.
sed -e 's#<div id="login-footer" role="contentinfo">#<div id="login-footer">#' \
    -e '/^<h1 class="voice">/{h;d}' -e '/<div id="layout-content" [^>]*role="main">/G' \
  "$e/login.html" > "$c/login.html"
must '<div id="login-footer">' "$c/login.html"
grep -A1 'role="main">' "$c/login.html" | grep -q '<h1 class="voice">' || { echo "patch-elastic: login heading not moved" >&2; exit 1; }

# Every page's task bar (logo, the tasks): outside every landmark (axe: region); a banner holding the navigation.
sed 's#^<div id="layout-menu">#<div id="layout-menu" role="banner">#' "$e/includes/menu.html" > "$c/includes/menu.html"
must '<div id="layout-menu" role="banner">' "$c/includes/menu.html"

# The mailbox: no main landmark at all (axe: landmark-one-main, region): the message list is the page's main part,
# and its heading moves into it; the preview beside it (with its toolbar) is a region named by its own heading.
sed -e '/^<h1 class="voice">/{h;d}' \
    -e 's#^<div id="layout-list" class="listbox selected">#<div id="layout-list" class="listbox selected" role="main">#' \
    -e '/^<div id="layout-list" [^>]*role="main">/G' \
    -e 's#^<div id="layout-content">#<div id="layout-content" role="region" aria-labelledby="aria-label-mailpreviewframe">#' \
  "$e/mail.html" > "$c/mail.html"
must '<div id="layout-content" role="region"' "$c/mail.html"
grep -A1 '<div id="layout-list" class="listbox selected" role="main">' "$c/mail.html" | grep -q '<h1 class="voice">' \
  || { echo "patch-elastic: mailbox main landmark not made" >&2; exit 1; }

# The reply-all and forward option buttons are named only by a text the skin hides (axe: link-name): named with the
# same label.
sed -e 's#<a href="\#reply-all" id="replyallmenulink" \([^>]*\)>#<a href="\#reply-all" id="replyallmenulink" \1 aria-label="<roundcube:label name="arialabelreplyalloptions" />">#' \
    -e 's#<a href="\#forward" id="forwardmenulink" \([^>]*\)>#<a href="\#forward" id="forwardmenulink" \1 aria-label="<roundcube:label name="arialabelforwardingoptions" />">#' \
  "$e/includes/mail-menu.html" > "$c/includes/mail-menu.html"
[ "$(grep -c 'menulink" [^>]*aria-label=' "$c/includes/mail-menu.html")" -eq 2 ] \
  || { echo "patch-elastic: option buttons not named" >&2; exit 1; }

# The page number field has only a title (axe: label-title-only): the same text as its label.
sed 's#<input class="form-control" type="text" size="3" disabled title="<roundcube:label name="currpage" />" />#<input class="form-control" type="text" size="3" disabled title="<roundcube:label name="currpage" />" aria-label="<roundcube:label name="currpage" />" />#' \
  "$e/includes/pagenav.html" > "$c/includes/pagenav.html"
must 'aria-label="<roundcube:label name="currpage" />"' "$c/includes/pagenav.html"

# elastic's script moves the toolbars into lists whose items it marks role="menuitem", in lists that are no menu
# (axe: aria-required-parent, list, aria-command-name): plain list items, the buttons inside keep their own role.
n="$(grep -o "<li role=\"menuitem\">" elastic/ui.min.js | wc -l)"
[ "$n" -ge 4 ] || { echo "patch-elastic: elastic/ui.min.js has $n toolbar items to fix, 4 or more expected" >&2; exit 1; }
sed -i "s#<li role=\"menuitem\">#<li>#g" elastic/ui.min.js elastic/ui.js
! grep -q '<li role="menuitem">' elastic/ui.min.js

chmod -R a+rX cattery
