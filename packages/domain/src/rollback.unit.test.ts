import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { executorServices, type Actor, type MigrationEvent, type StepCommand } from '@haul/schemas';
import { given } from '../test/decider-spec.ts';
import { executorOutcome, meta, simulate } from '../test/simulate.ts';
import { decide } from './decide.ts';
import { errorCodes } from './errors.ts';
import { fold } from './evolve.ts';
import { planRollback } from './plans.ts';
import { inFlight, initialState } from './state.ts';

const m = meta(Date.parse('2026-01-01T01:00:00.000Z'));
const advance = { kind: 'Advance', meta: m } as const;
const scenario = {
  mode: 'live' as const,
  sharedDisks: 1,
  localDisks: 1,
  pagesPerIteration: [10],
  memTrack: true,
  preDump: 'auto' as const,
  picks: [],
};
const happy = simulate({ ...scenario, fault: { kind: 'none' } }).events;
/** The copy's snapshot fails in the frozen window: the rollback restores the disk, resumes, removes the copies. */
const failedAtCopy = simulate({
  ...scenario,
  fault: { kind: 'fail', step: 'snapshotCopy', nth: 1, partial: true },
}).events;

const keyOf = (e: MigrationEvent) =>
  e.type === 'StepIntended' ? `${e.data.step}:${e.data.commandId.split(':').at(-2)}` : '';
const upTo = (log: MigrationEvent[], pred: (e: MigrationEvent) => boolean) =>
  log.slice(0, log.findIndex(pred) + 1);
const intended = (key: string) => (e: MigrationEvent) => keyOf(e) === key;
const succeeded = (key: string) => (e: MigrationEvent) =>
  e.type === 'StepSucceeded' && `${e.data.step}:${e.data.commandId.split(':').at(-2)}` === key;

/** The rejection of the command `of` intends, by `node`'s service for the command's executor unless `service`. */
function rejection(
  of: MigrationEvent,
  node: string,
  code: string,
  field?: string,
  service?: Actor['service'],
): MigrationEvent {
  const cmd = of.data as StepCommand;
  return {
    eventId: `${of.migrationId}:rejected:${cmd.commandId}`,
    migrationId: of.migrationId,
    type: 'CommandRejected',
    actor: { service: service ?? executorServices[cmd.executor], node },
    time: m.now,
    schemaVersion: 1,
    data: {
      commandId: cmd.commandId,
      error: { code, message: `refused ${cmd.step}`, ...(field ? { field } : {}) },
    },
  };
}

describe('given a rollback in the frozen window with a local disk copied to the target', () => {
  it('the source comes back first — disk restored, CT resumed — and the target copies are removed after', () => {
    const log = upTo(failedAtCopy, (e) => e.type === 'RollbackStarted');
    const done = [
      ...log,
      ...happy.filter(succeeded('copyLocalDisk:0')),
      ...happy.filter(succeeded('streamImages:final')),
    ];
    assert.deepEqual(
      planRollback(done).map((a) => a.key),
      [
        'restoreSharedDisk:1',
        'resumeSource:-',
        'removeFiles:target-disk0',
        'removeFiles:source-images',
        'removeFiles:target-images',
        'unlockSource:-',
      ],
    );
    const intents = failedAtCopy.map(keyOf).filter((k) => k !== '');
    assert.ok(
      intents.indexOf('resumeSource:-') < intents.indexOf('removeFiles:target-disk0'),
      intents.join(' '),
    );
  });
  it('while only transfers still run, the source is brought back without waiting for them', () => {
    const rolling = upTo(failedAtCopy, (e) => e.type === 'RollbackStarted');
    const s = fold(rolling, initialState());
    assert.ok(['copyLocalDisk:0', 'streamImages:final'].every((k) => s.steps[k]?.status === 'intended'));
    given(rolling)
      .when(advance)
      .then([{ type: 'StepIntended', data: { step: 'restoreSharedDisk' } }]);
    const restored = upTo(failedAtCopy, succeeded('restoreSharedDisk:1')).filter(
      (e) => !succeeded('copyLocalDisk:0')(e) && !succeeded('streamImages:final')(e),
    );
    given(restored)
      .when(advance)
      .then([{ type: 'StepIntended', data: { step: 'resumeSource' } }]);
  });
  it('the target copies wait for the transfers: nothing is removed while a copy may still be written', () => {
    const resumed = upTo(failedAtCopy, succeeded('resumeSource:-')).filter(
      (e) => !succeeded('copyLocalDisk:0')(e) && !succeeded('streamImages:final')(e),
    );
    given(resumed).when(advance).thenNothingHappened();
  });
});

