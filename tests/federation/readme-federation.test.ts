// The README says how a hoster federates, which moving a resident needs (issue 14's "done when": two associations
// federate from a fresh clone): where a peer is added and its fingerprint confirmed (/admin/federation or
// POST /api/federation/peers), a link to docs/federation.md, and that a peer (and a move) is reached over https only,
// so that the README's own default CATTERY_PUBLIC_URL (http://127.0.0.1:8080) can be no peer.
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
