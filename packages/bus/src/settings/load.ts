import { readFileSync } from 'node:fs';
import { createValidators, type ConfigSchemaName, type Validators } from '@haul/schemas';
import { settingsOf, type Setting } from './spec.ts';

/** Where a setting's effective value came from. */
export type SettingSource =
  | { kind: 'default' }
  | { kind: 'file'; file: string }
  | { kind: 'env'; name: string }
  | { kind: 'from'; key: string };

/** A setting the service cannot start with: `field` is its key (`data.ports`), the message says why and where. */
export class ConfigError extends Error {
  readonly code = 'HAUL_BAD_CONFIG';
  readonly field: string;
  constructor(field: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ConfigError';
    this.field = field;
  }
}

export type LoadedSettings<T> = {
  schema: ConfigSchemaName;
  values: T;
  /** By setting key; a setting without an entry is unset. */
  sources: Map<string, SettingSource>;
  file?: string;
  env: NodeJS.ProcessEnv;
};

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A config file: one JSON object. A syntax error names the line and column. */
export function readConfigFile(file: string): Obj {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError('', `cannot read the config file ${file}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    const at = /position (\d+)/.exec((err as Error).message);
    const before = at ? text.slice(0, Number(at[1])).split('\n') : [];
    const pos = at ? ` at line ${before.length}, column ${before.at(-1)!.length + 1}` : '';
    throw new ConfigError('', `${file} is not JSON${pos}: ${(err as Error).message}`, { cause: err });
  }
  if (!isObj(value)) throw new ConfigError('', `${file} must hold a JSON object ({ "setting": value, … })`);
  return value;
}

/** An environment value as the setting's type; what does not parse stays a string, for the schema to refuse. */
function fromEnv(s: Setting, raw: string): unknown {
  switch (s.type) {
    case 'integer':
    case 'number':
      return /^-?[0-9]+(\.[0-9]+)?$/.test(raw) ? Number(raw) : raw;
    case 'boolean':
      return raw === '1' || raw === 'true' ? true : raw === '0' || raw === 'false' ? false : raw;
    case 'array':
      return raw
        .split(s.separator ?? ',')
        .map((x) => x.trim())
        .filter((x) => x !== '');
    case 'string':
      return raw;
  }
}

const getAt = (o: Obj, path: string[]): unknown =>
  path.reduce<unknown>((v, k) => (isObj(v) ? v[k] : undefined), o);

/** Set a value, making the objects on the way; false when the way holds something that is not an object. */
function setAt(o: Obj, path: string[], value: unknown): boolean {
  let cur = o;
  for (const k of path.slice(0, -1)) {
    if (cur[k] === undefined) cur[k] = {};
    const next = cur[k];
    if (!isObj(next)) return false;
    cur = next;
  }
  cur[path.at(-1)!] = value;
  return true;
}

/** The setting a (possibly deeper) field belongs to: `nats.servers.0` → `nats.servers`. */
export function settingOf(schema: ConfigSchemaName, field: string): Setting | undefined {
  return settingsOf(schema)
    .filter((s) => field === s.key || field.startsWith(`${s.key}.`))
    .sort((a, b) => b.key.length - a.key.length)[0];
}

/** `data.ports (HAUL_STREAM_PORTS=70000)`, `data.ports in /etc/haul/image-streamer.json`: where to fix a field. */
export function whereIs(loaded: Omit<LoadedSettings<unknown>, 'values'>, field: string): string {
  const s = settingOf(loaded.schema, field);
  const src = s ? loaded.sources.get(s.key) : undefined;
  if (src?.kind === 'env') {
    const raw = loaded.env[src.name];
    return s?.secret ? `${field} (${src.name})` : `${field} (${src.name}=${JSON.stringify(raw)})`;
  }
  if (src?.kind === 'file' || (!src && loaded.file && !s)) return `${field} in ${loaded.file}`;
  if (src?.kind === 'from') return `${field} (from ${src.key})`;
  if (src?.kind === 'default') return `${field} (default)`;
  return field;
}

/** Merge file, environment and defaults: the values before validation, with their sources. */
function merge(schema: ConfigSchemaName, file: Obj, env: NodeJS.ProcessEnv, fileName?: string) {
  const values = structuredClone(file);
  const sources = new Map<string, SettingSource>();
  const settings = settingsOf(schema);
  for (const s of settings) {
    if (fileName && getAt(values, s.path) !== undefined) sources.set(s.key, { kind: 'file', file: fileName });
    const raw = s.env ? env[s.env] : undefined;
    if (s.env && raw !== undefined && raw !== '' && setAt(values, s.path, fromEnv(s, raw)))
      sources.set(s.key, { kind: 'env', name: s.env });
  }
  for (const s of settings) {
    if (getAt(values, s.path) !== undefined) continue;
    const from = s.defaultFrom ? getAt(values, s.defaultFrom.split('.')) : undefined;
    if (from !== undefined && setAt(values, s.path, structuredClone(from)))
      sources.set(s.key, { kind: 'from', key: s.defaultFrom! });
    else if (s.default !== undefined && setAt(values, s.path, structuredClone(s.default)))
      sources.set(s.key, { kind: 'default' });
  }
  return { values, sources };
}

let shared: Validators | undefined;

/**
 * A service's effective settings: its config file (when given), overridden by the environment, defaults for the
 * rest, validated against its schema with the project's Ajv. Throws ConfigError naming the field and where it was
 * set.
 */
/**
 * Environment variables haul once read and no longer does, with what replaced them: set, they end the start with a
 * ConfigError rather than be ignored (a service without its credentials would only say NATS refused it).
 */
export const removedEnv: Record<string, string> = {
  HAUL_NATS_CREDS_FILE:
    "is no longer read (it named a JSON user/password file of haul's own): a NATS .creds file is HAUL_CREDS_FILE " +
    '(credsFile), a user and password are HAUL_NATS_USER and HAUL_NATS_PASS',
};

export function loadSettings<T>(o: {
  schema: ConfigSchemaName;
  file?: string;
  env: NodeJS.ProcessEnv;
  validators?: Validators;
}): LoadedSettings<T> {
  for (const [name, why] of Object.entries(removedEnv))
    if (o.env[name] !== undefined) throw new ConfigError(name, `${name} ${why}`);
  const fileValues = o.file ? readConfigFile(o.file) : {};
  const { values, sources } = merge(o.schema, fileValues, o.env, o.file);
  const loaded = { schema: o.schema, sources, env: o.env, ...(o.file ? { file: o.file } : {}) };
  const validators = o.validators ?? (shared ??= createValidators());
  const r = validators.validate<T>(o.schema, values);
  if (!r.ok) {
    const { field, rule, detail = 'is invalid' } = r.error;
    const s = settingOf(o.schema, field);
    if (rule === 'required' && s)
      throw new ConfigError(
        field,
        `${field} is required: set "${field}" in the config file${s.env ? ` or ${s.env}` : ''}`,
      );
    if (rule === 'additionalProperties')
      throw new ConfigError(field, `${whereIs(loaded, field)} is not a setting (--help lists them)`);
    throw new ConfigError(field, `${whereIs(loaded, field)} ${detail}`);
  }
  return { ...loaded, values: r.value };
}

/**
 * The settings an environment sets, as a config file would hold them, and the rest of the environment (what is not a
 * setting of this service). The test world writes services' config files with it.
 */
export function configFromEnv(
  schema: ConfigSchemaName,
  env: NodeJS.ProcessEnv,
): { config: Record<string, unknown>; rest: NodeJS.ProcessEnv } {
  const config: Obj = {};
  const rest = { ...env };
  for (const s of settingsOf(schema)) {
    const raw = s.env ? env[s.env] : undefined;
    if (!s.env || raw === undefined) continue;
    delete rest[s.env];
    if (raw !== '') setAt(config, s.path, fromEnv(s, raw));
  }
  return { config, rest };
}
