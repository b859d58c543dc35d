import t from 'tap';
import { Errors, fail, isCatteryError } from '../../src/errors.js';
import { loadConfig } from '../../src/config.js';

t.test('every error key equals its code and has a status', async (t) => {
  for (const [key, Ctor] of Object.entries(Errors)) {
    const e = new (Ctor as unknown as new (a?: string) => Error & { code: string; statusCode: number })('x');
    t.equal(e.code, key);
    t.ok(e.statusCode >= 400 && e.statusCode < 600, `${key} has an HTTP status`);
  }
  const e = fail('CATTERY_ERR_NOT_FOUND', 'No instance "x"', new Error('inner'));
  t.ok(isCatteryError(e));
  t.equal(e.message, 'No instance "x"');
  t.notOk(isCatteryError(new Error('plain')));
});

t.test('config is validated once, with the variable named', async (t) => {
  const ok = loadConfig({});
  t.equal(ok.host, '127.0.0.1', 'loopback by default');
  t.equal(ok.publishAddress, '127.0.0.1');
  t.throws(() => loadConfig({ CATTERY_PORT: 'eighty' }), /port/);
  t.throws(() => loadConfig({ CATTERY_HOSTER_ID: 'Bad Id;' }), /hosterId/);
  t.throws(() => loadConfig({ CATTERY_PORT_RANGE: '30000-20000' }), /PORT_RANGE/);
  t.throws(() => loadConfig({ CATTERY_PUBLISH_ADDRESS: '0.0.0.0; rm' }), /publishAddress/);
  t.throws(() => loadConfig({ CATTERY_ADMIN_TOKEN: 'short' }), /adminToken/);
});
