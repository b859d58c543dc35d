// Moving instances between servers on three real engines (the swarm fixture's dind nodes, used as plain engines:
// servers added with their endpoints), which share no folder with cattery's machine: restic runs on the nodes' engines
// with the repository's password carried in a volume of files (backups/backups.ts), against an SFTP repository beside
// them. Draining a server moves the stateless instance and says why the stateful one cannot (no backup repository
// yet); a repository that is a folder on cattery's machine is refused with its own error before anything stops; a
// planned move keeps the data, drops the old volume and journals its downtime, and leaves no password behind; a move
// whose restore fails (the target cannot reach the repository) goes back with nothing lost; killing a node's engine
// leaves its stateful instance down and reported, and restoring it elsewhere brings its data back.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { addRepository, sshPublicKey } from '../../src/backups/backups.js';
import { LABEL_FILES_OF, containerName, ensureImageOn, serviceImageRef, volumeName } from '../../src/orchestrator/docker/index.js';
import { getInstance, getServer, serverOf } from '../../src/orchestrator/instances.js';
import { listOperations } from '../../src/orchestrator/journal.js';
import { downInstances, type drainPlan, type drainServer, moveInstance, restoreElsewhere, type RelocateDeps } from '../../src/orchestrator/relocate.js';
import { addServer } from '../../src/orchestrator/servers.js';
import { createSession } from '../../src/identity/sessions.js';
import { createUser } from '../../src/identity/users.js';
import { pageBrowser } from '../page-browser.js';
import { HEALTHY_WITHIN_MS, TEST_CATALOG, testRuntime, waitFor } from '../helpers.js';
import { hostIn } from '../services/beside.js';
import { busyboxService, serviceCatalog } from '../test-service.js';
import { startSftpRemote } from '../backups/sftp-remote.js';
import { execOn, startSwarmNodes } from './swarm-fixture.js';

