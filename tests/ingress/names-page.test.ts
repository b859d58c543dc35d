// The administrators' page of front-door names (issue 10: "hostnames per instance, API and admin page"): an
// administrator gives an instance its names through the form; a refused list (hostile names, a name another instance
// holds, too many) changes nothing, answers 400 or 409, and comes back in its box with the reason, nothing typed
// lost; a resident or a mediator may not see or post it. The same checks as the API (ingress/names-change.ts), so
// the generated hostile names of hostnames.test.ts hold here too; a sample of each kind goes through the form.
import t from 'tap';
import { pino } from 'pino';
import { createUser } from '../../src/identity/users.js';
import { createInstance } from '../../src/orchestrator/instances.js';
import { hostnamesOf } from '../../src/ingress/store.js';
import { createRuntime } from '../../src/runtime.js';
import { pageBrowser } from '../page-browser.js';
import { removeHosterObjects, testConfig } from '../helpers.js';

const unescape = (s: string) => s.replace(/&#39;/g, "'").replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');

t.test('an administrator names instances on the page; a refused list changes nothing and is given back', async (t) => {
  const config = testConfig(t, { domains: ['asso.example', 'ville.example'] });
  const rt = await createRuntime(config, pino({ level: 'silent' }));
  t.teardown(async () => { await rt.close(); await removeHosterObjects(config.hosterId); });
  const deps = { db: rt.db, catalog: rt.catalog, portRange: config.portRange, subnetPool: config.subnetPool };
  // Rows only: the page stores names and wakes the door, which is off here.
  const pads = createInstance(deps, { service: 'pads', slug: 'pads', desired: 'stopped' }, 'test');
  const files = createInstance(deps, { service: 'files', slug: 'fichiers', desired: 'stopped' }, 'test');
  await createUser(rt.db, { login: 'admin.asso', name: 'Admin', roles: ['admin'], password: 'la phrase de l’admin' });
  await createUser(rt.db, { login: 'lea.martin', name: 'Léa Martin', roles: ['resident', 'mediator'], password: 'la phrase de Léa' });

  const admin = pageBrowser(rt.app, { authorization: null });
  t.equal((await admin.post('/login', { login: 'admin.asso', password: 'la phrase de l’admin' }, { csrfFrom: '/login' })).statusCode, 303);
  const list = await admin.get('/admin/names');
  t.equal(list.statusCode, 200);
  t.match(list.body, 'action="/admin/names/pads"');
  t.match(list.body, 'action="/admin/names/fichiers"');
  t.match((await admin.get('/admin')).body, 'href="/admin/names"', 'the admin page leads to it');

  const saved = await admin.post('/admin/names/pads', { names: 'Pads.asso.example.\r\nnotes.ville.example, pads.asso.example' }, { csrfFrom: '/admin/names' });
  t.equal(saved.statusCode, 303);
  t.equal(saved.headers.location, '/admin/names?done=pads');
  t.same(hostnamesOf(rt.db, pads.id), ['notes.ville.example', 'pads.asso.example'], 'stored as the API stores them: lower case, no final dot, once');
  const after = await admin.get('/admin/names?done=pads');
  t.match(after.body, 'https://pads.asso.example/');
  t.match(after.body, 'role="status"');

  // Refused lists, one of each kind: nothing of them is kept, the text comes back, the reason is said.
  const refusals: [string, number, RegExp][] = [
    ['fichiers.asso.example\n*.asso.example', 400, /\*\.asso\.example/],
    ['fichiers.asso.example\na..asso.example', 400, /a\.\.asso\.example/],
    ['fichiers.asso.example\nevil.test', 400, /evil\.test/],
    ['fichiers.asso.example\nxn--80ak6aa92e.asso.example', 400, /xn--80ak6aa92e/],
    ['fichiers.asso.example\nmta-sts.asso.example', 400, /mta-sts\.asso\.example/],
    ['fichiers.asso.example\npads.asso.example', 409, /already used by instance "pads"/],
    [Array.from({ length: 17 }, (_, i) => `h${i}.asso.example`).join('\n'), 400, /16/],
  ];
  for (const [text, status, reason] of refusals) {
    const r = await admin.post('/admin/names/fichiers', { names: text }, { csrfFrom: '/admin/names' });
    t.equal(r.statusCode, status, `${JSON.stringify(text.slice(0, 50))}: ${status}`);
    t.match(unescape(r.body), reason, 'the reason is on the page');
    t.ok(unescape(r.body).includes(`>${text}</textarea>`), 'what was typed is given back in its box');
    t.match(r.body, 'aria-invalid="true"');
    t.same(hostnamesOf(rt.db, files.id), [], 'nothing of a refused list is kept');
  }
  t.same(hostnamesOf(rt.db, pads.id), ['notes.ville.example', 'pads.asso.example'], 'the other instance\'s names are untouched');
  t.equal((await admin.post('/admin/names/personne', { names: 'x.asso.example' }, { csrfFrom: '/admin/names' })).statusCode, 404);
  t.equal((await admin.post('/admin/names/fichiers', { names: '' }, { csrfFrom: '/admin/names' })).statusCode, 303, 'an empty box takes every name away');

  // Not an administrator: neither the page nor the form.
  const lea = pageBrowser(rt.app, { authorization: null });
  t.equal((await lea.post('/login', { login: 'lea.martin', password: 'la phrase de Léa' }, { csrfFrom: '/login' })).statusCode, 303);
  t.equal((await lea.get('/admin/names')).statusCode, 403);
  t.equal((await lea.post('/admin/names/pads', { names: 'vole.asso.example' }, { csrfFrom: '/me' })).statusCode, 403);
  t.same(hostnamesOf(rt.db, pads.id), ['notes.ville.example', 'pads.asso.example']);
});
