// The service manifest: one TypeBox schema gives services/schema.json (written by `cattery catalog schema`, checked
// equal by a test), the validation at start and in `cattery catalog check`, and the TypeScript type.
import { Type, type Static } from '@sinclair/typebox';

const Text = Type.Object({ fr: Type.String({ minLength: 1 }), en: Type.String({ minLength: 1 }) },
  { additionalProperties: false, description: 'French first: residents read French; English for federation peers.' });

const Name = Type.String({ pattern: '^[a-z][a-z0-9_-]{0,30}$' });
const EnvName = Type.String({ pattern: '^[A-Z_][A-Z0-9_]{0,63}$' });
const AbsPath = Type.String({ pattern: '^/[A-Za-z0-9._/-]{0,200}$' });

// A pattern is a whole-value regular expression (anchored by cattery): an overridable value reaches a shell, a
// config file or a template inside the container, so the manifest says exactly what shape it may take.
const EnvPattern = Type.String({ minLength: 1, maxLength: 500, description: 'JavaScript regular expression the whole value must match (cattery anchors it)' });

const EnvValue = Type.Union([
  Type.Object({
    value: Type.Optional(Type.String({ maxLength: 4096, description: 'The default; absent when required' })),
    overridable: Type.Optional(Type.Boolean({ description: 'An administrator may set it per instance; then a pattern is required' })),
    pattern: Type.Optional(EnvPattern),
    required: Type.Optional(Type.Boolean({ description: 'No default: creating an instance without it is refused' })),
  }, { additionalProperties: false }),
  Type.Object({ secret: Type.Object({ length: Type.Integer({ minimum: 16, maximum: 128 }) }, { additionalProperties: false }) },
    { additionalProperties: false, description: 'Generated once per instance, stored in the database, never shown by the API.' }),
]);

// Account operations run inside the instance's container. A service whose only way in is its HTTP API gets an
// `http` form here when one is shipped, together with the test that exercises it.
const Operation = Type.Object({
  exec: Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'argv run inside the container; input arrives as JSON on stdin' }),
}, { additionalProperties: false });

// A declared link: an instance of this service may be linked, at creation, to one instance of another service on
// the same server (webmail to a mail instance). Cattery then puts the two containers, and only them, on a network of
// their own where the target answers to the name on its certificate, opens only the listed ports of the target, and
// fills the listed variables from the target (catalog/links.ts, orchestrator/links.ts).
const LinkTemplate = Type.String({
  minLength: 1, maxLength: 200,
  description: 'The value, with placeholders filled from the linked instance: {host} (the name it answers to on the link: the name on its certificate), {port.<name>} (its container port), {env.<NAME>} (its environment)',
});

const Link = Type.Object({
  name: Name,
  service: Type.String({ pattern: '^[a-z][a-z0-9-]{1,30}$', description: 'The catalog service the linked instance must be of' }),
  required: Type.Boolean({ default: false, description: 'An instance of this service cannot be made without this link' }),
  ports: Type.Array(Name, { minItems: 1, maxItems: 16, uniqueItems: true, description: 'The linked service\'s ports (by name) this instance may reach; no other port of it is reachable' }),
  env: Type.Record(EnvName, LinkTemplate, {
    additionalProperties: false,
    description: 'Variables of this service filled from the linked instance; an administrator\'s value still wins where the variable is overridable',
  }),
}, { additionalProperties: false });

// `import` is export's inverse: stdin is one line of JSON ({"username", "quotaMb"}) then the tar stream an export of
// the same service wrote; the account's data becomes the archive's, whole or not at all (a refused archive changes
// nothing). It restores one resident from a backup (src/backups/) and receives a resident who moves here.
// `forward` is what a service with addresses (mail) does in place of delete when its resident moved to another
// hoster: input {username, to, until, message}; the account's sign-in and data go as delete removes them, what comes
// to the old address goes on to `to` until `until`, and each sender is told once where the person moved (`message`,
// plain text). Delete ends it. Moves call it (federation/moves-source.ts); a service without it is deleted.
export const ACCOUNT_OPERATIONS = ['create', 'setPassword', 'suspend', 'resume', 'setQuota', 'usage', 'export', 'import', 'delete', 'forward'] as const;
/** Operations only some services have (a service without addresses has nothing to forward); every other one is
 * required of a service with accounts (tests/services/account-isolation.test.ts). */
