// Cattery's own isolation rule per instance network, in front of Docker's. Docker 20.10 separates bridge networks
// with its DOCKER-ISOLATION chains; under load (many networks made and removed at once) a fresh-clone test run saw
// one instance reach another's HTTP port. So, for each instance bridge on the local engine, cattery also inserts
// into DOCKER-USER (which Docker evaluates first and never rewrites):
//   -i <bridge> ! -o <bridge> -d <cattery's subnet pool> -j DROP
// i.e. nothing leaving an instance's bridge may reach another instance's address; the Internet and the host stay
// reachable, and replies are dropped by the other network's own rule. It is added before any container joins the
// network, and removed with the network. A link's network (link-pass.ts) gets that rule too, and inside it only
// the declared ports from the linking container to the linked one, their replies, and nothing else: traffic between
// two containers of one bridge passes FORWARD with -i and -o both the bridge (net.bridge.bridge-nf-call-iptables,
// which Docker sets). iptables runs through execFile with an argument array (no shell); it needs root on the
// engine's host, and without it cattery says so once and relies on Docker's rules alone (a link's ports then all
// open between its two containers, which are still the only ones on it).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Logger } from '../log.js';

const run = promisify(execFile);
const BRIDGE = /^[A-Za-z0-9_.-]{1,15}$/;
const IPV4 = /^(\d{1,3}\.){3}\d{1,3}$/;
const POOL = /^(\d{1,3}\.){3}\d{1,3}\/\d{1,2}$/;

/** A link network's one way through (orchestrator/link-pass.ts): from the linking container to the declared ports of
 * the linked one, and the replies; nothing else between them. */
export interface LinkRule { source: string; target: string; ports: { port: number; protocol: 'tcp' | 'udp' }[] }

export interface Firewall {
  /** Make sure the rule for this bridge is in place (idempotent). */
  guard(bridge: string): Promise<void>;
  release(bridge: string): Promise<void>;
  /** A link network's bridge: the isolation rule, and only `rule`'s ports open inside it (idempotent). */
  guardLink(bridge: string, rule: LinkRule): Promise<void>;
  /** Every rule of ours that names this bridge, gone. */
  releaseLink(bridge: string): Promise<void>;
  /** Whether cattery's own rules are in force here (root, iptables, a DOCKER-USER chain). */
  active(): Promise<boolean>;
}

export const bridgeOf = (networkId: string) => `br-${networkId.slice(0, 12)}`;

export function createFirewall(opts: { pool: string; hosterId: string; log: Logger; iptables?: string }): Firewall {
  const bin = opts.iptables ?? 'iptables';
  if (!POOL.test(opts.pool)) throw new Error(`bad subnet pool ${opts.pool}`);
  let available: Promise<boolean> | undefined;
  const spec = (bridge: string) => ['-i', bridge, '!', '-o', bridge, '-d', opts.pool, '-m', 'comment', '--comment', `cattery:${opts.hosterId}`, '-j', 'DROP'];

  function active(): Promise<boolean> {
    available ??= (async () => {
      if (process.getuid?.() !== 0) {
        opts.log.warn('not root: cattery adds no isolation rules of its own; Docker\'s DOCKER-ISOLATION rules alone separate instances');
        return false;
      }
      try {
        await run(bin, ['-w', '5', '-n', '-L', 'DOCKER-USER'], { timeout: 10_000 });
        return true;
      } catch (err) {
        opts.log.warn({ err: (err as Error).message }, 'no iptables DOCKER-USER chain: Docker\'s isolation rules alone separate instances');
        return false;
      }
    })();
    return available;
  }

  const tag = ['-m', 'comment', '--comment', `cattery:${opts.hosterId}`];
  /** A link bridge's rules, top first: the declared ports from source to target, the replies, then nothing else. */
  const linkSpecs = (bridge: string, rule: LinkRule): string[][] => {
    const inside = ['-i', bridge, '-o', bridge];
    const byProtocol = (['tcp', 'udp'] as const).map((p) => [p, rule.ports.filter((x) => x.protocol === p).map((x) => x.port)] as const)
      .filter(([, ports]) => ports.length);
    return [
      ...byProtocol.map(([p, ports]) => [...inside, '-s', rule.source, '-d', rule.target, '-p', p, '-m', 'multiport', '--dports', ports.join(','), ...tag, '-j', 'RETURN']),
      [...inside, '-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', ...tag, '-j', 'RETURN'],
      [...inside, ...tag, '-j', 'DROP'],
    ];
  };
  const has = (rule: string[]) => run(bin, ['-w', '5', '-C', 'DOCKER-USER', ...rule], { timeout: 10_000 }).then(() => true, () => false);

  async function releaseLink(bridge: string) {
    if (!BRIDGE.test(bridge) || !(await active())) return;
    const { stdout } = await run(bin, ['-w', '5', '-S', 'DOCKER-USER'], { timeout: 10_000 });
    const ours = stdout.split('\n').filter((l) => l.startsWith('-A DOCKER-USER ') && l.split(' ').includes(bridge) && l.includes(`cattery:${opts.hosterId}`));
    for (const line of ours) {
      // -S prints each rule as -A would take it; quotes only around the comment, which has no space.
      const args = line.split(' ').slice(2).map((a) => a.replace(/^"|"$/g, ''));
      await run(bin, ['-w', '5', '-D', 'DOCKER-USER', ...args], { timeout: 10_000 }).catch(() => undefined);
    }
  }

  const firewall: Firewall = {
    active,
    async guardLink(bridge, rule) {
      if (!BRIDGE.test(bridge) || !IPV4.test(rule.source) || !IPV4.test(rule.target) || !(await active())) return;
      const specs = linkSpecs(bridge, rule);
      const present = await Promise.all(specs.map(has));
      if (!present.every(Boolean)) {
        // Order matters (the ports before the final DROP): a partial or older set is taken out and put back whole.
        await releaseLink(bridge);
        for (const spec of [...specs].reverse()) await run(bin, ['-w', '5', '-I', 'DOCKER-USER', ...spec], { timeout: 10_000 });
        opts.log.debug({ bridge, rule }, 'link rules added');
      }
      await firewall.guard(bridge);
    },
    releaseLink,
    async guard(bridge) {
      if (!BRIDGE.test(bridge) || !(await active())) return;
      try {
        await run(bin, ['-w', '5', '-C', 'DOCKER-USER', ...spec(bridge)], { timeout: 10_000 });
      } catch {
        await run(bin, ['-w', '5', '-I', 'DOCKER-USER', ...spec(bridge)], { timeout: 10_000 });
        opts.log.debug({ bridge }, 'isolation rule added');
      }
    },
    async release(bridge) {
      if (!BRIDGE.test(bridge) || !(await active())) return;
      // -D removes one copy; a rule added twice (two cattery processes) goes in two.
      for (let i = 0; i < 4; i++) {
        try { await run(bin, ['-w', '5', '-D', 'DOCKER-USER', ...spec(bridge)], { timeout: 10_000 }); } catch { return; }
      }
    },
  };
  return firewall;
}
