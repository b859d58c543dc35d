// Cattery's own answers compressed (src/http/compress.ts): pages and the stylesheet for the person's own browser, byte
// for byte the same once decoded; nothing compressed for a cross-site request (BREACH), for a client that does not
// say where it comes from, nor when the client does not accept it; the open data keeps its ETag and its 304; a stream
// (an export) is never touched; and for any Accept-Encoding, only a coding the client accepts.
import { Readable } from 'node:stream';
import zlib from 'node:zlib';
import t from 'tap';
import fc from 'fast-check';
import { pino } from 'pino';
import { createRuntime } from '../../src/runtime.js';
import { compressReply, pickEncoding } from '../../src/http/compress.js';
import { testConfig } from '../helpers.js';

const OWN = { 'sec-fetch-site': 'same-origin', 'accept-encoding': 'gzip, deflate, br, zstd' };
const decode = (coding: unknown, b: Buffer) => coding === 'br' ? zlib.brotliDecompressSync(b) : coding === 'gzip' ? zlib.gunzipSync(b) : b;

t.test('pages and the stylesheet, compressed for the own site only', async (t) => {
  const rt = await createRuntime(testConfig(t), pino({ level: 'silent' }));
  t.teardown(() => rt.close());
  const get = (url: string, headers: Record<string, string>) => rt.app.inject({ method: 'GET', url, headers });

  const plainCss = await get('/assets/cattery.css', {});
  t.equal(plainCss.headers['content-encoding'], undefined, 'no Accept-Encoding, no Sec-Fetch-Site: as is');
  for (const [ae, coding] of [['br', 'br'], ['gzip', 'gzip'], ['gzip, deflate, br, zstd', 'br'], ['br;q=0, gzip', 'gzip']] as const) {
    const r = await get('/assets/cattery.css', { ...OWN, 'accept-encoding': ae });
    t.equal(r.headers['content-encoding'], coding, `${ae}: ${coding}`);
    t.ok(decode(coding, r.rawPayload).equals(plainCss.rawPayload), `${coding}: the stylesheet byte for byte`);
    t.equal(Number(r.headers['content-length']), r.rawPayload.length, 'its length is the compressed one');
    t.match(r.headers.vary, /Accept-Encoding/);
  }

  // A page: compressed for the own site or the person's own navigation, as is for anything else.
  for (const site of ['same-origin', 'none']) {
    const r = await get('/login?next=/me', { ...OWN, 'sec-fetch-site': site });
    t.equal(r.headers['content-encoding'], 'br', `Sec-Fetch-Site ${site}: compressed`);
    t.match(decode('br', r.rawPayload).toString('utf8'), /<\/html>\s*$/, 'a whole page once decoded');
  }
  for (const site of ['cross-site', 'same-site', undefined]) {
    const headers: Record<string, string> = { 'accept-encoding': 'br, gzip' };
    if (site) headers['sec-fetch-site'] = site;
    const r = await get('/login?next=/me', headers);
    t.equal(r.headers['content-encoding'], undefined, `Sec-Fetch-Site ${site ?? 'absent'}: never compressed (BREACH)`);
    t.match(r.body, /<\/html>\s*$/);
  }
  t.equal((await get('/login', { ...OWN, 'accept-encoding': 'identity' })).headers['content-encoding'], undefined, 'identity only: as is');
  t.equal((await rt.app.inject({ method: 'HEAD', url: '/login', headers: OWN })).headers['content-encoding'], undefined, 'HEAD: as is');

  // The open data keeps its strong ETag, and revalidates to a 304.
  const data = await get('/open-data/datapackage.json', OWN);
  t.equal(data.statusCode, 200);
  t.equal(data.headers['content-encoding'], undefined, 'an answer with an ETag is sent as is');
  t.equal((await get('/open-data/datapackage.json', { ...OWN, 'if-none-match': String(data.headers.etag) })).statusCode, 304);

  // A stream (an export, a restic stream) goes out untouched, whatever its type.
  const stream = Readable.from([Buffer.alloc(4096)]);
  const reply = { getHeader: (h: string) => (h === 'content-type' ? 'text/plain' : undefined), header: () => reply, statusCode: 200 };
  t.equal(await compressReply({ method: 'GET', headers: OWN } as never, reply as never, stream), stream, 'a stream is never compressed');

  // Any Accept-Encoding: only a coding the header accepts with a weight above zero.
  fc.assert(fc.property(
    fc.array(fc.tuple(fc.constantFrom('br', 'gzip', 'x-gzip', 'BR', 'identity', '*', 'deflate', 'zstd', ''), fc.constantFrom('', ';q=0', ';q=0.5', ';q=1', ';q=x', ';q=1.5')), { maxLength: 5 }),
    (parts) => {
      const header = parts.map(([a, b]) => a + b).join(', ');
      const got = pickEncoding(header);
      if (!got) return true;
      const weight = (name: string) => {
        let w: number | undefined;
        for (const [a, b] of parts) {
          const n = a.toLowerCase() === 'x-gzip' ? 'gzip' : a.toLowerCase();
          if (n === name) w = b === '' ? 1 : /^;q=(0(\.\d+)?|1)$/.test(b) ? Number(b.slice(3)) : 0;
        }
        return w;
      };
      return (weight(got) ?? weight('*') ?? 0) > 0;
    }), { numRuns: 500 });
  t.pass('500 generated Accept-Encoding headers: only accepted codings');
});
