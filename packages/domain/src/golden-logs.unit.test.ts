import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { createValidators } from '@haul/schemas';
import { simulate, type SimScenario } from '../test/simulate.ts';

/**
 * Golden event logs of the main scenarios, readable (one JSON event per line) and shared with the services' tests.
 * They fail when the core's behaviour changes; `HAUL_UPDATE_GOLDEN=1 npm run test:unit` rewrites them on purpose.
 */
const dir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'test', 'fixtures', 'logs');
const base = {
  pagesPerIteration: [9000, 5000, 3000, 10],
  memTrack: true,
  preDump: 'auto' as const,
  picks: [],
};
const scenarios: Record<string, SimScenario> = {
  'live-shared-and-local': { ...base, mode: 'live', sharedDisks: 1, localDisks: 1, fault: { kind: 'none' } },
  'live-rollback-at-snapshot-copy': {
    ...base,
    mode: 'live',
    sharedDisks: 1,
    localDisks: 1,
    fault: { kind: 'fail', step: 'snapshotCopy', nth: 1, partial: true },
  },
  'live-lease-expired': {
    ...base,
    mode: 'live',
    sharedDisks: 1,
    localDisks: 0,
    fault: { kind: 'lease', after: 3 },
  },
  'restart-shared-and-local': {
    ...base,
    mode: 'restart',
    sharedDisks: 1,
    localDisks: 1,
    fault: { kind: 'none' },
  },
};
const validators = createValidators();

describe('golden event logs', () => {
  for (const [name, sc] of Object.entries(scenarios)) {
    it(`${name}: every event is schema-valid and the log matches the golden file`, () => {
      const { events } = simulate(sc);
      for (const e of events) {
        const v = validators.validate('event', e);
        assert.ok(v.ok, `${e.type}: ${v.ok ? '' : v.error.message}`);
      }
      const text = events.map((e) => JSON.stringify(e)).join('\n') + '\n';
      const file = join(dir, `${name}.jsonl`);
      if (process.env['HAUL_UPDATE_GOLDEN'] === '1' || !existsSync(file)) writeFileSync(file, text);
      assert.equal(
        text,
        readFileSync(file, 'utf8'),
        `${file} differs: run with HAUL_UPDATE_GOLDEN=1 if the change is intended`,
      );
    });
  }
});
