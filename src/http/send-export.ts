// Sending a staged export (accounts.ts exportAccount). The staged copy holds disk space until it is read, so a client
// that stops reading is cut after a minute without progress: the socket goes, the stream closes and the staged
// copy with it. A resident's whole data is never kept by a browser cache or a proxy either.
import type { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';

/** A minute without a byte accepted by the client: long enough for a slow phone line, short enough for the disk. */
export const EXPORT_IDLE_MS = 60_000;

export function sendExport(req: FastifyRequest, reply: FastifyReply, stream: Readable & { size?: number }, filename: string, idleMs = EXPORT_IDLE_MS) {
  // Staged and checked before this (accounts.ts): the length is known, and a failure was an error reply.
  if (stream.size !== undefined) reply.header('content-length', stream.size);
  reply.header('content-type', 'application/x-tar')
    .header('content-disposition', `attachment; filename="${filename}"`)
    .header('cache-control', 'no-store');
  const socket = req.raw.socket as (typeof req.raw.socket & { setTimeout?: unknown }) | undefined;
  if (socket && typeof socket.setTimeout === 'function') {
    socket.setTimeout(idleMs, () => socket.destroy());
    stream.once('close', () => socket.setTimeout(0));
  }
  return reply.send(stream);
}
