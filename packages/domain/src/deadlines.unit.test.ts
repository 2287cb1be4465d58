import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { executorOutcome, liveScenario, meta, simulate } from '../test/simulate.ts';
import { decide } from './decide.ts';
import { nextDeadline } from './deadlines.ts';
import { fold } from './evolve.ts';
import type { MigrationEvent } from '@haul/schemas';
import { initialState } from './state.ts';
import type { MigrationState } from './state.ts';

const times = { stallMs: meta(0).stallMs, freshMs: meta(0).commandFreshMs };
const { stallMs } = times;
const commandFreshMs = times.freshMs;

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
      const due = nextDeadline(s, times)!;
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
    const due = nextDeadline(s, times, transfers)!;
    assert.equal(due, Date.parse(time) + stallMs + 1);
    const tick = (now: number) => decide({ kind: 'Tick', meta: { ...meta(now), transfers } }, s);
    assert.deepEqual(tick(due - 1), []);
    assert.equal(tick(due)[0]?.type, 'StepFailed');
    assert.ok(due > nextDeadline(s, times)!, 'without the report it is earlier: the intent only');
  });

  it('with a command stored later than its intent (a coordinator died between them), counts from the store', () => {
    // Given the restore intended, and its command stored 20 s later by the coordinator that took the migration over
    const s = inFlightAfter('restore');
    const r = Object.values(s.steps).find((x) => x.step === 'restore')!;
    const sentAt = { [r.command.commandId]: Date.parse(r.intendedAt) + 20_000 };

    // Then its deadline is its timeout after that store, and a Tick with it gives the step up only then
    const due = nextDeadline(s, times, {}, sentAt)!;
    assert.equal(due, Date.parse(r.intendedAt) + 20_000 + r.command.timeoutMs + 1);
    const tick = (now: number) => decide({ kind: 'Tick', meta: { ...meta(now), sentAt } }, s);
    assert.deepEqual(tick(due - 1), []);
    assert.equal(tick(due)[0]?.type, 'StepFailed');
    // And a store before the intent's time (a clock behind) changes nothing
    assert.equal(nextDeadline(s, times, {}, { [r.command.commandId]: 0 }), nextDeadline(s, times));
  });

  it('is none for a migration with nothing in flight, or one that ended', () => {
    const requested = inFlightAfter('preflightTarget');
    const before = fold(simulate(liveScenario({ localDisks: 1 })).events.slice(0, 1), initialState());
    assert.equal(nextDeadline(before, times), undefined);
    assert.equal(nextDeadline({ ...requested, terminal: 'completed' }, times), undefined);
  });
});

