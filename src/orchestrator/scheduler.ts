// When the reconciler passes: at start, on a timer, after a backoff, and whenever asked (a change of desired state,
// a Docker event). Passes never overlap, and every request made during a pass is served by one pass after it.
export interface Scheduler {
  /** Ask for a pass; resolves when a pass that started after this call has finished. */
  pass(reason: string): Promise<void>;
  /** The same, naming an instance: its backoff is skipped in that pass. */
  trigger(reason: string, slug?: string): Promise<void>;
  /** Whether this instance was named since its last pass; reading it forgets it. */
  takeForced(slug: string): boolean;
  /** A pass after a backoff, so that a retry does not wait for the slow timer. */
  retryIn(seconds: number): void;
  every(intervalSeconds: number): void;
  isStopping(): boolean;
  /** No new pass; resolves once the current one (and the one queued after it) has finished. */
  stop(): Promise<void>;
}

export function createScheduler(run: (reason: string) => Promise<void>): Scheduler {
  const forced = new Set<string>();
  let running: Promise<void> | null = null;
  let again: Promise<void> | null = null;
  let timer: NodeJS.Timeout | null = null;
  let stopping = false;

  function pass(reason: string): Promise<void> {
    if (stopping) return Promise.resolve();
    if (!running) {
      running = run(reason).finally(() => { running = null; });
      return running;
    }
    // Coalesce: every request made during a pass is served by one pass after it, whether that pass ended well or
    // not (a rejected pass must not leave every later request holding its old error).
    const next = () => { again = null; return pass(reason); };
    again ??= running.then(next, next);
    return again;
  }

  return {
    pass,
    trigger(reason, slug) {
      if (slug) forced.add(slug);
      return pass(reason);
    },
    takeForced: (slug) => forced.delete(slug),
    retryIn(seconds) {
      // Fire and forget: a pass logs its own failures; an unhandled rejection would end the process.
      setTimeout(() => { if (!stopping) pass('retry').catch(() => undefined); }, seconds * 1000).unref();
    },
    every(intervalSeconds) {
      timer = setInterval(() => { pass('timer').catch(() => undefined); }, intervalSeconds * 1000);
      timer.unref();
    },
    isStopping: () => stopping,
    async stop() {
      stopping = true;
      if (timer) clearInterval(timer);
      await (again ?? running ?? Promise.resolve()).catch(() => undefined);
    },
  };
}
