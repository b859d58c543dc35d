// Which snapshots an instance may be restored from (backups.ts snapshotsOf), over generated repositories: only this
// hoster's, only of the instance's service, and none taken before the instance was made (a slug freed by a delete and
// taken again must not be given the old instance's data).
import t from 'tap';
import fc from 'fast-check';
import { snapshotsOf } from '../../src/backups/backups.js';
import type { Snapshot } from '../../src/backups/restic.js';

const snap = fc.record({
  host: fc.constantFrom('tabc', 'tother'),
  service: fc.constantFrom('mail', 'files', 'pads'),
  at: fc.integer({ min: Date.parse('2026-01-01T00:00:00Z'), max: Date.parse('2026-12-31T00:00:00Z') }),
}).map((x): Snapshot => ({
  id: `${x.host}-${x.service}-${x.at}`, shortId: 'x', time: new Date(x.at).toISOString().replace('Z', '123456+00:00'),
  host: x.host, tags: ['cattery', 'instance:same-slug', `service:${x.service}`], paths: [],
}));

t.test('only this hoster\'s snapshots of the same service, none older than the instance', async (t) => {
  fc.assert(fc.property(fc.array(snap, { maxLength: 30 }), fc.constantFrom('mail', 'files'), fc.option(fc.integer({ min: Date.parse('2026-01-01T00:00:00Z'), max: Date.parse('2026-12-31T00:00:00Z') }), { nil: undefined }), (snaps, service, created) => {
    const notBefore = created === undefined ? undefined : new Date(created).toISOString();
    const got = snapshotsOf(snaps, 'tabc', service, notBefore);
    const want = snaps.filter((s) => s.host === 'tabc' && s.tags.includes(`service:${service}`) && (created === undefined || Date.parse(s.time) >= created));
    return JSON.stringify(got) === JSON.stringify(want) && got.every((s) => s.host === 'tabc' && !s.tags.some((x) => x.startsWith('service:') && x !== `service:${service}`));
  }), { numRuns: 500 });
  const made = '2026-06-01T12:00:00.000Z';
  const old: Snapshot = { id: 'old', shortId: 'old', time: '2026-05-31T12:00:00.5+00:00', host: 'tabc', tags: ['instance:x', 'service:mail'], paths: [] };
  const fresh: Snapshot = { ...old, id: 'new', time: '2026-06-02T08:00:00+02:00' };
  t.same(snapshotsOf([old, fresh], 'tabc', 'mail', made).map((s) => s.id), ['new'], 'the old instance\'s snapshot is not taken');
});