describe("a node agent's steps, run one after the other in the order they were intended", () => {
  // Given two shared disks' preparations intended at once (three steps each, run by the source agent in turn)
  const log = simulate(liveScenario({ localDisks: 0, sharedDisks: 2 })).events;
  const last = log.findIndex(
    (e) => e.type === 'StepIntended' && e.data.commandId.endsWith(':snapshotCopy:1:1'),
  );
  const chain = log.slice(0, last + 1);
  const intentOf = (step: string, subject: string) =>
    chain.find(
      (e): e is Extract<MigrationEvent, { type: 'StepIntended' }> =>
        e.type === 'StepIntended' && e.data.commandId.endsWith(`:${step}:${subject}:1`),
    )!;
  const t0 = Date.parse(intentOf('backupDescriptor', '1').time);
  /** The agent's success of a step, at `ms` after the intents. */
  const succeeded = (step: string, subject: string, ms: number): MigrationEvent =>
    executorOutcome(intentOf(step, subject).data, 'StepSucceeded', { result: {} }, t0 + ms);
  const given = (...outcomes: MigrationEvent[]) => fold([...chain, ...outcomes], initialState());
  /** The steps a tick gave up, by the key its message starts with. */
  const failedSteps = (events: MigrationEvent[]) =>
    events.flatMap((e) => (e.type === 'StepFailed' ? [e.data.error.message.split(' ')[0]] : []));

  it("times a step from the end of the one before it, not from its intent: the second disk's backup is not given up for the first's slow snapshots", () => {
    // When the first disk's steps took 30.5 s in all (slow shared storage)
    const s = given(
      succeeded('backupDescriptor', '0', 100),
      succeeded('snapshotOrigin', '0', 15_000),
      succeeded('snapshotCopy', '0', 30_500),
    );
    const backup1 = intentOf('backupDescriptor', '1').data.timeoutMs;

    // Then a tick 30 s after the intents gives nothing up (before: the second backup, which had begun 0.5 s before)
    assert.deepEqual(tickAt(s, t0 + backup1 + 1), []);
    // and the second backup's deadline is its timeout after the first disk's last step
    const due = nextDeadline(s, times)!;
    assert.equal(due, t0 + 30_500 + backup1 + 1);
    // (with the two steps behind it, which never began)
    assert.deepEqual(failedSteps(tickAt(s, due)), [
      'backupDescriptor:1',
      'snapshotOrigin:1',
      'snapshotCopy:1',
    ]);
  });

  it('gives the steps behind one in flight up with it, in the same tick, as never begun: a dead agent does not hold the rollback for each timeout in turn', () => {
    // When the agent reported nothing, past the first step's timeout
    const s = given();
    const due = nextDeadline(s, times)!;
    assert.equal(due, t0 + intentOf('backupDescriptor', '0').data.timeoutMs + 1);

    // Then every step of its queue is given up at once, those behind the first as never begun
    const out = tickAt(s, due).filter((e) => e.type === 'StepFailed');
    assert.equal(out.length, 6);
    assert.ok(
      out
        .slice(1)
        .every(
          (e) =>
            e.type === 'StepFailed' && /never began: backupDescriptor:0 before it/.test(e.data.error.message),
        ),
    );
  });

  it('but not a step behind it stored less than commandFreshMs before: its agent may check it on a first read', () => {
    // Given the second disk's backup stored (by a coordinator that took the migration over) 2 s before the first
    // step's deadline
    const s = given();
    const first = intentOf('backupDescriptor', '0').data.timeoutMs;
    const late = intentOf('backupDescriptor', '1').data.commandId;
    const sentAt = { [late]: t0 + first - 2_000 };
    const tick = (now: number) =>
      decide({ kind: 'Tick', meta: { ...meta(now), sentAt } }, s).filter((e) => e.type === 'StepFailed');

    // Then at the first step's deadline it is left out, and given up commandFreshMs after its store
    assert.ok(!failedSteps(tick(t0 + first + 1)).includes('backupDescriptor:1'));
    assert.ok(failedSteps(tick(t0 + first - 2_000 + commandFreshMs + 1)).includes('backupDescriptor:1'));
  });

  it('and once the step it waited behind is given up, it is still given up commandFreshMs after its store, not a whole timeout after that give-up', () => {
    // Given the same step stored 2 s before the first step's deadline, and the tick at that deadline folded: the
    // first step given up (its agent may still run it: nothing ended it), this one left in flight
    const first = intentOf('backupDescriptor', '0').data.timeoutMs;
    const late = intentOf('backupDescriptor', '1').data.commandId;
    const sentAt = { [late]: t0 + first - 2_000 };
    const tickAt = (state: MigrationState, now: number) =>
      decide({ kind: 'Tick', meta: { ...meta(now), sentAt } }, state);
    const firstTick = tickAt(given(), t0 + first + 1);
    assert.ok(!failedSteps(firstTick).includes('backupDescriptor:1'));
    const s = fold([...chain, ...firstTick], initialState());
    assert.equal(s.steps['backupDescriptor:1']?.status, 'intended');

    // Then its deadline is commandFreshMs after its store (before: a whole timeout after the first step's give-up)
    const due = t0 + first - 2_000 + commandFreshMs + 1;
    assert.equal(nextDeadline(s, times, {}, sentAt), due);
    const [failed] = tickAt(s, due).filter((e) => e.type === 'StepFailed');
    assert.ok(failed?.type === 'StepFailed');
    assert.match(failed.data.error.message, /^backupDescriptor:1 never began: backupDescriptor:0 before it/);

    // And once the agent has reported its end of each step before it on its queue (the first one's late failure, and
    // that the two given up behind it never ran), the queue is free: the step is timed from there as usual
    const endOf = (step: string, code: string) =>
      executorOutcome(
        intentOf(step, '0').data,
        'StepFailed',
        { error: { code, message: 'ended' } },
        t0 + first + 500,
      );
    const ends = [
      endOf('backupDescriptor', 'HAUL_TOOL_FAILED'),
      endOf('snapshotOrigin', 'HAUL_NOT_RUN'),
      endOf('snapshotCopy', 'HAUL_NOT_RUN'),
    ];
    const timeout = intentOf('backupDescriptor', '1').data.timeoutMs;
    const freed = fold([...chain, ...firstTick, ...ends], initialState());
    assert.equal(nextDeadline(freed, times, {}, sentAt), t0 + first + 1 + timeout + 1);
    // but not while one of them has not
    const notYet = fold([...chain, ...firstTick, ...ends.slice(0, 2)], initialState());
    assert.equal(nextDeadline(notYet, times, {}, sentAt), due);
  });
});
