// Environment values an administrator may set per instance. Each overridable variable declares a pattern in its
// manifest; a value reaches a shell, a config file or a template inside the container, so the shape is checked here,
// once, for instance creation and change alike. The catalog itself refuses patterns that let a shell or a config
// file be broken out of (probeUnsafePattern), so a manifest cannot open the hole by accident.
import type { Manifest } from './manifest.js';

type EnvDecl = Manifest['environment'][string];
export type PlainEnvDecl = Exclude<EnvDecl, { secret: unknown }>;

export const isPlain = (d: EnvDecl): d is PlainEnvDecl => !('secret' in d);

/** The manifest's pattern as cattery applies it: the whole value, in Unicode mode. Null when it does not compile. */
export function compilePattern(pattern: string): RegExp | null {
  try {
    return new RegExp(`^(?:${pattern})$`, 'u');
  } catch {
    return null;
  }
}

// Always refused, whatever a pattern says: a line break would start another line in an env file, NUL ends a C string.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

/** Why this value may not be used for this variable, or null when it may. */
export function envValueProblem(key: string, decl: EnvDecl | undefined, value: string): string | null {
  if (!decl || !isPlain(decl) || !decl.overridable) return `environment variable ${key} is not overridable`;
  if (CONTROL.test(value)) return `environment variable ${key} may not contain a newline, NUL or other control character`;
  const re = decl.pattern ? compilePattern(decl.pattern) : null;
  if (!re) return `environment variable ${key} has no usable pattern in its manifest`;
  if (!re.test(value)) return `environment variable ${key} does not have the expected shape (pattern ${decl.pattern})`;
  return null;
}

/** The first problem with a whole set of overrides against a manifest, required variables included (`linked`:
 * the variables the instance's links fill in, which a required variable may come from). */
export function instanceEnvProblem(m: Pick<Manifest, 'environment'>, env: Record<string, string>, linked: Record<string, string> = {}): string | null {
  for (const [key, value] of Object.entries(env)) {
    const p = envValueProblem(key, m.environment[key], value);
    if (p) return p;
  }
  for (const [key, decl] of Object.entries(m.environment)) {
    if (isPlain(decl) && decl.required && env[key] === undefined && linked[key] === undefined) {
      return `environment variable ${key} is required for this service (it has no default)`;
    }
  }
  return null;
}

/** Values that must never pass an overridable variable's pattern: each would break out of a shell word, a quoted
 * config value or a template. A heuristic (a regular expression's language cannot be decided in general), kept
 * honest by the kind-wide test that generates many more. */
const HOSTILE = ['a;b$(id)', '$(id)', '`id`', 'a b', "a'b", 'a"b', 'a|b', 'a&b', 'a>b', 'a<b', 'a\\b', '{a}', 'a\nb', 'a#b', '*', ''];

export function probeUnsafePattern(pattern: string, sample?: string): string | null {
  const re = compilePattern(pattern);
  if (!re) return 'the pattern is not a valid regular expression';
  const probes = [...HOSTILE, ...(sample ? [`${sample};id`, `${sample} x`, `${sample}$(id)`, `${sample}\nX=1`] : [])];
  const hit = probes.find((p) => re.test(p));
  return hit === undefined ? null : `the pattern accepts ${JSON.stringify(hit)}: narrow it to the values the service needs`;
}

export interface EnvViolation { field: string; message: string; code: 'CATTERY_ERR_MANIFEST_INVALID' | 'CATTERY_ERR_MANIFEST_UNSAFE' }

/** What the schema cannot say about `environment`: an overridable variable has a safe pattern, a required one has
 * no default and can be set, a default fits its own pattern. */
export function checkEnvironment(m: Pick<Manifest, 'environment'>): EnvViolation[] {
  const out: EnvViolation[] = [];
  for (const [key, decl] of Object.entries(m.environment)) {
    if (!isPlain(decl)) continue;
    const field = `/environment/${key}`;
    const invalid = (message: string) => out.push({ field, message, code: 'CATTERY_ERR_MANIFEST_INVALID' });
    if (decl.overridable && decl.pattern === undefined) {
      out.push({ field, message: `${key} is overridable and must declare a pattern (the shape an administrator's value must have)`, code: 'CATTERY_ERR_MANIFEST_UNSAFE' });
    }
    if (decl.pattern !== undefined) {
      const unsafe = probeUnsafePattern(decl.pattern, decl.value);
      if (unsafe) out.push({ field: `${field}/pattern`, message: `${key}: ${unsafe}`, code: compilePattern(decl.pattern) ? 'CATTERY_ERR_MANIFEST_UNSAFE' : 'CATTERY_ERR_MANIFEST_INVALID' });
    }
    if (decl.required) {
      if (decl.value !== undefined) invalid(`${key} is required and may not also have a default value`);
      if (!decl.overridable) invalid(`${key} is required, so it must be overridable (else nobody can set it)`);
    } else if (decl.value === undefined) {
      invalid(`${key} needs a value, or "required": true`);
    }
    const re = decl.pattern !== undefined ? compilePattern(decl.pattern) : null;
    if (re && decl.value !== undefined && !re.test(decl.value)) invalid(`${key}'s default ${JSON.stringify(decl.value)} does not match its own pattern`);
  }
  return out;
}

/** What a variable holds in an instance, secrets apart: an administrator's value where the variable is overridable,
 * else what the instance's links filled in (catalog/links.ts), else the manifest's default. The one place that
 * decides it, for the container, the access text and a linked instance alike. */
export function plainValue(decl: PlainEnvDecl, key: string, config: { env: Record<string, string>; linkedEnv?: Record<string, string> | undefined }): string {
  if (decl.overridable && config.env[key] !== undefined) return config.env[key];
  return config.linkedEnv?.[key] ?? decl.value ?? '';
}

/** Every non-secret variable of an instance with its value (plainValue). */
export function plainEnvOf(m: Pick<Manifest, 'environment'>, config: { env: Record<string, string>; linkedEnv?: Record<string, string> | undefined }): Record<string, string> {
  return Object.fromEntries(Object.entries(m.environment).flatMap(([k, d]) => (isPlain(d) ? [[k, plainValue(d, k, config)]] : [])));
}
