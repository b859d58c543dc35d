// Sending a staged export (accounts.ts exportAccount). The staged copy holds disk space and one of the few export
// slots until it is read, so the download must make progress: a client that stops reading, or reads a trickle (a
// chunk now and then, or bytes of its own sent to keep the socket busy, which reset a socket timeout but move no
// data), is cut; the stream closes and the staged copy with it. Progress is what the socket has accepted from us
// (bytesWritten), never its idle time. A resident's whole data is never kept by a browser cache or a proxy either.
import type { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';

/** How often progress is checked: a minute without enough of it ends the download. */
export const EXPORT_IDLE_MS = 60_000;
/** At least this much per check (or the rest of the file): 64 KiB a minute is already a crawl. */
const MIN_STEP_BYTES = 64 * 1024;
/** And on average, after two checks, at least 16 KiB/s (about 130 kbit/s, below a slow mobile line). */
const MIN_RATE_BYTES_PER_S = 16 * 1024;

export function sendExport(req: FastifyRequest, reply: FastifyReply, stream: Readable & { size?: number }, filename: string, idleMs = EXPORT_IDLE_MS) {
  // Staged and checked before this (accounts.ts): the length is known, and a failure was an error reply.
  if (stream.size !== undefined) reply.header('content-length', stream.size);
  reply.header('content-type', 'application/x-tar')
    .header('content-disposition', `attachment; filename="${filename}"`)
    .header('cache-control', 'no-store');
  const socket = req.raw.socket as (typeof req.raw.socket & { bytesWritten?: number }) | undefined;
  if (socket && typeof socket.bytesWritten === 'number' && typeof socket.destroy === 'function') {
    const started = Date.now();
    const total = (stream.size ?? Infinity) + 1024;
    let last = socket.bytesWritten;
    const timer = setInterval(() => {
      const sent = socket.bytesWritten ?? 0;
      const seconds = (Date.now() - started) / 1000;
      const stalled = sent - last < Math.min(MIN_STEP_BYTES, Math.max(0, total - last));
      const slow = seconds * 1000 >= 2 * idleMs && sent < Math.min(total, seconds * MIN_RATE_BYTES_PER_S);
      last = sent;
      if (stalled || slow) socket.destroy();
    }, idleMs);
    timer.unref();
    stream.once('close', () => clearInterval(timer));
  }
  return reply.send(stream);
}
