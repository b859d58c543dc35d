#!/usr/bin/python3
# A resident sends as themself, in the header too. Postfix binds the envelope sender to the login
# (smtpd_sender_login_maps), but not the From: header, which is what a reader sees and what DKIM and DMARC vouch for:
# OpenDKIM signs every message whose From: is in the domain, so without this check alice could send a message
# "From: tresorier@<domain>" that other servers (Gmail included) accept as the association's own.
#
# A milter (pymilter, Debian's python3-milter) on the submission ports only, before OpenDKIM. The header is accepted
# in a strict form only, never through a general address parser, so that no difference between this parser and a
# reader's can let another address through: at most one From: field, holding the login alone, or a display name and
# the login in angle brackets. The display name is a plain phrase or a quoted string without backslashes, with no
# "@", "<", ">" or "," outside quotes and no "@" in it anywhere (a name that looks like another address is refused too).
# No From: at all is left to Postfix, which adds one with the envelope sender (always_add_missing_headers).
import re
import sys
from email.header import decode_header

import Milter

PHRASE = r'[^"<>,;:@\\()\[\]\x00-\x1f\x7f]*'
QUOTED = r'"[^"\\@\x00-\x1f\x7f]*"'


def own_from(value, login):
    """True when the From: field `value` names `login` and nothing else, in one of the accepted forms."""
    unfolded = re.sub(r'\r?\n[ \t]', ' ', value).strip()
    addr = re.escape(login)
    bare = rf'(?i:{addr})'
    named = rf'({QUOTED}|{PHRASE})\s*<\s*(?i:{addr})\s*>'
    if re.fullmatch(bare, unfolded):
        return True
    m = re.fullmatch(named, unfolded)
    return m is not None and '@' not in shown_name(m.group(1))


def shown_name(phrase):
    """The display name as a mail program shows it, its encoded words (RFC 2047) decoded; '@' when it cannot be."""
    try:
        return ''.join(p.decode(c or 'ascii', 'replace') if isinstance(p, bytes) else p for p, c in decode_header(phrase))
    except Exception:
        return '@'


class FromIsLogin(Milter.Base):
    def __init__(self):
        self.login = None
        self.froms = []

    def envfrom(self, mailfrom, *params):
        self.login = self.getsymval('{auth_authen}')
        self.froms = []
        # Not logged in: not a submission this milter checks (it runs on the submission ports only, all logged in).
        return Milter.CONTINUE if self.login else Milter.ACCEPT

    def header(self, name, value):
        if name.lower() == 'from':
            self.froms.append(value)
        return Milter.CONTINUE

    def eom(self):
        if not self.froms or (len(self.froms) == 1 and own_from(self.froms[0], self.login)):
            return Milter.ACCEPT
        self.setreply('553', '5.7.1', 'The From: header must be your own address (%s), alone' % self.login)
        return Milter.REJECT


def main():
    if len(sys.argv) == 3 and sys.argv[1] == '--check':
        # cattery-from-check --check <login>: one JSON string per line on stdin (a From: value), "1" or "0" per line on
        # stdout, whether it would be accepted (the tests' many generated values in one run).
        import json
        for line in sys.stdin:
            print('1' if own_from(json.loads(line), sys.argv[2]) else '0')
        return
    Milter.factory = FromIsLogin
    Milter.set_flags(0)
    Milter.runmilter('cattery-from-check', 'inet:8894@127.0.0.1', 60)


if __name__ == '__main__':
    main()
