// Sign-in throttling. A backoff (createThrottle) gives a key a few free failures, then each further attempt waits
// longer (doubling up to 15 min). Sign-in (createSignInThrottle) keys it on (login, client address), so a stranger
// failing for someone's login slows only the stranger's own address: the owner, from theirs, still signs in. Behind
// it a high ceiling per login, whatever the address, keeps guessing from many addresses slow; the addresses where
// that login signed in lately are spared by the ceiling, so even a spread-out attack does not lock the owner out.
// The per-address request limit is @fastify/rate-limit's, on the routes. In memory: one process holds the HTTP server.
// Why the wait is checked before the password rather than after: during a wait every answer is "wait", right or
// wrong, so a throttled guesser learns nothing, and no hash is computed for them; keying on the address is what
// keeps the owner out of a stranger's wait.
export interface Throttle {
  /** Seconds to wait before this login may try again, 0 when it may. */
  retryAfter(login: string): number;
  failed(login: string): void;
  succeeded(login: string): void;
}

export interface BackoffOptions {
  freeAttempts?: number; baseSeconds?: number; maxSeconds?: number; maxEntries?: number;
  /** A key whose last wait ended this long ago starts over (failures spread over days are not an attack). */
  forgetAfterSeconds?: number;
  now?: () => number;
}

export function createThrottle(opts: BackoffOptions = {}): Throttle {
  const free = opts.freeAttempts ?? 5, base = opts.baseSeconds ?? 2, max = opts.maxSeconds ?? 900, maxEntries = opts.maxEntries ?? 10_000;
  const forget = (opts.forgetAfterSeconds ?? 86_400) * 1000, now = opts.now ?? Date.now;
  const entries = new Map<string, { failures: number; until: number }>();
  const live = (key: string) => {
    const e = entries.get(key);
    if (e && now() - e.until > forget) { entries.delete(key); return undefined; }
    return e;
  };
  return {
    retryAfter(key) {
      const e = live(key);
      return e ? Math.max(0, Math.ceil((e.until - now()) / 1000)) : 0;
    },
    failed(key) {
      const e = live(key) ?? { failures: 0, until: 0 };
      e.failures++;
      const wait = e.failures <= free ? 0 : Math.min(max, base * 2 ** (e.failures - free - 1));
      e.until = now() + wait * 1000;
      entries.delete(key);
      entries.set(key, e);
      // Bounded: the oldest entries go first, so a flood of invented logins cannot fill memory.
      if (entries.size > maxEntries) entries.delete(entries.keys().next().value as string);
    },
    succeeded(key) { entries.delete(key); },
  };
}

export interface SignInThrottle {
  /** The throttle as seen from one client address (request.ip: the real client behind a trusted proxy). */
  from(address: string): Throttle;
}

export interface SignInThrottleOptions {
  perAddress?: BackoffOptions;
  /** The ceiling per login over all addresses: high, so that only a spread-out attack reaches it. */
  perLogin?: BackoffOptions;
  /** How many recent sign-in addresses are remembered per login, and for how long. */
  knownPerLogin?: number; knownDays?: number; maxLogins?: number;
  now?: () => number;
}

export function createSignInThrottle(opts: SignInThrottleOptions = {}): SignInThrottle {
  const now = opts.now ?? Date.now;
  const local = createThrottle({ freeAttempts: 5, forgetAfterSeconds: 3_600, maxEntries: 20_000, now, ...opts.perAddress });
  const ceiling = createThrottle({ freeAttempts: 100, forgetAfterSeconds: 86_400, now, ...opts.perLogin });
  const knownPer = opts.knownPerLogin ?? 8, knownMs = (opts.knownDays ?? 30) * 86_400_000, maxLogins = opts.maxLogins ?? 10_000;
  const known = new Map<string, Map<string, number>>();
  const isKnown = (login: string, address: string) => {
    const at = known.get(login)?.get(address);
    return at !== undefined && now() - at < knownMs;
  };
  const remember = (login: string, address: string) => {
    const addrs = known.get(login) ?? new Map<string, number>();
    addrs.delete(address);
    addrs.set(address, now());
    if (addrs.size > knownPer) addrs.delete(addrs.keys().next().value as string);
    known.delete(login);
    known.set(login, addrs);
    if (known.size > maxLogins) known.delete(known.keys().next().value as string);
  };
  // An address never holds a NUL (it is a socket peer, or what the trusted proxy wrote): the pair's key is unambiguous.
  const pair = (login: string, address: string) => `${login}\u0000${address}`;
  return {
    from(address) {
      return {
        retryAfter(login) {
          const own = local.retryAfter(pair(login, address));
          if (own > 0 || isKnown(login, address)) return own;
          return ceiling.retryAfter(login);
        },
        failed(login) {
          local.failed(pair(login, address));
          ceiling.failed(login);
        },
        succeeded(login) {
          local.succeeded(pair(login, address));
          remember(login, address);
        },
      };
    },
  };
}
