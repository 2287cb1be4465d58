import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MigrationEvent } from '@haul/schemas';
import { given } from '../test/decider-spec.ts';
import { liveScenario, meta, simulate } from '../test/simulate.ts';
import { planRollback } from './plans.ts';

/** A live migration with three pre-dumps; the final dump is decided while the stream of img/3 still runs. */
const happy = simulate(liveScenario({ pagesPerIteration: [9000, 5000, 3000, 10] })).events;

const keyOf = (e: MigrationEvent) =>
  e.type === 'StepIntended' || e.type === 'StepSucceeded'
    ? `${e.data.step}:${e.data.commandId.split(':').at(-2)}`
    : '';
function until(pred: (e: MigrationEvent) => boolean): MigrationEvent[] {
  const i = happy.findIndex(pred);
  assert.ok(i >= 0, 'no such event in the log');
  return happy.slice(0, i + 1);
}
const intendedEvent = (key: string) =>
  happy.find((e) => e.type === 'StepIntended' && keyOf(e) === key) as Extract<
    MigrationEvent,
    { type: 'StepIntended' }
  >;
const succeeded = (key: string) => (e: MigrationEvent) => e.type === 'StepSucceeded' && keyOf(e) === key;
const at = (e: MigrationEvent, plusMs: number) => Date.parse(e.time) + plusMs;

function progress(commandId: string, bytesDone: number, timeMs: number): MigrationEvent {
  return {
    eventId: `${commandId}:progress:${bytesDone}:${timeMs}`,
    migrationId: 'mig-sim01',
    type: 'StreamProgress',
    actor: { service: 'image-streamer', node: 'node-a' },
    time: new Date(timeMs).toISOString(),
    schemaVersion: 1,
    data: { commandId, bytesDone, bytesTotal: 1e9, mbPerSec: 1, etaMs: 1000 },
  };
}
const tick = (ms: number) => ({ kind: 'Tick', meta: meta(ms) }) as const;
const stallMs = meta(0).stallMs;

describe('given the final dump decided while an earlier stream still runs', () => {
  const decided = until((e) => e.type === 'IterationDecided' && e.data.decision === 'final-dump');
  it('the CT is not frozen yet: nothing is intended while img/3 streams', () => {
    assert.ok(decided.some((e) => e.type === 'StepIntended' && keyOf(e) === 'streamImages:2'));
    assert.ok(!decided.some(succeeded('streamImages:2')));
    given(decided)
      .when({ kind: 'Advance', meta: meta(Date.parse(decided.at(-1)!.time)) })
      .thenNothingHappened();
  });
  it('when that stream is done, the last pre-dump streams, still without freezing', () => {
    const log = until(succeeded('streamImages:2'));
    given(log)
      .when({ kind: 'Advance', meta: meta(Date.parse(log.at(-1)!.time)) })
      .then([{ type: 'StepIntended', data: { step: 'streamImages', args: { priority: 'iteration' } } }]);
  });
  it('only once every earlier stream is done is the final dump intended', () => {
    const log = until(succeeded('streamImages:3'));
    given(log)
      .when({ kind: 'Advance', meta: meta(Date.parse(log.at(-1)!.time)) })
      .then([{ type: 'StepIntended', data: { step: 'finalDump' } }]);
  });
});

describe('given an image stream in flight', () => {
  const intent = intendedEvent('streamImages:2');
  const log = until((e) => e === intent);
  const cmd = intent.data.commandId;
  it(`that moved no bytes for ${stallMs} ms is recorded as failed: HAUL_STREAM_STALLED`, () => {
    given(log)
      .when(tick(at(intent, stallMs - 1)))
      .thenNothingHappened();
    const [failed] = given(log)
      .when(tick(at(intent, stallMs + 1)))
      .then([
        {
          type: 'StepFailed',
          data: { commandId: cmd, step: 'streamImages', error: { code: 'HAUL_STREAM_STALLED' } },
        },
      ]);
    assert.equal(failed!.eventId, `${cmd}:stalled`);
  });
  it('whose bytes advance is not stalled; the stall clock runs from the last advance', () => {
    const moving = [...log, progress(cmd, 1000, at(intent, 20_000))];
    given(moving)
      .when(tick(at(intent, 20_000 + stallMs - 1)))
      .thenNothingHappened();
    given(moving)
      .when(tick(at(intent, 20_000 + stallMs + 1)))
      .then([{ type: 'StepFailed', data: { error: { code: 'HAUL_STREAM_STALLED' } } }]);
  });
  it('that reports the same byte count again is not moving', () => {
    const stuck = [...log, progress(cmd, 1000, at(intent, 1000)), progress(cmd, 1000, at(intent, 25_000))];
    given(stuck)
      .when(tick(at(intent, 1000 + stallMs + 1)))
      .then([{ type: 'StepFailed', data: { error: { code: 'HAUL_STREAM_STALLED' } } }]);
  });
  it('progress of another command does not count for it', () => {
    const other = [...log, progress('mig-sim01:streamImages:1:1', 5000, at(intent, 20_000))];
    given(other)
      .when(tick(at(intent, stallMs + 1)))
      .then([{ type: 'StepFailed', data: { commandId: cmd } }]);
  });
  it('a host step beside it (the running pre-dump) is only given up after its own timeout', () => {
    const got = given(log)
      .when(tick(at(intent, stallMs + 1)))
      .then([{ type: 'StepFailed' }]);
    assert.equal(got[0]!.type === 'StepFailed' && got[0]!.data.step, 'streamImages');
  });
  it('a stalled stream starts the rollback at once', () => {
    const [failed] = given(log)
      .when(tick(at(intent, stallMs + 1)))
      .then([{ type: 'StepFailed' }]);
    given([...log, failed!])
      .when({ kind: 'Advance', meta: meta(at(intent, stallMs + 1)) })
      .then([{ type: 'RollbackStarted', data: { cause: { code: 'HAUL_STREAM_STALLED' } } }]);
  });
});

describe('given a local disk copy in flight', () => {
  const intent = intendedEvent('copyLocalDisk:0');
  // The last step of the frozen window to finish: everything sent beside it has its outcome.
  const log = happy.slice(0, happy.findIndex(succeeded('copyLocalDisk:0')));
  it('that moved no bytes is given up as stalled, and rollback removes its partial copy', () => {
    const [failed] = given(log)
      .when(tick(at(intent, stallMs + 1)))
      .then([
        { type: 'StepFailed', data: { step: 'copyLocalDisk', error: { code: 'HAUL_STREAM_STALLED' } } },
      ]);
    const plan = planRollback([...log, failed!]).map((a) => a.key);
    assert.ok(plan.includes('removeFiles:target-disk0'), plan.join(', '));
  });
});
