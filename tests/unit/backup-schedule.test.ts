// When a backup or check is due, for any period and any last run: never with a period of 0, always when nothing ran
// yet, and exactly once a whole period has passed since the last start (a failure counts: it is retried next period).
// And restic's repository addresses: what cattery accepts it can put on a command line, whatever is typed.
import fc from 'fast-check';
import t from 'tap';
import { isDue } from '../../src/backups/schedule.js';
import { parseRepoUrl, repoArgs } from '../../src/backups/restic.js';

const NOW = Date.parse('2026-12-03T12:00:00Z');

t.test('isDue over generated periods and last runs', async (t) => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 24 * 31 }), fc.integer({ min: 0, max: 60 * 24 * 60 }), (hours, minutesAgo) => {
    const last = new Date(NOW - minutesAgo * 60_000).toISOString();
    const due = isDue(hours, last, NOW);
    return hours === 0 ? !due : due === (minutesAgo * 60_000 >= hours * 3_600_000);
  }), { numRuns: 2000 });
  t.equal(isDue(24, null, NOW), true, 'nothing ran yet');
  t.equal(isDue(0, null, NOW), false, 'by hand only');
  t.equal(isDue(24, 'not a time', NOW), true, 'an unreadable time is treated as never');
});

t.test('repository addresses: accepted ones are safe arguments, the rest refused with a reason', async (t) => {
  for (const ok of ['/srv/backups/cattery', 'sftp:backup@backup.asso.example:/srv/cattery', 'sftp://restic@10.0.0.2:2222/data/cattery', 's3:https://s3.example.org/bucket/cattery']) {
    t.doesNotThrow(() => parseRepoUrl(ok), ok);
  }
  fc.assert(fc.property(fc.string({ maxLength: 80 }), (raw) => {
    let loc;
    try { loc = parseRepoUrl(raw); } catch (err) { return (err as { code?: string }).code === 'CATTERY_ERR_VALIDATION'; }
    // Whatever was accepted: no space, no quote, no shell or ssh option smuggled into the sftp command line.
    return repoArgs(loc).every((a) => !/[\s'"`;$\\]/.test(a.replace(/^sftp\.command=.*$/, ''))) && !(loc.kind === 'sftp' && /^-/.test(loc.user + loc.host));
  }), { numRuns: 3000 });
  for (const bad of ['relative/path', '/srv/../etc', 'sftp:-oProxyCommand=x@h:/p', 'sftp:u@h;rm:/p', 'sftp://u@h:99999/p', 'ftp://h/p', '/srv/a b']) {
    t.throws(() => parseRepoUrl(bad), { code: 'CATTERY_ERR_VALIDATION' }, bad);
  }
});
