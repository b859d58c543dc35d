// What the door allows a client, in the configuration cattery loads (the outside review of issue 10 found none):
// every server Caddy runs for it has a deadline for the request head (also the TLS handshake's in Go), offers
// HTTP/1.1 and HTTP/2 only, and the door's container tells Go's collector a heap limit below its memory limit. The
// behaviour itself (a silent connection let go) is tested against the real door in front-door.test.ts.
import t from 'tap';
import { caddyConfig, type IngressPlan } from '../../src/ingress/caddy-config.js';
import { buildIngressSpec, GO_MEMORY_LIMIT_MIB, MEMORY_MIB } from '../../src/orchestrator/docker/ingress.js';

const site = (h: string, websocket: boolean) => ({ hostnames: [h], upstream: `x-${h}:80`, maxBodyBytes: 1 << 20, timeoutSeconds: 60, websocket });
const plans: IngressPlan[] = [
  { sites: [], certOnly: [], acme: { directory: 'https://acme.example/directory', trustRoot: false }, hstsSeconds: 0 },
  { sites: [site('pads.asso.example', true), site('fichiers.asso.example', false)], certOnly: ['mail.asso.example'], acme: { directory: 'https://acme.example/directory', trustRoot: true }, hstsSeconds: 31536000 },
];

t.test('every server of every configuration bounds the request head and speaks h1/h2 only; both ports are cattery\'s', async (t) => {
  for (const plan of plans) {
    const servers = (caddyConfig(plan) as { apps: { http: { servers: Record<string, { listen: string[]; read_header_timeout?: string; read_timeout?: string; protocols?: string[] }> } } }).apps.http.servers;
    t.same(Object.values(servers).flatMap((s) => s.listen).sort(), [':443', ':80'], 'port 80 is a server of cattery\'s, not one Caddy makes with its defaults');
    for (const [name, s] of Object.entries(servers)) {
      t.equal(s.read_header_timeout, '10s', `${name}: a deadline for the head (and the handshake)`);
      t.equal(s.read_timeout, undefined, `${name}: none for the body (a slow upload of a large file goes on)`);
      t.same(s.protocols, ['h1', 'h2'], `${name}: no HTTP/3 announced (UDP 443 is not published)`);
    }
  }
});

t.test('the door\'s Go heap limit is below its container\'s memory limit', async (t) => {
  const spec = buildIngressSpec('tdoor0000', { image: 'i', runDir: '/tmp/x', bindAddress: '127.0.0.1', subnet: '10.0.0.240/28', httpPort: 0, httpsPort: 0 });
  t.ok(spec.Env?.includes(`GOMEMLIMIT=${GO_MEMORY_LIMIT_MIB}MiB`));
  t.equal(spec.HostConfig?.Memory, MEMORY_MIB * 1024 * 1024);
  t.ok(GO_MEMORY_LIMIT_MIB < MEMORY_MIB * 0.85, 'room for what is not Go heap');
});