export const OPTIONAL_ACCOUNT_OPERATIONS: readonly (typeof ACCOUNT_OPERATIONS)[number][] = ['forward'];

export const ManifestSchema = Type.Object({
  $schema: Type.Optional(Type.String()),
  id: Type.String({ pattern: '^[a-z][a-z0-9-]{1,30}$' }),
  name: Text,
  description: Text,
  openForSignup: Type.Boolean({ description: 'Residents may ask for an account themselves.' }),
  software: Type.Optional(Type.Object({
    name: Type.String({ minLength: 1, maxLength: 100, description: 'The software as its authors name it (Nextcloud, Etherpad…)' }),
    license: Type.String({
      pattern: '^[A-Za-z0-9.+-]{1,64}( (AND|OR|WITH) [A-Za-z0-9.+-]{1,64}){0,4}$',
      description: 'Its licence as an SPDX identifier or expression (https://spdx.org/licenses/): AGPL-3.0-or-later, Apache-2.0…',
    }),
    source: Type.String({ pattern: '^https://[^\\s]{1,300}$', description: 'Where its source code is' }),
    website: Type.Optional(Type.String({ pattern: '^https://[^\\s]{1,300}$' })),
  }, { additionalProperties: false, description: 'What the service runs, published in its ChatonsInfos file (software.*); its version is the production image\'s tag.' })),
  access: Type.Optional(Type.Object({ fr: Type.String({ minLength: 1, maxLength: 500 }), en: Type.String({ minLength: 1, maxLength: 500 }) }, {
    additionalProperties: false,
    description: 'How a resident reaches their account, printed on the sign-up sheet and shown on "my services". Placeholders: {login}, {host}, {web} (https://<its front-door name> when it has one, else http://{host}:<its web port>), {port.<name>}, {env.<NAME>}.',
  })),
  address: Type.Optional(Type.String({
    minLength: 1, maxLength: 200,
    description: 'An account\'s address, for a service whose accounts have one (mail): placeholders {login} and {env.<NAME>}. A move tells the old hoster the new address with it (the receipt), for the forward.',
  })),
  image: Type.Object({
    production: Type.String({ minLength: 3, description: 'The upstream image an association would run, pinned by tag or digest.' }),
    local: Type.Object({
      base: Type.Union([Type.Literal('debian'), Type.Literal('busybox')],
        { description: 'debian: FROM the Debian image cattery makes with debootstrap (build arg BASE). busybox: FROM scratch with Debian\'s busybox-static in the context.' }),
      dockerfile: Type.String({ default: 'Dockerfile', pattern: '^[A-Za-z0-9._-]+$' }),
      shared: Type.Optional(Type.Array(Type.String({ pattern: '^[A-Za-z0-9._-]+$' }), {
        uniqueItems: true, description: 'Files from the catalog\'s _shared/ folder to copy into the build context.',
      })),
      npm: Type.Optional(Type.Boolean({
        description: 'Install the folder\'s package-lock.json (npm ci --omit=dev) on the host into the build context, so that the build itself reaches only the Debian archive.',
      })),
    }, { additionalProperties: false }),
  }, { additionalProperties: false }),
  command: Type.Optional(Type.Array(Type.String(), { minItems: 1 })),
  user: Type.Optional(Type.String({ pattern: '^[a-z0-9_-]+(:[a-z0-9_-]+)?$' })),
  ports: Type.Array(Type.Object({
    name: Name,
    container: Type.Integer({ minimum: 1, maximum: 65535 }),
    protocol: Type.Union([Type.Literal('tcp'), Type.Literal('udp')], { default: 'tcp' }),
    publish: Type.Boolean({ default: true, description: 'Publish on the server\'s address (127.0.0.1 by default).' }),
    wellKnown: Type.Optional(Type.Integer({
      minimum: 1, maximum: 65535,
      description: 'The standard number other servers and clients expect this port on (IANA: 25 for SMTP, 993 for IMAPS…). An administrator may publish the instance\'s well-known ports on the public address (PUT /api/instances/:slug/public-ports); one instance per server holds each number.',
    })),
  }, { additionalProperties: false })),
  http: Type.Optional(Type.Object({
    port: Type.String({ pattern: '^[a-z][a-z0-9_-]{0,30}$', description: 'The name of the tcp port (in ports) the front door proxies to' }),
    maxBodyMb: Type.Integer({ minimum: 1, maximum: 10240, description: 'The largest request body the front door lets through (413 above it)' }),
    timeoutSeconds: Type.Integer({ minimum: 1, maximum: 3600, description: 'How long the service may take to answer one request' }),
    websocket: Type.Boolean({ description: 'WebSocket upgrades pass and may stay open past timeoutSeconds' }),
  }, { additionalProperties: false, description: 'Served on the web through the front door (ingress): the instance\'s hostnames reach this port over HTTPS.' })),
  volumes: Type.Array(Type.Object({
    name: Name, path: AbsPath,
    sizeMb: Type.Integer({ minimum: 16, maximum: 1024 * 1024, description: 'The most this volume may hold: cattery gives it a file system of this size, so one instance cannot fill the disk that holds cattery.db. It may grow later, never shrink.' }),
  }, { additionalProperties: false })),
  environment: Type.Record(EnvName, EnvValue, { additionalProperties: false }),
  health: Type.Optional(Type.Object({
    command: Type.Array(Type.String(), { minItems: 1, description: 'exec form, run inside the container' }),
    intervalSeconds: Type.Number({ minimum: 1, maximum: 300 }),
    timeoutSeconds: Type.Number({ minimum: 1, maximum: 120 }),
    retries: Type.Integer({ minimum: 1, maximum: 20 }),
    startPeriodSeconds: Type.Number({ minimum: 0, maximum: 600 }),
  }, { additionalProperties: false })),
  limits: Type.Object({
    memoryMb: Type.Integer({ minimum: 16, maximum: 65536 }),
    cpus: Type.Number({ minimum: 0.05, maximum: 64 }),
    pids: Type.Integer({ minimum: 8, maximum: 32768 }),
  }, { additionalProperties: false }),
  capabilities: Type.Array(Type.String({ pattern: '^[A-Z_]+$' }), { uniqueItems: true }),
  readOnlyRootfs: Type.Boolean(),
  network: Type.Optional(Type.Object({
    encrypted: Type.Boolean({ description: 'On Swarm, the instance\'s overlay network is encrypted (IPsec between nodes): for a service whose own traffic is not (docs/swarm.md)' }),
  }, { additionalProperties: false })),
  tmpfs: Type.Array(Type.Object({ path: AbsPath, sizeMb: Type.Integer({ minimum: 1, maximum: 4096 }) }, { additionalProperties: false })),
  accounts: Type.Optional(Type.Object({
    adapter: Type.Literal('exec'),
    operations: Type.Partial(Type.Object(Object.fromEntries(ACCOUNT_OPERATIONS.map((op) => [op, Operation])))),
    upstream: Type.Optional(Type.String({ description: 'How these operations map onto the production image.' })),
  }, { additionalProperties: false })),
  backup: Type.Optional(Type.Object({
    maxPauseSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 3600, description: 'The container is paused (frozen, as at a power cut: what its files hold is what the service would find after one) for the copy of its volumes: never longer than this; a copy that would take longer fails, and the service runs again' })),
    dump: Type.Optional(Type.Object({
      exec: Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'argv run inside the running container: writes a consistent copy of the live state under a volume (whole, then renamed into place) and exits 0' }),
      exclude: Type.Array(Type.String({ pattern: '^[a-z][a-z0-9-]{0,30}/[^\\0]{1,200}$' }), {
        minItems: 1, maxItems: 16, uniqueItems: true,
        description: '<volume>/<path> of the live files the dump stands for: left out of the snapshot. A restore leaves them absent, and the service rebuilds them from the dump when it starts',
      }),
      timeoutSeconds: Type.Integer({ minimum: 1, maximum: 3600, default: 600 }),
    }, { additionalProperties: false, description: 'The service\'s own dump: taken while it runs, so the backup does not pause it' })),
  }, { additionalProperties: false, description: 'How a backup takes this service\'s volumes consistently (src/backups/)' })),
  links: Type.Optional(Type.Array(Link, { maxItems: 8, description: 'Other instances an instance of this service talks to, named when it is made (POST /api/instances `links`)' })),
}, { additionalProperties: false, $id: 'https://cattery.example/schemas/service.json', title: 'Cattery service manifest' });

export type Manifest = Static<typeof ManifestSchema>;
