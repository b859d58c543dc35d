// The DKIM keys of a domain, read from its running mail instances through the real Docker engine (a busybox service
// of the test's standing in for the mail image: its command answers what `cattery-mail-admin dkim-show` answers).
// Every way the command can fail gives no key and no error: the DNS page must still be served.
import crypto from 'node:crypto';
import t from 'tap';
import { pino } from 'pino';
import { createDkimKeys, DKIM_SHOW } from '../../src/ingress/dkim-keys.js';
import { domainRecords } from '../../src/ingress/dns-records.js';
import { busyboxService, runtimeWithService } from '../test-service.js';

const manifest = busyboxService('fakemail', {
  name: { fr: 'Faux courriel', en: 'Fake mail' },
  description: { fr: 'Répond comme cattery-mail-admin dkim-show.', en: 'Answers as cattery-mail-admin dkim-show does.' },
  environment: { MAIL_DOMAIN: { required: true, overridable: true, pattern: '[a-z0-9.-]{4,253}' } },
});

const key = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
/** A shell command printing `json` with the instance's own MAIL_DOMAIN where `%s` is. */
const answering = (json: string) => ['/bin/sh', '-c', `printf '${json}' "$MAIL_DOMAIN"`];

t.test('keys from the running mail instance of the domain; nothing, never an error, when the command fails', async (t) => {
  const { rt, config } = await runtimeWithService(t, manifest);
  for (const [slug, domain] of [['mail-asso', 'asso.example'], ['mail-autre', 'autre.example']] as const) {
    const r = await rt.app.inject({ method: 'POST', url: '/api/instances?wait=true', payload: { service: 'fakemail', slug, env: { MAIL_DOMAIN: domain } } });
    t.equal(r.statusCode, 201, r.body);
  }
  const keysWith = (command: string[]) => createDkimKeys({
    db: rt.db, catalog: rt.catalog, hosterId: config.hosterId, engineFor: rt.engines.engineFor, log: pino({ level: 'silent' }), service: 'fakemail', command,
  });

  const good = keysWith(answering(`{"domain":"%s","keys":[{"selector":"Cattery2026","publicKey":"${key}","active":true},{"selector":"cattery2025","publicKey":"${key.slice(0, 100)}","active":false},{"selector":"bad\\\\"; p=","publicKey":"${key}"}]}`));
  const keys = await good('asso.example');
  t.same(keys, [{ selector: 'cattery2026', publicKey: key, active: true }, { selector: 'cattery2025', publicKey: key.slice(0, 100), active: false }],
    'both keys, selector lower-cased, the hostile selector left out');
  t.same(await good('ASSO.example'), keys, 'the domain without case');
  t.equal(domainRecords({ domain: 'asso.example', hostnames: [], dkim: keys }).filter((r) => r.name.endsWith('._domainkey.asso.example.')).length, 2);
  t.equal((await good('autre.example')).length, 2, 'the other domain\'s instance answers for its own');
  t.same(await good('nowhere.example'), [], 'no mail instance for the domain');

  t.same(await keysWith(DKIM_SHOW)('asso.example'), [], 'an image without the command (the real argv, absent from busybox)');
  t.same(await keysWith(['/bin/sh', '-c', 'echo oops >&2; exit 3'])('asso.example'), [], 'a command that fails');
  t.same(await keysWith(['/bin/sh', '-c', 'echo not json'])('asso.example'), [], 'an answer that is not JSON');
  t.same(await keysWith(answering('{"domain":"evil.example","keys":[{"selector":"s","publicKey":"' + key + '"}]}'))('asso.example'), [], 'an answer for another domain');
  t.same(await keysWith(['/bin/sh', '-c', 'exec yes'])('asso.example'), [], 'an answer without end, cut at its cap');

  // Stopped: not asked at all.
  t.equal((await rt.app.inject({ method: 'POST', url: '/api/instances/mail-asso/stop?wait=true' })).statusCode, 200);
  t.same(await good('asso.example'), [], 'a stopped instance is not asked');
});
