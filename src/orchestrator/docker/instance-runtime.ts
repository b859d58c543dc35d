// How an instance runs on one kind of engine. Today a container on a Docker engine; tomorrow, with several servers,
// a one-replica Swarm service implements the same interface beside it, and the reconciler's converge does not branch.
import type { Manifest } from '../../catalog/manifest.js';
import type { Instance, Server } from '../../db/schema.js';
import { buildContainerSpec } from './container-spec.js';
import {
  createOrAdopt, ensureContainerRemoved, ensureStarted, ensureStopped, restartContainer, unitState,
  type Adoption, type UnitState,
} from './containers.js';
import type { Engine } from './engine.js';

export interface UnitWanted {
  manifest: Manifest;
  instance: Pick<Instance, 'slug' | 'generation' | 'service' | 'image' | 'config'>;
  server: Pick<Server, 'publishAddress'>;
}

export interface InstanceRuntime {
  /** Create the instance's unit for its generation, or adopt the one already there (see Adoption). */
  createOrAdopt(wanted: UnitWanted, decide: (labels: Record<string, string>) => Adoption): Promise<{ id: string; how: 'created' | 'adopted' }>;
  ensureStarted(id: string, name: string): Promise<void>;
  ensureStopped(id: string, name: string): Promise<void>;
  ensureRemoved(id: string, name: string): Promise<void>;
  restart(id: string, name: string): Promise<void>;
  state(id: string, name: string): Promise<UnitState>;
}

export function containerRuntime(engine: Engine): InstanceRuntime {
  return {
    createOrAdopt: (w, decide) => createOrAdopt(engine, buildContainerSpec({ hosterId: engine.hosterId, ...w }), decide),
    ensureStarted: (id, name) => ensureStarted(engine, id, name),
    ensureStopped: (id, name) => ensureStopped(engine, id, name),
    ensureRemoved: (id, name) => ensureContainerRemoved(engine, id, name),
    restart: (id, name) => restartContainer(engine, id, name),
    state: (id, name) => unitState(engine, id, name),
  };
}
