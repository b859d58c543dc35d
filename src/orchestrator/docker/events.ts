// Docker's event stream, as the reconciler needs it: which instance something happened to. The stream is
// newline-delimited JSON that arrives in arbitrary chunks; parsing is pure (a line split across two chunks is kept
// for the next one), the watch reconnects when the engine closes the stream.
import type { Logger } from '../../log.js';
import { LABEL_HOSTER, LABEL_INSTANCE, type Engine } from './engine.js';

export interface InstanceEvent { slug: string; action: string }

/** The complete lines in `buffered + chunk`, as events of labelled instances; what follows the last newline is
 * returned as `rest` for the next chunk. A line that is not JSON is skipped. */
export function parseEventChunk(buffered: string, chunk: string): { events: InstanceEvent[]; rest: string } {
  const lines = (buffered + chunk).split('\n');
  const rest = lines.pop() ?? '';
  const events: InstanceEvent[] = [];
  for (const line of lines) {
    try {
      const ev = JSON.parse(line) as { Action?: string; Actor?: { Attributes?: Record<string, string> } };
      const slug = ev.Actor?.Attributes?.[LABEL_INSTANCE];
      if (slug) events.push({ slug, action: String(ev.Action) });
    } catch { /* not an event: skipped */ }
  }
  return { events, rest };
}

/** What changes an instance's observed state. */
const ACTIONS = ['die', 'destroy', 'health_status', 'stop', 'start', 'oom'];
const RECONNECT_MS = 2000;
const RETRY_MS = 5000;

/** Follow this hoster's container events until `stopped()` says so; returns a function that closes the stream. */
export function watchContainerEvents(
  engine: Engine, onEvent: (ev: InstanceEvent) => void, opts: { log: Logger; stopped: () => boolean },
): () => void {
  let stream: NodeJS.ReadableStream | undefined;
  const filters = { type: ['container' as const], label: [`${LABEL_HOSTER}=${engine.hosterId}`], event: ACTIONS };
  const again = (ms: number) => { if (!opts.stopped()) setTimeout(open, ms).unref(); };
  function open() {
    engine.docker.getEvents({ filters }).then((s) => {
      stream = s;
      let buf = '';
      s.on('data', (chunk: Buffer) => {
        const { events, rest } = parseEventChunk(buf, chunk.toString());
        buf = rest;
        for (const ev of events) onEvent(ev);
      });
      s.on('end', () => again(RECONNECT_MS));
      s.on('error', () => undefined);
    }, (err: unknown) => {
      opts.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'cannot watch Docker events; retrying');
      again(RETRY_MS);
    });
  }
  open();
  return () => (stream as unknown as { destroy?: () => void } | undefined)?.destroy?.();
}
