// Outside review of services/mail/import.sh, on a real mail instance. Its subtest is a defect that review found (now fixed).
//
// Found in review (medium): account.sh takes the instance's one accounts lock (flock on
// $state/lock) before any operation, and import_archive reads its whole archive from stdin *under that lock* (then
// lists, extracts and chowns it). An import receiving a large archive, or one fed slowly (an admin's upload over a
// slow link, up to importAccount's 600 s deadline; or an import cut by cattery, which Docker does not kill), holds
// every other account operation of every other resident: a password change (and the sign-in password sync), a
// create, a suspension wait past cattery's 60 s deadline and fail or are deferred. The archive could be received and
// checked without the lock, which is needed only for the account check and the swap (files' import does so).
// Worse, the password change cattery gave up on (502) is still waiting on the lock in the container: it is applied
// once the import ends, after cattery told the admin it failed (same root as exec-hostile.test.ts's first defect).
import t from 'tap';
import { HEALTHY_WITHIN_MS, docker, execIn, testRuntime, waitFor } from '../helpers.js';

t.test('a mail import being received does not hold the other residents\' operations', async (t) => {
  const rt = await testRuntime(t);
  const { app, config } = rt;
  const slug = 'lock-mail';
  const made = await app.inject({ method: 'POST', url: '/api/instances', payload: { service: 'mail', slug, env: { MAIL_DOMAIN: 'quartier.test' } } });
  t.equal(made.statusCode, 202, made.body);
  await waitFor('mail healthy', async () => (await app.inject(`/api/instances/${slug}`)).json().observed === 'healthy', HEALTHY_WITHIN_MS, 500);
  for (const username of ['alice', 'bob']) {
    const r = await app.inject({ method: 'POST', url: `/api/instances/${slug}/accounts`, payload: { username, password: `le secret de ${username} 2026`, quotaMb: 20 } });
    t.equal(r.statusCode, 201, r.body);
  }

  // An import of alice's whose archive is still arriving: the request line and one block, stdin left open.
  const exec = await docker.getContainer(`${config.hosterId}-${slug}`).exec({
    Cmd: ['/usr/local/bin/cattery-account', 'import'], AttachStdin: true, AttachStdout: true, AttachStderr: true, Tty: false,
  });
  const stream = await exec.start({ hijack: true, stdin: true });
  stream.on('error', () => undefined);
  stream.write('{"username":"alice","quotaMb":20}\n');
  stream.write(Buffer.alloc(512, 0x61));
  t.teardown(() => stream.destroy());
  // The import has started reading (it takes the lock only around its own short steps).
  await waitFor('the import reading its archive', async () => (await exec.inspect()).Running, 10_000, 100);
  await new Promise((r) => setTimeout(r, 1000));
  // Free at some moment while the import still waits for its archive: another operation (the usage poll, a health
  // check's own) may hold the lock for an instant when it is tried once, as it did in a loaded run; an import holding
  // it would hold it at every try.
  const tries: string[] = [];
  for (let i = 0; i < 20 && tries[tries.length - 1] !== 'free'; i++) {
    if (i) await new Promise((r) => setTimeout(r, 250));
    tries.push((await execIn(`${config.hosterId}-${slug}`, ['sh', '-c', 'flock -n /var/lib/cattery-mail/lock true && echo free || echo held'])).out.trim());
  }
  t.equal(tries[tries.length - 1], 'free', `the import does not hold the instance's accounts lock while it receives the archive (${tries.join(', ')})`);
  t.ok((await exec.inspect()).Running, 'the import was still receiving its archive then');

  await t.test('bob\'s password change goes through while alice\'s archive arrives', async (t) => {
    const r = await app.inject({ method: 'PATCH', url: `/api/instances/${slug}/accounts/bob`, payload: { password: 'le nouveau secret de bob 2026' } });
    t.equal(r.statusCode, 200, `applied now, not deferred or failed: ${r.statusCode} ${r.body.slice(0, 300)}`);
  });
  stream.destroy();
});
