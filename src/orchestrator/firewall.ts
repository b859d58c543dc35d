// Cattery's own isolation rule per instance network, in front of Docker's. Docker 20.10 separates bridge networks
// with its DOCKER-ISOLATION chains; under load (many networks made and removed at once) a fresh-clone test run saw
// one instance reach another's HTTP port. So, for each instance bridge on the local engine, cattery also inserts
// into DOCKER-USER (which Docker evaluates first and never rewrites):
//   -i <bridge> ! -o <bridge> -d <cattery's subnet pool> -j DROP
// i.e. nothing leaving an instance's bridge may reach another instance's address; the Internet and the host stay
// reachable, and replies are dropped by the other network's own rule. It is added before any container joins the
// network, and removed with the network. iptables runs through execFile with an argument array (no shell); it
// needs root on the engine's host, and without it cattery says so once and relies on Docker's rules alone.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Logger } from '../log.js';

const run = promisify(execFile);
const BRIDGE = /^[A-Za-z0-9_.-]{1,15}$/;
const POOL = /^(\d{1,3}\.){3}\d{1,3}\/\d{1,2}$/;

export interface Firewall {
  /** Make sure the rule for this bridge is in place (idempotent). */
  guard(bridge: string): Promise<void>;
  release(bridge: string): Promise<void>;
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

  return {
    active,
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
}
