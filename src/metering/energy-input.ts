// How a server's power is known, as an admin gives it (PUT /api/servers/:name/energy) or a decision sets it
// (governance/actions.ts): one schema for both.
import { Type } from '@sinclair/typebox';

const Watts = Type.Number({ minimum: 0, maximum: 100_000 });
const MeterUrl = Type.String({ pattern: '^https?://[^\\s]+$', maxLength: 500, description: 'http(s) URL of the meter' });
export const EnergyInput = Type.Object({
  idleWatts: Watts, maxWatts: Watts,
  curve: Type.Optional(Type.Array(Watts, { minItems: 11, maxItems: 11, description: 'watts at 0 %, 10 % … 100 % load (SPECpower_ssj2008)' })),
  meter: Type.Optional(Type.Union([
    Type.Object({ kind: Type.Literal('rapl') }, { additionalProperties: false }),
    Type.Object({ kind: Type.Literal('http-json'), url: MeterUrl, field: Type.String({ pattern: '^[A-Za-z0-9_]+(\\.[A-Za-z0-9_]+)*$', maxLength: 100 }) }, { additionalProperties: false }),
    Type.Object({ kind: Type.Literal('prometheus'), url: MeterUrl, metric: Type.String({ pattern: '^[a-zA-Z_:][a-zA-Z0-9_:]*$', maxLength: 200 }) }, { additionalProperties: false }),
  ])),
  embodiedKgCo2e: Type.Number({ minimum: 0, maximum: 100_000, description: 'manufacturer PCF sheet or Boavizta' }),
  serviceLifeYears: Type.Number({ minimum: 1, maximum: 30 }),
  monthlyBudgetKwh: Type.Optional(Type.Number({ minimum: 0, maximum: 10_000_000, description: 'the energy the association allows this server per month (its own target, or a decision of its members)' })),
}, { additionalProperties: false });
