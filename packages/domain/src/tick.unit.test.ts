import assert from 'node:assert/strict';
import { it } from 'node:test';
import { liveScenario, meta, simulate } from '../test/simulate.ts';
import { decideUntilStable } from './decide.ts';
import { fold } from './evolve.ts';
import { initialState } from './state.ts';

const log = simulate(liveScenario({ sharedDisks: 0, localDisks: 0 })).events;

it('a tick with no timeout due makes the decision an outcome should have led to', () => {
  // Given a requested migration whose first decision was never made (its event was parked, say)
  const requested = log.slice(0, 1);
  const now = Date.parse(requested[0]!.time) + 1000;

  // When the coordinator ticks
  const { events } = decideUntilStable({ kind: 'Tick', meta: meta(now) }, fold(requested, initialState()));

  // Then the preflight steps are intended, as an Advance would have
  assert.deepEqual(
    events.map((e) => (e.type === 'StepIntended' ? e.data.step : e.type)),
    ['preflightTarget', 'preflightSource', 'lockSource'],
  );
});

it('a tick on a migration with nothing to do decides nothing', () => {
  const done = fold(log, initialState());
  const now = Date.parse(log.at(-1)!.time) + 1000;
  assert.deepEqual(decideUntilStable({ kind: 'Tick', meta: meta(now) }, done).events, []);
});
