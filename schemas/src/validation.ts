import type { ErrorObject, ValidateFunction } from 'ajv';
import compiled from '../generated/validators.cjs';
import { configSchemaIds, schemaIds, type ConfigSchemaName, type SchemaName } from './schema-ids.ts';

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
 * Every schema's validation function, compiled at build time by Ajv (schemas/scripts/render-validators.ts; a unit
 * test checks the generated module matches the schemas). Nothing is compiled when a process starts.
 */
export function createValidators(): Validators {
  const fns = new Map<SchemaName | ConfigSchemaName, ValidateFunction>();
  for (const name of Object.keys({ ...schemaIds, ...configSchemaIds }) as (SchemaName | ConfigSchemaName)[]) {
    const fn = (compiled as Record<string, ValidateFunction | undefined>)[name];
    if (!fn) throw new Error(`schema ${name} has no generated validator: run \`npm run gen:types\``);
    fns.set(name, fn);
  }
  return {
    validate<T>(name: SchemaName | ConfigSchemaName, value: unknown): ValidationResult<T> {
      const fn = fns.get(name);
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