/**
 * A migration whose transfer `step` the coordinator gave up (its streamer died in it, or lost the bus while its
 * connection to the target still ran), rolled back: its log, where the removal `removal` succeeded in it, and the
 * transfer's late success, as its streamer would append it.
 */
function gaveUpTransfer(step: 'copyLocalDisk' | 'streamImages', removal: string) {
  const { events } = simulate({ ...scenario, fault: { kind: 'crash', step, nth: 1, partial: true } });
  const removed = events.findIndex(
    (e) => e.type === 'StepSucceeded' && e.data.commandId.includes(`:removeFiles:${removal}:`),
  );
  const transfer = events.find(
    (e): e is Extract<MigrationEvent, { type: 'StepIntended' }> =>
      e.type === 'StepIntended' && e.data.step === step,
  )!;
  const late = executorOutcome(
    transfer.data,
    'StepSucceeded',
    { result: { bytes: 4096, files: 1, durationMs: 10, mbPerSec: 0.4 } },
    Date.parse(m.now),
  );
  return { events, removed, late };
}

describe('given a local disk copy the coordinator gave up, and its copy on the target removed', () => {
  // The coordinator gave the copy up at its timeout, and the rollback removed the target's copy at once
  const { events, removed, late } = gaveUpTransfer('copyLocalDisk', 'target-disk0');
  const beforeRemoval = events.slice(0, removed + 1);

  it("a late success of the copy plans the copy's removal again: the copy was written after its removal", () => {
    assert.ok(removed > 0 && events.some((e) => e.type === 'MigrationRolledBack'));
    const keys = (log: MigrationEvent[]) => planRollback(log).map((a) => a.key);
    assert.ok(!keys(beforeRemoval).includes('removeFiles:target-disk0'), 'removed once');
    assert.ok(keys([...beforeRemoval, late]).includes('removeFiles:target-disk0'), 'to remove again');
    given([...beforeRemoval, late])
      .when(advance)
      .then([{ type: 'StepIntended', data: { step: 'removeFiles', attempt: 2 } }]);
  });

  it('a success of the copy after its removal was intended, before its end, plans the removal again too', () => {
    // The streamer wrote the copy again between the removal's start and its end
    const intended = events.findIndex(
      (e) => e.type === 'StepIntended' && e.data.commandId.includes(':removeFiles:target-disk0:'),
    );
    const between = [...events.slice(0, intended + 1), late, ...events.slice(intended + 1, removed + 1)];
    assert.ok(planRollback(between).some((a) => a.key === 'removeFiles:target-disk0'));
  });

  it("an older attempt's success after a new attempt was intended does not count as a removal after the late success", () => {
    // Given the removal tried again for the late success (attempt 2), and attempt 1's success told once more after it
    const log = [...beforeRemoval, late];
    const again = decide(advance, fold(log, initialState()))[0]!;
    const first = events[removed]!;
    const told: MigrationEvent = { ...first, eventId: `${first.eventId}:again` };
    // Then the removal is still to do: attempt 1 was intended before the copy's late success
    assert.ok(planRollback([...log, again, told]).some((a) => a.key === 'removeFiles:target-disk0'));
  });

  it('a removal resolved by an operator after the late success counts as done', () => {
    const again = decide(advance, fold([...beforeRemoval, late], initialState()))[0]!;
    const stuck: MigrationEvent = {
      ...again,
      eventId: 'x:stuck',
      type: 'MigrationStuck',
      data: {
        action: 'removeFiles:target-disk0',
        step: 'removeFiles',
        plan: 'rollback',
        attempts: 1,
        reason: 'x',
      },
    };
    const resolved: MigrationEvent = {
      ...again,
      eventId: 'x:resolved',
      type: 'ActionResolved',
      data: {
        action: 'removeFiles:target-disk0',
        step: 'removeFiles',
        reason: 'removed by hand',
      },
    };
    const log = [...beforeRemoval, late, again, stuck, resolved];
    assert.ok(
      !planRollback(log)
        .map((a) => a.key)
        .includes('removeFiles:target-disk0'),
    );
  });
});

describe('given the memory images transfer the coordinator gave up, and the target image folder removed', () => {
  const { events, removed, late } = gaveUpTransfer('streamImages', 'target-images');

  it("a late success of the transfer plans the image folder's removal again: its images were written after it", () => {
    assert.ok(removed > 0);
    const keys = (log: MigrationEvent[]) => planRollback(log).map((a) => a.key);
    assert.ok(!keys(events.slice(0, removed + 1)).includes('removeFiles:target-images'), 'removed once');
    assert.ok(keys([...events.slice(0, removed + 1), late]).includes('removeFiles:target-images'));
  });
});

