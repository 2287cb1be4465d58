import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { liveScenario, meta, simulate } from '../test/simulate.ts';
import { decide } from './decide.ts';
import { nextDeadline } from './deadlines.ts';
import { fold } from './evolve.ts';
import { initialState } from './state.ts';
import type { MigrationState } from './state.ts';

const stallMs = meta(0).stallMs;

/** The state right after the n-th StepIntended of a simulated migration whose steps are all in flight. */
function inFlightAfter(step: string, localDisks = 1): MigrationState {
  const log = simulate(liveScenario({ localDisks })).events;
  const at = log.findIndex((e) => e.type === 'StepIntended' && e.data.step === step);
  return fold(log.slice(0, at + 1), initialState());
}

const tickAt = (s: MigrationState, now: number) => decide({ kind: 'Tick', meta: meta(now) }, s);

describe('the next deadline of a migration', () => {
  for (const step of ['preflightSource', 'preDump', 'streamImages', 'copyLocalDisk', 'finalDump', 'restore'])
    it(`is the first moment a tick gives up a step (${step} in flight)`, () => {
      const s = inFlightAfter(step);
      const due = nextDeadline(s, stallMs)!;
      assert.ok(Number.isFinite(due));
      assert.deepEqual(tickAt(s, due - 1), []);
      assert.equal(tickAt(s, due)[0]?.type, 'StepFailed');
    });

  it("with a transfer's report that it waits, is the first moment a tick with that report gives it up", () => {
    // No local disk: its copy's first pass would be in flight beside the stream, with a deadline of its own.
    const s = inFlightAfter('streamImages', 0);
    const r = Object.values(s.steps).find((x) => x.step === 'streamImages')!;
    const time = new Date(Date.parse(r.intendedAt) + 45_000).toISOString();
    const transfers = {
      [r.command.commandId]: {
        migrationId: s.migrationId!,
        commandId: r.command.commandId,
        node: r.command.node,
        time,
        bytesDone: 0,
        bytesTotal: 100,
        mbPerSec: 0,
        etaMs: 0,
        waiting: { reason: 'priority' as const, since: r.intendedAt },
      },
    };
    const due = nextDeadline(s, stallMs, transfers)!;
    assert.equal(due, Date.parse(time) + stallMs + 1);
    const tick = (now: number) => decide({ kind: 'Tick', meta: { ...meta(now), transfers } }, s);
    assert.deepEqual(tick(due - 1), []);
    assert.equal(tick(due)[0]?.type, 'StepFailed');
    assert.ok(due > nextDeadline(s, stallMs)!, 'without the report it is earlier: the intent only');
  });

  it('with a command stored later than its intent (a coordinator died between them), counts from the store', () => {
    // Given the restore intended, and its command stored 20 s later by the coordinator that took the migration over
    const s = inFlightAfter('restore');
    const r = Object.values(s.steps).find((x) => x.step === 'restore')!;
    const sentAt = { [r.command.commandId]: Date.parse(r.intendedAt) + 20_000 };

    // Then its deadline is its timeout after that store, and a Tick with it gives the step up only then
    const due = nextDeadline(s, stallMs, {}, sentAt)!;
    assert.equal(due, Date.parse(r.intendedAt) + 20_000 + r.command.timeoutMs + 1);
    const tick = (now: number) => decide({ kind: 'Tick', meta: { ...meta(now), sentAt } }, s);
    assert.deepEqual(tick(due - 1), []);
    assert.equal(tick(due)[0]?.type, 'StepFailed');
    // And a store before the intent's time (a clock behind) changes nothing
    assert.equal(nextDeadline(s, stallMs, {}, { [r.command.commandId]: 0 }), nextDeadline(s, stallMs));
  });

  it('is none for a migration with nothing in flight, or one that ended', () => {
    const requested = inFlightAfter('preflightTarget');
    const before = fold(simulate(liveScenario({ localDisks: 1 })).events.slice(0, 1), initialState());
    assert.equal(nextDeadline(before, stallMs), undefined);
    assert.equal(nextDeadline({ ...requested, terminal: 'completed' }, stallMs), undefined);
  });
});
