import type { ValidationResult, Validators } from '@haul/schemas';

/**
 * The validators of the CLI's event log: the envelope of each event, not its whole schema. Every event was
 * validated by the EventLog that appended it, and the CLI only shows and folds them (evolve ignores what it does not
 * know). Compiling every schema with Ajv, as a service does at start, costs ≈ 0.7 CPU-s: on a busy node that made
 * each `haul events` or `haul migrate` take seconds to start. A transfer's progress report (the progress bucket,
 * which `haul migrate` follows beside the log) is checked for the fields the live view prints, as nothing else of it
 * is used.
 */
export const envelopeValidators: Validators = {
  validate<T>(name: string, value: unknown): ValidationResult<T> {
    if (name === 'event' && isEnvelope(value)) return { ok: true, value: value as T };
    if (name === 'transferProgress' && isReport(value)) return { ok: true, value: value as T };
    return {
      ok: false,
      error: {
        code: 'HAUL_INVALID_MESSAGE',
        message: `${name}: not ${name === 'transferProgress' ? 'a transfer report' : 'an event envelope'}`,
        field: '',
        rule: 'type',
      },
    };
  },
};

function isReport(v: unknown): boolean {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Record<string, unknown>;
  const isNumber = (x: unknown) => typeof x === 'number' && Number.isFinite(x);
  const waiting = r['waiting'] as Record<string, unknown> | undefined;
  return (
    typeof r['migrationId'] === 'string' &&
    typeof r['commandId'] === 'string' &&
    ['bytesDone', 'bytesTotal', 'mbPerSec', 'etaMs'].every((k) => isNumber(r[k])) &&
    (waiting === undefined ||
      (typeof waiting === 'object' && ['priority', 'slot', 'sync'].includes(String(waiting['reason']))))
  );
}

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