describe('given a final dump that failed after it froze the CT', () => {
  // The agent's handler goes on after criu froze the CT and holds its dump (the CT's sysctls read beside the images).
  const failedAtDump = simulate({
    ...scenario,
    fault: { kind: 'fail', step: 'finalDump', nth: 1, partial: true },
  });
  it('the rollback resumes the source, in doubt (the agent aborts the held dump, or finds the CT running)', () => {
    const rolling = upTo(failedAtDump.events, (e) => e.type === 'RollbackStarted');
    const resume = planRollback(rolling).find((a) => a.step === 'resumeSource');
    assert.deepEqual(resume && { key: resume.key, reconcile: resume.reconcile }, {
      key: 'resumeSource:-',
      reconcile: true,
    });
  });
  it('and the CT runs on its source when the migration has rolled back', () => {
    assert.equal(failedAtDump.terminal, 'MigrationRolledBack');
    assert.equal(failedAtDump.host.ct.source, 'running');
  });
  it('but one that failed before the freeze (criu undoes it) is not in doubt: nothing resumes the source', () => {
    const before = simulate({
      ...scenario,
      fault: { kind: 'fail', step: 'finalDump', nth: 1, partial: false },
    });
    const rolling = upTo(before.events, (e) => e.type === 'RollbackStarted');
    assert.deepEqual(
      planRollback(rolling).filter((a) => a.step === 'resumeSource'),
      [],
    );
    assert.equal(before.terminal, 'MigrationRolledBack');
  });
  it('and one whose held dump was found ended after the freeze (HAUL_DUMP_ENDED) is in doubt: the source is resumed', () => {
    const before = simulate({
      ...scenario,
      fault: { kind: 'fail', step: 'finalDump', nth: 1, partial: false },
    });
    const ended = upTo(before.events, (e) => e.type === 'RollbackStarted').map((e) =>
      e.type === 'StepFailed' && e.data.step === 'finalDump'
        ? { ...e, data: { ...e.data, error: { ...e.data.error, code: errorCodes.dumpEnded } } }
        : e,
    );
    assert.deepEqual(
      planRollback(ended)
        .filter((a) => a.step === 'resumeSource')
        .map((a) => a.reconcile),
      [true],
    );
  });
});

/**
 * `log` and a refusal, then the coordinator's first decision on it: the step's StepFailed, with the rejection's
 * error, not retryable.
 */
function refused(log: MigrationEvent[], refusal: MigrationEvent): MigrationEvent[] {
  const rej = refusal.data as { commandId: string; error: { code: string } };
  const recorded = given([...log, refusal])
    .when(advance)
    .then([
      {
        type: 'StepFailed',
        data: { commandId: rej.commandId, error: { code: rej.error.code, retryable: false } },
      },
    ]);
  assert.equal(recorded[0]!.eventId, `${rej.commandId}:rejected`);
  return [...log, refusal, ...recorded];
}

