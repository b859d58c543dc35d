// Sign-in throttling per login: after a few failures, each further attempt waits longer (doubling up to 15 min),
// whatever address it comes from, so that guessing one resident's password from many addresses stays slow. The
// per-address limit is @fastify/rate-limit's, on the routes. In memory: one process holds the HTTP server.
export interface Throttle {
  /** Seconds to wait before this login may try again, 0 when it may. */
  retryAfter(login: string): number;
  failed(login: string): void;
  succeeded(login: string): void;
}

export function createThrottle(opts: { freeAttempts?: number; baseSeconds?: number; maxSeconds?: number; maxEntries?: number } = {}): Throttle {
  const free = opts.freeAttempts ?? 5, base = opts.baseSeconds ?? 2, max = opts.maxSeconds ?? 900, maxEntries = opts.maxEntries ?? 10_000;
  const entries = new Map<string, { failures: number; until: number }>();
  return {
    retryAfter(login) {
      const e = entries.get(login);
      return e ? Math.max(0, Math.ceil((e.until - Date.now()) / 1000)) : 0;
    },
    failed(login) {
      const e = entries.get(login) ?? { failures: 0, until: 0 };
      e.failures++;
      const wait = e.failures <= free ? 0 : Math.min(max, base * 2 ** (e.failures - free - 1));
      e.until = Date.now() + wait * 1000;
      entries.delete(login);
      entries.set(login, e);
      // Bounded: the oldest entries go first, so a flood of invented logins cannot fill memory.
      if (entries.size > maxEntries) entries.delete(entries.keys().next().value as string);
    },
    succeeded(login) { entries.delete(login); },
  };
}