t.test('moves, drains and restores elsewhere across three engines', async (t) => {
  const repoDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cattery-restic-'));
  t.teardown(() => fs.rmSync(repoDir, { recursive: true, force: true }));
  // The nodes before the runtime: teardowns run last first, so the runtime stops while the nodes still answer (or,
  // the killed one, refuse at once). Stopped after them, its last calls waited on addresses that no longer existed,
  // keeping the file alive minutes after its end.
  const swarm = await startSwarmNodes(t, { count: 3 });
  const catDir = await serviceCatalog(t, busyboxService('plain', { name: { fr: 'Sans volume', en: 'No volume' }, description: { fr: 'Un service sans volume.', en: 'A service without a volume.' }, volumes: [] }));
  const rt = await testRuntime(t, { catalogDirs: [...TEST_CATALOG, catDir], dockerTimeoutSeconds: 15 });
  const { db, config } = rt;
  const [n1, n2, n3] = swarm.nodes as [typeof swarm.nodes[0], typeof swarm.nodes[0], typeof swarm.nodes[0]];
  for (const [i, n] of swarm.nodes.entries()) addServer(db, { name: `n${i + 1}`, dockerEndpoint: n.endpoint });
  // The test machine's own engine (the "local" server) draws the most: placement prefers the nodes, whatever the
  // machine's load (a loaded machine refused a move to "local" its dry run had planned).
  t.equal((await rt.app.inject({ method: 'PUT', url: '/api/servers/local/energy', payload: { idleWatts: 200, maxWatts: 900, embodiedKgCo2e: 1000, serviceLifeYears: 6 } })).statusCode, 200);
  const local = rt.engines.engineFor(getServer(db, 'local'));
  for (const id of ['probe', 'plain']) await ensureImageOn(local, n1.engine, serviceImageRef(rt.catalog.services.get(id)!));
  const d: RelocateDeps = {
    db, catalog: rt.catalog, hosterId: config.hosterId, log: rt.log, backups: rt.backups, reconciler: rt.reconciler,
    instanceDeps: { db, catalog: rt.catalog, portRange: config.portRange, subnetPool: config.subnetPool },
  };
  for (const [service, slug] of [['probe', 'sonde'], ['plain', 'vide']]) {
    const r = await rt.app.inject({ method: 'POST', url: '/api/instances', payload: { service, slug, server: 'n1' } });
    t.equal(r.statusCode, 202, r.body);
  }
  for (const slug of ['sonde', 'vide']) await waitFor(`${slug} healthy`, () => getInstance(db, slug).observed === 'healthy', HEALTHY_WITHIN_MS);
  const sonde = containerName(config.hosterId, 'sonde');
  t.equal((await execOn(n1.docker, sonde, ['sh', '-c', 'echo "lettre du lundi" > /data/lettre'])).code, 0, 'a file written on n1');

  // Draining n1 with no repository: the stateless one moves, the stateful one cannot, and the plan says so first.
  const planned = await rt.app.inject({ method: 'POST', url: '/api/servers/n1/drain?dryRun=true' });
  t.equal(planned.statusCode, 200, planned.body);
  const plan = planned.json() as Awaited<ReturnType<typeof drainPlan>>;
  t.same(plan.moves.map((m) => m.slug), ['vide'], 'the plan moves the stateless instance');
  t.match(plan.cannot, [{ slug: 'sonde', why: /no backup repository/ }], 'and says why the stateful one stays');
  t.equal(serverOf(db, getInstance(db, 'vide')).name, 'n1', 'a dry run moves nothing');
  const drainedReply = await rt.app.inject({ method: 'POST', url: '/api/servers/n1/drain' });
  t.equal(drainedReply.statusCode, 200, drainedReply.body);
  const drained = drainedReply.json() as Awaited<ReturnType<typeof drainServer>>;
  t.same(drained.moved.map((m) => m.slug), ['vide'], 'drain moved it');
  t.match(drained.cannot, [{ slug: 'sonde', why: /no backup repository/ }], 'and says what it could not move');
  t.not(serverOf(db, getInstance(db, 'vide')).name, 'n1', `vide now on ${serverOf(db, getInstance(db, 'vide')).name}`);
  t.equal(getInstance(db, 'vide').observed, 'healthy', 'and healthy there');
  await t.rejects(moveInstance(d, 'sonde', 'n2', 'test'), { code: 'CATTERY_ERR_CONFLICT', message: /no backup repository/ }, 'a stateful move without a repository is refused');
  t.equal(serverOf(db, getInstance(db, 'sonde')).name, 'n1', 'and nothing moved');

  // The repository: an SFTP server on the nodes' network (the first registered: the one moves go through), and a
  // folder on cattery's machine, which the nodes do not have.
  const key = await sshPublicKey(rt.backups, local);
  const remote = await startSftpRemote(t, { hosterId: config.hosterId, subnetPool: '', key, on: { network: swarm.network, address: hostIn(swarm.subnet, 200) } });
  await waitFor('the repository made over SFTP', () => addRepository(rt.backups, { name: 'offsite', url: remote.url('/srv/backups/cattery'), network: swarm.network, everyHours: 0 }, 'test')
    .catch((err: Error) => { if (/connection refused|EOF|closed/i.test(err.message)) return undefined; throw err; }), 60_000, 1000);
  await addRepository(rt.backups, { name: 'local', url: `${repoDir}/repo`, everyHours: 0 }, 'test');
  await t.rejects(moveInstance({ ...d, repository: 'local' }, 'sonde', 'n2', 'test'), { code: 'CATTERY_ERR_BACKUP_REPO_UNREACHABLE', message: /folder on cattery's own machine.*SFTP or S3/ },
    'a folder on cattery\'s machine is no repository for the nodes: said before anything stops');
  t.equal(getInstance(db, 'sonde').desired, 'running', 'and sonde was never stopped');

  // A planned move: the data follows, the old volume goes, the downtime is journaled.
  const movedReply = await rt.app.inject({ method: 'POST', url: '/api/instances/sonde/move', payload: { server: 'n2' } });
  t.equal(movedReply.statusCode, 200, movedReply.body);
  const moved = movedReply.json() as Awaited<ReturnType<typeof moveInstance>>;
  t.ok(moved.downtimeSeconds > 0 && moved.snapshot, `moved in ${moved.downtimeSeconds} s of downtime (${moved.steps.map((s) => `${s.step} ${s.ms} ms`).join(', ')})`);
  t.equal(serverOf(db, getInstance(db, 'sonde')).name, 'n2', 'the instance is on n2');
  t.equal(getInstance(db, 'sonde').observed, 'healthy', 'healthy');
  t.equal((await execOn(n2.docker, sonde, ['cat', '/data/lettre'])).out.trim(), 'lettre du lundi', 'its file came along');
  await t.rejects(n1.docker.getVolume(volumeName(config.hosterId, 'sonde', 'data')).inspect(), undefined, 'the old volume is dropped');
  const done = listOperations(db, 'sonde').find((o) => o.kind === 'move' && o.status === 'done');
  t.ok(done && typeof (done.detail as { downtimeSeconds?: number }).downtimeSeconds === 'number', 'the move and its downtime are journaled');
  // Restic ran on n1 and n2 with no bind of cattery's folder: the password went in a volume of its run, gone after it.
  for (const n of [n1, n2]) {
    const left = await n.docker.listVolumes({ filters: { label: [LABEL_FILES_OF] } });
    t.same((left.Volumes ?? []).map((v) => v.Name), [], `no volume holding the password is left on ${n.name}`);
    t.ok(await n.docker.getVolume(`${config.hosterId}-restic-cache`).inspect(), `restic's cache is a volume of its own on ${n.name}`);
  }

  // A move whose restore fails after the stop: back on n2, data untouched, nothing left on n3. n3's engine has a
  // network of the repository's network's name, internal: restic there joins it, and reaches nothing.
  await n3.docker.createNetwork({ Name: swarm.network, Internal: true });
  t.equal((await execOn(n2.docker, sonde, ['sh', '-c', 'echo "lettre du mardi" > /data/mardi'])).code, 0);
  await t.rejects(moveInstance(d, 'sonde', 'n3', 'test'), { code: 'CATTERY_ERR_CONFLICT', message: /failed at restore.*runs on n2 again/ });
  t.equal(serverOf(db, getInstance(db, 'sonde')).name, 'n2', 'rolled back to n2');
  t.equal(getInstance(db, 'sonde').observed, 'healthy', 'healthy again');
  t.equal((await execOn(n2.docker, sonde, ['cat', '/data/lettre', '/data/mardi'])).out.trim(), 'lettre du lundi\nlettre du mardi', 'nothing lost');
  await t.rejects(n3.docker.getVolume(volumeName(config.hosterId, 'sonde', 'data')).inspect(), undefined, 'nothing left on n3');
  const failed = listOperations(db, 'sonde').find((o) => o.kind === 'move' && o.status === 'failed');
  t.match(failed?.detail, { step: 'restore', rolledBack: true }, 'the failed move is journaled with its rollback');

  // n2's engine dies: sonde stays down there (pinned), reported; restored on n1 from its latest snapshot.
  await swarm.kill(n2);
  const down = await downInstances(d);
  t.match(down.find((x) => x.slug === 'sonde'), { server: 'n2', stateful: true }, 'reported down');
  t.equal(serverOf(db, getInstance(db, 'sonde')).name, 'n2', 'and not moved by anything');
  await t.rejects(restoreElsewhere(d, 'vide', serverOf(db, getInstance(db, 'vide')).name, 'test'), undefined, 'restoring where it is is refused');
  // The admin page says so, and its form restores the latest snapshot on the server chosen.
  const admin = await createUser(db, { login: 'srv-admin', name: 'Admin', roles: ['admin'] });
  const browser = pageBrowser(rt.app, { authorization: null });
  browser.jar.set('cattery_session', createSession(db, { idleMinutes: 60, maxHours: 1 }, admin.id, 'password'));
  const adminPage = (await browser.get('/admin?lang=en')).body;
  t.match(adminPage, /sonde \(probe\)<\/td><td class="err">n2 — does not answer/, 'the admin page shows it down');
  t.match(adminPage, 'action="/admin/instances/sonde/restore-elsewhere"', 'with the restore action');
  const posted = await browser.post('/admin/instances/sonde/restore-elsewhere', { server: 'n1' }, { csrfFrom: '/admin' });
  t.equal(posted.headers.location, '/admin?srv=restored#servers', 'restored');
  t.equal(serverOf(db, getInstance(db, 'sonde')).name, 'n1', 'on n1 now');
  t.equal(getInstance(db, 'sonde').observed, 'healthy', 'healthy on n1');
  t.equal((await execOn(n1.docker, sonde, ['cat', '/data/lettre', '/data/mardi'])).out.trim(), 'lettre du lundi\nlettre du mardi', 'its data is back');
  t.ok(listOperations(db, 'sonde').some((o) => o.kind === 'restore-elsewhere' && o.status === 'done'), 'journaled');

  // An older copy of its volume on a target (what a server that comes back after a restore elsewhere keeps) may hold
  // what no backup has: a move there is refused before anything stops, and the copy is left as it is.
  const old = volumeName(config.hosterId, 'sonde', 'data');
  await n3.docker.createVolume({ Name: old, Labels: { 'cattery.hoster': config.hosterId, 'cattery.instance': 'sonde' } });
  await t.rejects(moveInstance(d, 'sonde', 'n3', 'test'), { code: 'CATTERY_ERR_CONFLICT', message: /older volume/ }, 'a move onto an older copy is refused');
  t.equal(serverOf(db, getInstance(db, 'sonde')).name, 'n1', 'sonde stays on n1');
  t.equal(getInstance(db, 'sonde').desired, 'running', 'and was never stopped');
  t.ok(await n3.docker.getVolume(old).inspect(), 'the older copy is still there');
});