describe('given a command its executor refused (CommandRejected)', () => {
  // The first pass of the local disk's copy, while the CT runs: nothing was copied before it.
  const copying = upTo(happy, intended('copyLocalDisk:0.0'));
  const copyIntent = copying.at(-1)!;
  it('a refused forward step fails at once with the rejection: the coordinator records its StepFailed and rolls back without a timeout', () => {
    given(refused(copying, rejection(copyIntent, 'node-a', 'HAUL_PATH_OUTSIDE_ROOTS', 'args.sourceDir')))
      .when(advance)
      .then([
        {
          type: 'RollbackStarted',
          data: {
            reason: 'copyLocalDisk:0.0 failed',
            cause: { code: 'HAUL_PATH_OUTSIDE_ROOTS', retryable: false },
          },
        },
      ]);
  });
  it('a refusal whose StepFailed is in the log is not recorded again', () => {
    const log = refused(copying, rejection(copyIntent, 'node-a', 'HAUL_PATH_OUTSIDE_ROOTS'));
    const rolling = [...log, ...decide(advance, fold(log, initialState()))];
    assert.equal(rolling.filter((e) => e.type === 'StepFailed').length, 1);
    assert.equal(rolling.at(-1)!.type, 'RollbackStarted');
  });
  it('a refused copy left nothing on the target: the rollback removes no copy of it', () => {
    const log = [...copying, rejection(copyIntent, 'node-a', 'HAUL_PATH_OUTSIDE_ROOTS')];
    assert.ok(!planRollback(log).some((a) => a.key === 'removeFiles:target-disk0'));
  });
  it('a refusal by another node or executor (a misdelivered command) says nothing about the command', () => {
    given([...copying, rejection(copyIntent, 'node-b', 'HAUL_PATH_OUTSIDE_ROOTS')])
      .when(advance)
      .thenNothingHappened();
    // The streamer's command refused by node-a's agent, whatever the code: node-a's streamer may still run it.
    for (const code of ['HAUL_WRONG_EXECUTOR', 'HAUL_COMMAND_UNHANDLED'])
      given([...copying, rejection(copyIntent, 'node-a', code, 'step', 'node-agent')])
        .when(advance)
        .thenNothingHappened();
  });
  it('a step its addressee has no handler for (an older version) fails at once, without a timeout', () => {
    given(refused(copying, rejection(copyIntent, 'node-a', 'HAUL_WRONG_EXECUTOR', 'step')))
      .when(advance)
      .then([
        {
          type: 'RollbackStarted',
          data: {
            reason: 'copyLocalDisk:0.0 failed',
            cause: { code: 'HAUL_WRONG_EXECUTOR', retryable: false },
          },
        },
      ]);
  });
  it("an agent whose fold ignores the refusal (an older version) sees the step end by the coordinator's StepFailed", () => {
    // Given a refusal as a fold from before this refusal rule reads the log: without the CommandRejected
    const refusal = rejection(copyIntent, 'node-a', 'HAUL_WRONG_EXECUTOR', 'step');
    const olderFold = (log: MigrationEvent[]) =>
      fold(
        log.filter((e) => e.type !== 'CommandRejected'),
        initialState(),
      );
    const cid = (copyIntent.data as StepCommand).commandId;
    const waitsOn = (log: MigrationEvent[]) =>
      inFlight(olderFold(log)).some((r) => r.command.commandId === cid);
    // Then without the coordinator's StepFailed the step stays in flight for it (its runsBefore would hold the
    // migration's later commands on that executor for ever), and with it the step has ended
    assert.equal(waitsOn([...copying, refusal]), true);
    assert.equal(waitsOn(refused(copying, refusal)), false);
  });
  it('a refused compensation waits for an operator at once, with the rejection as the reason', () => {
    const removing = upTo(failedAtCopy, intended('removeFiles:target-disk0'));
    given(refused(removing, rejection(removing.at(-1)!, 'node-b', 'HAUL_PATH_OUTSIDE_ROOTS', 'args.paths.0')))
      .when(advance)
      .then([
        {
          type: 'MigrationStuck',
          data: {
            action: 'removeFiles:target-disk0',
            plan: 'rollback',
            attempts: 1,
            lastError: { code: 'HAUL_PATH_OUTSIDE_ROOTS', field: 'args.paths.0' },
          },
        },
      ]);
  });
});

describe('given a migration rolling back', () => {
  const rolling = upTo(failedAtCopy, (e) => e.type === 'RollbackStarted');
  it('a cancel answers that it is already rolling back, and why', () => {
    given(rolling).when({ kind: 'Cancel', reason: 'ops', meta: m }).thenThrows('HAUL_ALREADY_ROLLING_BACK');
    assert.throws(
      () => decide({ kind: 'Cancel', reason: 'ops', meta: m }, fold(rolling, initialState())),
      /already rolling back: snapshotCopy:1 failed; it ends rolled back by itself/,
    );
  });
  it('a cancel of a stuck rollback names the stuck action and the operator commands', () => {
    const removing = upTo(failedAtCopy, intended('removeFiles:target-disk0'));
    const refusal = refused(removing, rejection(removing.at(-1)!, 'node-b', 'HAUL_PATH_OUTSIDE_ROOTS'));
    const stuck = [
      ...refusal,
      ...given(refusal)
        .when(advance)
        .then([{ type: 'MigrationStuck' }]),
    ];
    assert.throws(
      () => decide({ kind: 'Cancel', reason: 'ops', meta: m }, fold(stuck, initialState())),
      (err: Error & { code?: string }) =>
        err.code === 'HAUL_ALREADY_ROLLING_BACK' &&
        /stuck on removeFiles:target-disk0 \(HAUL_PATH_OUTSIDE_ROOTS: .*\): fix the cause and run haul retry m.*haul resolve .* --action removeFiles:target-disk0/.test(
          err.message,
        ),
    );
  });
});
