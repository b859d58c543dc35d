// Outside review of issue 14 (a new user follows the README to the letter). FAILS on purpose on the README as
// reviewed: "My services" says a resident may move "to another hoster the association federates with", and the
// issue's "done when" is "two associations can federate from a fresh clone", but the README never says how a hoster
// federates (add a peer by its https address, compare and confirm the fingerprint: /admin/federation or
// POST /api/federation/peers), never links docs/federation.md, and never says that a peer is reached over https only,
// so that the README's own default (CATTERY_PUBLIC_URL http://127.0.0.1:8080) can never be a peer or receive a move.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { ROOT } from '../helpers.js';

const README = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');

t.test('the README says how to federate, which moves need', async (t) => {
  t.match(README, /docs\/federation\.md/, 'it points to docs/federation.md');
  t.match(README, /\/admin\/federation|\/api\/federation\/peers/, 'it names where a peer is added and its fingerprint confirmed');
  t.match(README, /(peer|federat|mov)[^\n]*(https)|https[^\n]*(peer|federat|mov)/i, 'it says a peer (and a move) needs an https public address');
});
