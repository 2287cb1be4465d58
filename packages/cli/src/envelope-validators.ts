import type { ValidationResult, Validators } from '@haul/schemas';

/**
 * The validators of the CLI's event log: the envelope of each event, not its whole schema. Every event was
 * validated by the EventLog that appended it, and the CLI only shows and folds them (evolve ignores what it does not
 * know). Compiling every schema with Ajv, as a service does at start, costs ≈ 0.7 CPU-s: on a busy node that made
 * each `haul events` or `haul migrate` take seconds to start.
 */
export const envelopeValidators: Validators = {
  validate<T>(name: string, value: unknown): ValidationResult<T> {
    if (name === 'event' && isEnvelope(value)) return { ok: true, value: value as T };
    return {
      ok: false,
      error: {
        code: 'HAUL_INVALID_MESSAGE',
        message: `${name}: not an event envelope`,
        field: '',
        rule: 'type',
      },
    };
  },
};

function isEnvelope(v: unknown): boolean {
  if (typeof v !== 'object' || v === null) return false;
  const e = v as Record<string, unknown>;
  const isObject = (x: unknown) => typeof x === 'object' && x !== null;
  return (
    typeof e['type'] === 'string' &&
    typeof e['migrationId'] === 'string' &&
    typeof e['time'] === 'string' &&
    isObject(e['actor']) &&
    isObject(e['data'])
  );
}
