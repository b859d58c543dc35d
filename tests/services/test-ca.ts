// A throwaway certificate authority for a test, made with openssl in a folder of its own (0700, removed at the end):
// its certificate is what the test's clients trust, and it issues server certificates for the names given. Valid two
// days: long enough for any run, short enough that a leaked one is worth nothing.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Test } from 'tap';

export interface TestCa {
  /** The CA's certificate (PEM): the only trust anchor the test gives its clients. */
  pem: string;
  /** A server certificate for `names` (the first is the subject's CN) and its key, both PEM. */
  issue(names: string[]): { cert: string; key: string };
}

export function testCa(t: Test, cn = 'cattery test CA'): TestCa {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cattery-ca-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.chmodSync(dir, 0o700);
  const f = (n: string) => path.join(dir, n);
  const ossl = (args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  ossl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', '2', '-subj', `/CN=${cn}`, '-keyout', f('ca.key'), '-out', f('ca.pem'),
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  fs.chmodSync(f('ca.key'), 0o600);
  let n = 0;
  return {
    pem: fs.readFileSync(f('ca.pem'), 'utf8'),
    issue(names) {
      const leaf = `leaf${++n}`;
      ossl(['req', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-subj', `/CN=${names[0]}`, '-keyout', f(`${leaf}.key`), '-out', f(`${leaf}.csr`)]);
      fs.chmodSync(f(`${leaf}.key`), 0o600);
      fs.writeFileSync(f(`${leaf}.ext`), `subjectAltName=${names.map((x) => `DNS:${x}`).join(',')}\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n`);
      ossl(['x509', '-req', '-in', f(`${leaf}.csr`), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '2', '-sha256', '-extfile', f(`${leaf}.ext`), '-out', f(`${leaf}.pem`)]);
      return { cert: fs.readFileSync(f(`${leaf}.pem`), 'utf8'), key: fs.readFileSync(f(`${leaf}.key`), 'utf8') };
    },
  };
}
