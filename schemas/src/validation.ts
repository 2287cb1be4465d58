import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { loadSchemaDocuments } from './schema-files.ts';
import { configSchemaIds, schemaIds, type ConfigSchemaName, type SchemaName } from './schema-ids.ts';

// ajv-formats ships CommonJS with a default export object.
const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => Ajv2020;

/** A validation failure as data: which field broke which rule. Never a stack trace on the wire. */
export type ValidationError = {
  code: 'HAUL_INVALID_MESSAGE';
  message: string;
  field: string;
  rule: string;
  /** What is wrong with the field, without its name (e.g. `must be integer`). */
  detail?: string;
};

/**
 * A validation error as it goes on the wire (an event's or a reply's `error`): without `detail`, which the schemas of
 * those messages do not allow (it is for messages about settings, where the field is named another way).
 */
export function wireError(e: ValidationError): Omit<ValidationError, 'detail'> {
  return { code: e.code, message: e.message, field: e.field, rule: e.rule };
}

export type ValidationResult<T> = { ok: true; value: T } | { ok: false; error: ValidationError };

export type Validators = {
  validate<T>(name: SchemaName | ConfigSchemaName, value: unknown): ValidationResult<T>;
};

/**
 * One Ajv instance per process, strict, every schema compiled up front, so a broken schema fails at start.
 */
export function createValidators(): Validators {
  const ajv = new Ajv2020({ strict: true, allErrors: false, discriminator: true, useDefaults: false });
  addFormats(ajv);
  // Annotations without validation meaning: a type-generation hint, and where a service setting comes from in the
  // environment (packages/bus/src/settings).
  ajv.addVocabulary(['tsType', 'haulEnv', 'haulEnvSeparator', 'haulDefaultFrom']);
  for (const doc of loadSchemaDocuments()) ajv.addSchema(doc);
  const compiled = new Map<SchemaName | ConfigSchemaName, ValidateFunction>();
  const ids = { ...schemaIds, ...configSchemaIds };
  for (const [name, id] of Object.entries(ids) as [SchemaName | ConfigSchemaName, string][]) {
    const fn = ajv.getSchema(id);
    if (!fn) throw new Error(`schema ${id} did not compile`);
    compiled.set(name, fn);
  }
  return {
    validate<T>(name: SchemaName | ConfigSchemaName, value: unknown): ValidationResult<T> {
      const fn = compiled.get(name);
      if (!fn) throw new Error(`no schema named ${name}`);
      if (fn(value)) return { ok: true, value: value as T };
      return { ok: false, error: describeError(name, fn.errors?.[0]) };
    },
  };
}

/** Turn Ajv's first error into a field path (dotted, e.g. `args.imageDir`) and a sentence a person can act on. */
export function describeError(name: string, err: ErrorObject | undefined): ValidationError {
  if (!err)
    return {
      code: 'HAUL_INVALID_MESSAGE',
      message: `${name}: invalid`,
      field: '',
      rule: 'unknown',
      detail: 'is invalid',
    };
  const path = err.instancePath
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  let rule = err.keyword;
  let detail = err.message ?? 'is invalid';
  const params = err.params as Record<string, unknown>;
  if (err.keyword === 'required') {
    path.push(String(params['missingProperty']));
    detail = 'is required';
  } else if (err.keyword === 'additionalProperties') {
    path.push(String(params['additionalProperty']));
    detail = 'is not allowed here';
  } else if (err.keyword === 'enum') {
    detail = `must be one of ${(params['allowedValues'] as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
  } else if (err.keyword === 'discriminator') {
    path.push(String(params['tag']));
    rule = 'discriminator';
    detail = 'names no known variant';
  }
  const field = path.join('.');
  return {
    code: 'HAUL_INVALID_MESSAGE',
    message: `${name}: ${field === '' ? 'message' : `'${field}'`} ${detail}`,
    field,
    rule,
    detail,
  };
}
