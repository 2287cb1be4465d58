/** given(events).when(input).then(events) for the migration decider, in emmett's shape. */
import assert from 'node:assert/strict';
import type { MigrationEvent } from '@haul/schemas';
import { decide, type DecideInput } from '../src/decide.ts';
import { fold } from '../src/evolve.ts';
import { initialState } from '../src/state.ts';

type Match = Partial<{ type: MigrationEvent['type']; data: Record<string, unknown> }>;

export function given(history: MigrationEvent[]) {
  const state = fold(history, initialState());
  return {
    state,
    when(input: DecideInput) {
      const run = () => decide(input, state);
      return {
        /** Each produced event must match the expected shape (type and a subset of data), in order. */
        then(expected: Match[]): MigrationEvent[] {
          const got = run();
          assert.deepEqual(
            got.map((e) => e.type),
            expected.map((e) => e.type),
          );
          expected.forEach(
            (e, i) => e.data && matchSubset(got[i]!.data as unknown as Record<string, unknown>, e.data),
          );
          return got;
        },
        thenNothingHappened() {
          assert.deepEqual(run(), []);
        },
        thenThrows(code: string) {
          assert.throws(run, (err: unknown) => (err as { code?: string }).code === code);
        },
      };
    },
  };
}

function matchSubset(
  actual: Record<string, unknown>,
  expected: Record<string, unknown>,
  path = 'data',
): void {
  for (const [k, v] of Object.entries(expected)) {
    const a = actual[k];
    if (v !== null && typeof v === 'object' && !Array.isArray(v))
      matchSubset(a as Record<string, unknown>, v as Record<string, unknown>, `${path}.${k}`);
    else assert.deepEqual(a, v, `${path}.${k}`);
  }
}
