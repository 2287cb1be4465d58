import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MigrationEvent, TransferProgress } from '@haul/schemas';
import { given } from '../test/decider-spec.ts';
import { liveScenario, meta, simulate } from '../test/simulate.ts';
import { decide } from './decide.ts';
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

/** A transfer's latest report (the progress bucket), as the coordinator reads it before a Tick. */
function report(
  commandId: string,
  timeMs: number,
  o: { bytesDone?: number; movedAtMs?: number; waiting?: Wait; waitSinceMs?: number; waitedUntilMs?: number },
): TransferProgress {
  const iso = (ms: number) => new Date(ms).toISOString();
  return {
    migrationId: 'mig-sim01',
    commandId,
    node: 'node-a',
    time: iso(timeMs),
    bytesDone: o.bytesDone ?? 0,
    bytesTotal: 1e9,
    mbPerSec: 1,
    etaMs: 1000,
    ...(o.movedAtMs !== undefined ? { movedAt: iso(o.movedAtMs) } : {}),
    ...(o.waiting ? { waiting: { reason: o.waiting, since: iso(o.waitSinceMs ?? timeMs) } } : {}),
    ...(o.waitedUntilMs !== undefined ? { waitedUntil: iso(o.waitedUntilMs) } : {}),
  };
}
type Wait = NonNullable<TransferProgress['waiting']>['reason'];
const tick = (ms: number, ...reports: TransferProgress[]) =>
  ({
    kind: 'Tick',
    meta: { ...meta(ms), transfers: Object.fromEntries(reports.map((r) => [r.commandId, r])) },
  }) as const;
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
  it('whose bytes advance is not stalled; the stall clock runs from when they last moved', () => {
    const moving = report(cmd, at(intent, 20_500), { bytesDone: 1000, movedAtMs: at(intent, 20_000) });
    given(log)
      .when(tick(at(intent, 20_000 + stallMs - 1), moving))
      .thenNothingHappened();
    given(log)
      .when(tick(at(intent, 20_000 + stallMs + 1), moving))
      .then([{ type: 'StepFailed', data: { error: { code: 'HAUL_STREAM_STALLED' } } }]);
  });
  it('that keeps reporting without moving bytes or waiting is not alive: reports alone are no progress', () => {
    const stuck = report(cmd, at(intent, 25_000), { bytesDone: 1000, movedAtMs: at(intent, 1000) });
    given(log)
      .when(tick(at(intent, 1000 + stallMs + 1), stuck))
      .then([{ type: 'StepFailed', data: { error: { code: 'HAUL_STREAM_STALLED' } } }]);
  });
  it('a report of another command does not count for it', () => {
    const other = report('mig-sim01:streamImages:1:1', at(intent, 20_000), {
      bytesDone: 5000,
      movedAtMs: at(intent, 20_000),
    });
    given(log)
      .when(tick(at(intent, stallMs + 1), other))
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

describe('given a pre-dump transfer held behind a final-dump transfer (it waits on purpose)', () => {
  const intent = intendedEvent('streamImages:2');
  const log = until((e) => e === intent);
  const cmd = intent.data.commandId;
  const since = at(intent, 2000);
  it('is not given up while its reports say it waits, however long it has moved no bytes', () => {
    const waiting = report(cmd, at(intent, 3 * stallMs), { waiting: 'priority', waitSinceMs: since });
    given(log)
      .when(tick(at(intent, 3 * stallMs + stallMs - 1), waiting))
      .thenNothingHappened();
  });
  for (const reason of ['slot', 'sync'] as const)
    it(`waiting for ${reason === 'slot' ? 'a transfer slot' : 'the receiver to sync'} counts the same`, () => {
      const waiting = report(cmd, at(intent, 2 * stallMs), { waiting: reason, waitSinceMs: since });
      given(log)
        .when(tick(at(intent, 3 * stallMs - 1), waiting))
        .thenNothingHappened();
    });
  it(`is given up ${stallMs} ms after the last report that it waits: a streamer that died while it waited`, () => {
    const last = report(cmd, at(intent, 50_000), { waiting: 'priority', waitSinceMs: since });
    given(log)
      .when(tick(at(intent, 50_000 + stallMs + 1), last))
      .then([
        {
          type: 'StepFailed',
          data: { commandId: cmd, step: 'streamImages', error: { code: 'HAUL_STREAM_STALLED' } },
        },
      ]);
  });
  it('once the wait ended, the stall clock runs from its end: no bytes for the stall time after it is a stall', () => {
    const ended = report(cmd, at(intent, 61_000), {
      bytesDone: 10,
      movedAtMs: at(intent, 1000),
      waitedUntilMs: at(intent, 60_000),
    });
    given(log)
      .when(tick(at(intent, 60_000 + stallMs - 1), ended))
      .thenNothingHappened();
    given(log)
      .when(tick(at(intent, 60_000 + stallMs + 1), ended))
      .then([{ type: 'StepFailed', data: { error: { code: 'HAUL_STREAM_STALLED' } } }]);
  });
  it('the step timeout still ends it, wait or not', () => {
    const timeoutMs = intent.data.timeoutMs;
    const waiting = report(cmd, at(intent, timeoutMs), { waiting: 'priority', waitSinceMs: since });
    // (the pre-dump beside it times out too by then)
    const failed = decide(tick(at(intent, timeoutMs + 1), waiting), given(log).state).find(
      (e) => e.type === 'StepFailed' && e.data.commandId === cmd,
    );
    assert.equal(failed?.type === 'StepFailed' && failed.data.error.code, 'HAUL_STEP_TIMEOUT');
  });
});
