// In-process bus for provisioning events: the reconciler publishes, the WebSocket route and tests subscribe.
import { EventEmitter } from 'node:events';
import type { Desired, Observed } from '../db/schema.js';

export interface InstanceEvent {
  type: 'instance';
  slug: string;
  service: string;
  desired: Desired;
  observed: Observed | 'deleted';
  generation: number;
  error: string | null;
  at: string;
}

export interface EventBus {
  publish(ev: InstanceEvent): void;
  subscribe(fn: (ev: InstanceEvent) => void): () => void;
}

export function createEventBus(): EventBus {
  const em = new EventEmitter();
  // Each WebSocket client is one listener; an association's dashboard may have many open tabs.
  em.setMaxListeners(1000);
  return {
    publish: (ev) => em.emit('event', ev),
    subscribe: (fn) => { em.on('event', fn); return () => em.off('event', fn); },
  };
}
