// Live provisioning events: each message is one InstanceEvent as JSON. Clients may filter by instance.
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { EventBus } from '../../orchestrator/events.js';

export const eventRoutes: FastifyPluginAsyncTypebox<{ events: EventBus }> = async (app, { events }) => {
  app.get('/api/events', {
    websocket: true,
    schema: {
      tags: ['events'], summary: 'WebSocket: live instance events (JSON messages)',
      querystring: Type.Object({ instance: Type.Optional(Type.String({ maxLength: 64 })) }, { additionalProperties: false }),
    },
  }, (socket, req) => {
    const only = (req.query as { instance?: string }).instance;
    const off = events.subscribe((ev) => {
      if (only && ev.slug !== only) return;
      // A slow client is dropped rather than letting its buffer grow without bound.
      if (socket.bufferedAmount > 1 << 20) { socket.terminate(); return; }
      socket.send(JSON.stringify(ev));
    });
    socket.on('close', off);
    socket.on('error', off);
  });
};
