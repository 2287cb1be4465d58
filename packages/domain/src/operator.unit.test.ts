import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MigrationEvent, StepName } from '@haul/schemas';
import { given } from '../test/decider-spec.ts';
import { apply, brokenInvariants } from '../test/host-model.ts';
import { executorOutcome, meta, simulate, type SimScenario } from '../test/simulate.ts';
import type { DecideInput } from './decide.ts';
import { fold } from './evolve.ts';
import { CommandRejectedError, errorCodes } from './errors.ts';
import { maxAttemptNumber, resolve as resolveOf, retry as retryOf } from './operator.ts';
import { initialState, type MigrationState, type StepRecord } from './state.ts';
import { projectStatus } from './status.ts';

const m = meta(Date.parse('2026-01-01T01:00:00.000Z'));
const base: SimScenario = {
  mode: 'live',
  sharedDisks: 1,
  localDisks: 1,
  pagesPerIteration: [9000, 10],
  memTrack: true,
  preDump: 'auto',
  fault: { kind: 'none' },
  picks: [],
};
const always = Number.POSITIVE_INFINITY;
const ofType = <T extends MigrationEvent['type']>(log: MigrationEvent[], type: T) =>
  log.filter((e): e is Extract<MigrationEvent, { type: T }> => e.type === type);
const attemptsOf = (log: MigrationEvent[], step: StepName) =>
  ofType(log, 'StepIntended')
    .filter((e) => e.data.step === step)
    .map((e) => e.data.attempt);
const statusOf = (log: MigrationEvent[]) => projectStatus(fold(log, initialState()), log.length)!;

/** The operator does the stuck action by hand (on the host model, as the agent would have), then resolves it. */
const byHandThenResolve: SimScenario['onStuck'] = (s, host, mm) => {
  const rec = s.steps[s.stuck!.action]!;
  apply(host, rec.command, { sharedDisks: 1, localDisks: 1, pagesPerIteration: [], memTrack: true });
  return { kind: 'Resolve', action: rec.key, reason: 'done by hand', meta: mm };
};
const retry: SimScenario['onStuck'] = (_s, _h, mm) => ({ kind: 'Retry', reason: 'fixed', meta: mm });

describe('given a cleanup action that fails on every attempt', () => {
  const { events, terminal } = simulate({ ...base, alsoFail: { step: 'mergeOrigin', times: always } });
  it('the migration stops with one MigrationStuck naming the action, its attempts and its last error', () => {
    assert.equal(terminal, undefined);
    const stuck = ofType(events, 'MigrationStuck');
    assert.equal(stuck.length, 1);
    assert.equal(events.at(-1)!.type, 'MigrationStuck');
    assert.deepEqual(
      { ...stuck[0]!.data, reason: undefined },
      {
        action: 'mergeOrigin:1',
        step: 'mergeOrigin',
        plan: 'cleanup',
        attempts: 3,
        reason: undefined,
        lastError: { code: 'HAUL_TOOL_FAILED', message: 'injected', exitCode: 1 },
      },
    );
    assert.match(stuck[0]!.data.reason, /mergeOrigin:1 failed 3 times/);
  });
  it('it is recorded once: deciding again, or ticking later, adds nothing', () => {
    given(events).when({ kind: 'Advance', meta: m }).thenNothingHappened();
    given(events)
      .when({ kind: 'Tick', meta: meta(Date.parse(m.now) + 86_400_000) })
      .thenNothingHappened();
  });
  it('the status says stuck, on which action, and that it may be resolved', () => {
    const st = statusOf(events);
    assert.equal(st.phase, 'stuck');
    assert.equal(st.stuck?.action, 'mergeOrigin:1');
    assert.equal(st.stuck?.resolvable, true);
    assert.match(st.reason ?? '', /waits for an operator/);
  });
  it('a retry gives the action a fresh set of attempts, and the status leaves stuck', () => {
    const [retried] = given(events)
      .when({ kind: 'Retry', reason: 'disk fixed', meta: m })
      .then([{ type: 'RetryRequested', data: { action: 'mergeOrigin:1', reason: 'disk fixed' } }]);
    const after = [...events, retried!];
    assert.equal(statusOf(after).phase, 'cleanup');
    assert.equal(statusOf(after).stuck, undefined);
    given(after)
      .when({ kind: 'Advance', meta: m })
      .then([{ type: 'StepIntended', data: { step: 'mergeOrigin', attempt: 4 } }]);
  });
  it('a resolve of another action is refused, naming the action field', () => {
    given(events)
      .when({ kind: 'Resolve', action: 'umountSource:-', reason: 'x', meta: m })
      .thenThrows('HAUL_RESOLVE_WRONG_ACTION');
  });
  it('a resolve counts the action as done and the cleanup moves on', () => {
    const [resolved] = given(events)
      .when({ kind: 'Resolve', action: 'mergeOrigin:1', reason: 'merged by hand', meta: m })
      .then([{ type: 'ActionResolved', data: { action: 'mergeOrigin:1', step: 'mergeOrigin' } }]);
    const after = [...events, resolved!];
    assert.equal(statusOf(after).phase, 'cleanup');
    given(after)
      .when({ kind: 'Advance', meta: m })
      .then([{ type: 'StepIntended', data: { step: 'removeFiles' } }]);
  });
});

describe('given a stuck action whose late result turns out a success', () => {
  const { events } = simulate({ ...base, alsoFail: { step: 'mergeOrigin', times: always } });
  const last = ofType(events, 'StepIntended').findLast((e) => e.data.step === 'mergeOrigin')!;
  const late: MigrationEvent = {
    ...last,
    eventId: `${last.data.commandId}:late`,
    type: 'StepSucceeded',
    actor: { service: 'node-agent', node: 'node-b' },
    data: {
      commandId: last.data.commandId,
      step: 'mergeOrigin',
      node: 'node-b',
      attempt: last.data.attempt,
      reconciled: true,
      result: { actions: ['origin snapshot already merged'] },
    },
  };
  it('the stall is lifted and the cleanup moves on by itself', () => {
    assert.equal(statusOf([...events, late]).phase, 'cleanup');
    given([...events, late])
      .when({ kind: 'Advance', meta: m })
      .then([{ type: 'StepIntended', data: { step: 'removeFiles' } }]);
  });
});

describe('given the operator acts on a stuck migration', () => {
  it('fixing the cause and retrying completes it: the retried action got attempts 4 and 5', () => {
    const r = simulate({ ...base, alsoFail: { step: 'mergeOrigin', times: 4 }, onStuck: retry });
    assert.equal(r.terminal, 'MigrationCompleted');
    assert.deepEqual(attemptsOf(r.events, 'mergeOrigin'), [1, 2, 3, 4, 5]);
    assert.equal(ofType(r.events, 'MigrationStuck').length, 1);
    assert.deepEqual(brokenInvariants(r.host, r.terminal), []);
  });
  it('a retry that fails again on every attempt stops again, with a second MigrationStuck', () => {
    let retries = 0;
    const r = simulate({
      ...base,
      alsoFail: { step: 'umountSource', times: always },
      onStuck: (s, h, mm) => (retries++ < 1 ? retry(s, h, mm) : undefined),
    });
    assert.equal(r.terminal, undefined);
    assert.deepEqual(
      ofType(r.events, 'MigrationStuck').map((e) => e.data.attempts),
      [3, 3],
    );
    assert.deepEqual(attemptsOf(r.events, 'umountSource'), [1, 2, 3, 4, 5, 6]);
  });

  // A refusal stalls at once (the same arguments would be refused again); the operator fixes the executor and
  // retries: the retry is a fresh attempt, whatever refused the last one.
  for (const [step, plan] of [
    ['takeOwnership', 'release'],
    ['releaseSource', 'release'],
    ['mergeOrigin', 'cleanup'],
  ] as const)
    it(`an executor that refused ${step} (the ${plan}), fixed and retried, completes it with attempt 2`, () => {
      const r = simulate({ ...base, alsoFail: { step, times: 1, refused: true }, onStuck: retry });
      assert.equal(r.terminal, 'MigrationCompleted');
      assert.deepEqual(attemptsOf(r.events, step), [1, 2]);
      assert.deepEqual(
        ofType(r.events, 'MigrationStuck').map((e) => [e.data.action, e.data.plan, e.data.attempts]),
        [[`${step}:${step === 'mergeOrigin' ? '1' : '-'}`, plan, 1]],
      );
      assert.deepEqual(brokenInvariants(r.host, r.terminal), []);
    });
  it('a retried action refused again stalls again, on its new attempt', () => {
    let retries = 0;
    const r = simulate({
      ...base,
      alsoFail: { step: 'takeOwnership', times: always, refused: true },
      onStuck: (s, h, mm) => (retries++ < 2 ? retry(s, h, mm) : undefined),
    });
    assert.equal(r.terminal, undefined);
    assert.deepEqual(attemptsOf(r.events, 'takeOwnership'), [1, 2, 3]);
    assert.deepEqual(
      ofType(r.events, 'MigrationStuck').map((e) => e.eventId.split(':').slice(-3).join(':')),
      ['-:1:stuck', '-:2:stuck', '-:3:stuck'],
    );
  });

  // Every compensation and cleanup action, failing on every attempt, done by hand and resolved: the migration ends
  // as it would have, with every host invariant intact.
  const cases: [string, StepName, Partial<SimScenario>, MigrationEvent['type']][] = [
    ['live cleanup', 'umountSource', {}, 'MigrationCompleted'],
    ['live cleanup', 'cleanupSharedDisk', {}, 'MigrationCompleted'],
    ['live cleanup', 'mergeOrigin', {}, 'MigrationCompleted'],
    ['live cleanup', 'removeFiles', {}, 'MigrationCompleted'],
    ...(['stopTarget', 'removeFiles', 'restoreSharedDisk', 'resumeSource'] as const).map(
      (step): [string, StepName, Partial<SimScenario>, MigrationEvent['type']] => [
        'live rollback after a failed restore',
        step,
        { fault: { kind: 'fail', step: 'restore', nth: 1, partial: false } },
        'MigrationRolledBack',
      ],
    ),
    ...(['stopTarget', 'startSource', 'removeFiles'] as const).map(
      (step): [string, StepName, Partial<SimScenario>, MigrationEvent['type']] => [
        'restart rollback after a failed start',
        step,
        { mode: 'restart', fault: { kind: 'fail', step: 'startTarget', nth: 1, partial: true } },
        'MigrationRolledBack',
      ],
    ),
  ];
  for (const [what, step, sc, end] of cases)
    it(`${what}: ${step} done by hand and resolved ends in ${end} with the hosts intact`, () => {
      const r = simulate({
        ...base,
        ...sc,
        alsoFail: { step, times: always },
        onStuck: byHandThenResolve,
      });
      assert.equal(r.terminal, end);
      const stuck = ofType(r.events, 'MigrationStuck');
      assert.ok(stuck.length >= 1 && stuck.every((e) => e.data.step === step));
      assert.equal(ofType(r.events, 'ActionResolved').length, stuck.length);
      assert.deepEqual(brokenInvariants(r.host, r.terminal), []);
    });
});

describe('given the source release fails on every attempt after the commit point', () => {
  const { events } = simulate({ ...base, alsoFail: { step: 'releaseSource', times: always } });
  it('the migration is stuck on releaseSource, which may be retried but not resolved', () => {
    const st = statusOf(events);
    assert.equal(st.phase, 'stuck');
    assert.deepEqual(
      [st.stuck?.action, st.stuck?.plan, st.stuck?.resolvable],
      ['releaseSource:-', 'release', false],
    );
    given(events)
      .when({ kind: 'Resolve', action: 'releaseSource:-', reason: 'killed it', meta: m })
      .thenThrows('HAUL_RESOLVE_FORWARD_STEP');
    given(events)
      .when({ kind: 'Retry', reason: 'fixed', meta: m })
      .then([{ type: 'RetryRequested' }]);
  });
  it('a retry after the fix rolls forward to completion', () => {
    const r = simulate({ ...base, alsoFail: { step: 'releaseSource', times: 3 }, onStuck: retry });
    assert.equal(r.terminal, 'MigrationCompleted');
    assert.deepEqual(brokenInvariants(r.host, r.terminal), []);
  });
});

describe('given both steps after the commit point failing on every attempt', () => {
  const both = {
    ...base,
    alsoFail: [
      { step: 'takeOwnership' as const, times: 3 },
      { step: 'releaseSource' as const, times: 3 },
    ],
  };
  it("an operator's retry of the stuck one sends it again, beside the other's stall: not lost to it", () => {
    // Given the migration stuck on one of them, the other out of attempts too
    const { events } = simulate(both);
    const stuckOn = statusOf(events).stuck!.action;
    const other = stuckOn === 'takeOwnership:-' ? 'releaseSource' : 'takeOwnership';

    // When the operator retries it
    const [retried] = given(events)
      .when({ kind: 'Retry', reason: 'fixed', meta: m })
      .then([{ type: 'RetryRequested', data: { action: stuckOn } }]);

    // Then the retried step is sent again, and the other's stall recorded (before: the stall alone)
    given([...events, retried!])
      .when({ kind: 'Advance', meta: m })
      .then([
        { type: 'StepIntended', data: { step: stuckOn.split(':')[0], attempt: 4 } },
        { type: 'MigrationStuck', data: { step: other } },
      ]);
  });

  it('each retried once after the fix, the migration completes with the hosts intact', () => {
    const r = simulate({ ...both, onStuck: retry });
    assert.equal(r.terminal, 'MigrationCompleted');
    assert.equal(ofType(r.events, 'RetryRequested').length, 2);
    assert.deepEqual(brokenInvariants(r.host, r.terminal), []);
  });
});

describe('given a migration that is not stuck', () => {
  const running = simulate({ ...base, pagesPerIteration: [10] }).events;
  const inputs: DecideInput[] = [
    { kind: 'Retry', reason: 'x', meta: m },
    { kind: 'Resolve', action: 'mergeOrigin:1', reason: 'x', meta: m },
  ];
  for (const input of inputs) {
    it(`${input.kind} is refused while it runs, once it ended, and for an unknown migration`, () => {
      given(running.slice(0, 5)).when(input).thenThrows('HAUL_NOT_STUCK');
      given(running).when(input).thenThrows('HAUL_MIGRATION_FINISHED');
      given([]).when(input).thenThrows('HAUL_UNKNOWN_MIGRATION');
    });
  }
});

describe('given a rollback stuck on resuming the source', () => {
  const { events } = simulate({
    ...base,
    fault: { kind: 'fail', step: 'restore', nth: 1, partial: false },
    alsoFail: { step: 'resumeSource', times: always },
  });
  it('resolve is allowed once the target CT is known stopped', () => {
    assert.equal(statusOf(events).stuck?.action, 'resumeSource:-');
    given(events)
      .when({ kind: 'Resolve', action: 'resumeSource:-', reason: 'resumed', meta: m })
      .then([{ type: 'ActionResolved' }]);
  });
  it('resolve is refused while the target may run the CT (the fence the source agent obeys)', () => {
    const notStopped = events.filter((e) => !(e.type === 'StepSucceeded' && e.data.step === 'stopTarget'));
    given(notStopped)
      .when({ kind: 'Resolve', action: 'resumeSource:-', reason: 'resumed', meta: m })
      .thenThrows('HAUL_FENCED');
  });
});

describe('given the target restore given up with its agent silent, and the rollback stuck on stopping the target', () => {
  // The restore's agent died in it (its vzctl may still load the CT), the coordinator gave the restore up, and every
  // stopTarget failed: the CT shows stopped on the target while the restore may be about to start it
  const { events } = simulate({
    ...base,
    fault: { kind: 'crash', step: 'restore', nth: 1, partial: true },
    alsoFail: { step: 'stopTarget', times: always },
  });
  const resolveStop = (extra: { targetIdle?: boolean } = {}): Extract<DecideInput, { kind: 'Resolve' }> => ({
    kind: 'Resolve',
    action: 'stopTarget:-',
    reason: 'vzctl status says stopped',
    ...extra,
    meta: m,
  });

  it('a resolve of stopTarget is refused, naming targetIdle: before, it lifted the fence and the source resumed', () => {
    assert.equal(statusOf(events).stuck?.action, 'stopTarget:-');
    assert.ok(events.some((e) => e.type === 'RestoreStarted'));
    assert.throws(
      () => resolveOf(resolveStop(), fold(events, initialState())),
      (err: unknown) =>
        err instanceof CommandRejectedError &&
        err.code === 'HAUL_FENCED' &&
        err.field === 'targetIdle' &&
        /restore was given up/.test(err.message),
    );
  });

  it('with targetIdle (the operator checked nothing runs there any more) it is resolved, and the event says so', () => {
    given(events)
      .when(resolveStop({ targetIdle: true }))
      .then([{ type: 'ActionResolved', data: { action: 'stopTarget:-', targetIdle: true } }]);
  });

  it("once the restore's agent reports its end, even after the give-up, it is resolved as any other", () => {
    const restore = ofType(events, 'StepIntended').find((e) => e.data.step === 'restore')!;
    const late = executorOutcome(
      restore.data,
      'StepFailed',
      { error: { code: 'HAUL_TOOL_FAILED', message: 'vzctl restore failed', exitCode: 1 } },
      Date.parse(m.now),
    );
    const [resolved] = given([...events, late])
      .when(resolveStop())
      .then([{ type: 'ActionResolved', data: { action: 'stopTarget:-' } }]);
    assert.equal((resolved!.data as { targetIdle?: true }).targetIdle, undefined);
  });
});

describe("given restart mode's start on the target given up with its agent silent, and the rollback stuck on stopping the target", () => {
  const { events } = simulate({
    ...base,
    mode: 'restart',
    fault: { kind: 'crash', step: 'startTarget', nth: 1, partial: false },
    alsoFail: { step: 'stopTarget', times: always },
  });
  const start = ofType(events, 'StepIntended').find((e) => e.data.step === 'startTarget')!;
  const resolve: Extract<DecideInput, { kind: 'Resolve' }> = {
    kind: 'Resolve',
    action: 'stopTarget:-',
    reason: 'vzctl status says stopped',
    meta: m,
  };

  it('a resolve of stopTarget needs targetIdle while nothing says the start ended', () => {
    assert.equal(statusOf(events).stuck?.action, 'stopTarget:-');
    given(events).when(resolve).thenThrows('HAUL_FENCED');
  });

  it("once the target's agent says the start never ran there (HAUL_NOT_RUN), it is resolved without it", () => {
    const notRun = executorOutcome(
      start.data,
      'StepFailed',
      { error: { code: errorCodes.notRun, message: 'never ran on node-b' } },
      Date.parse(m.now),
    );
    const [resolved] = given([...events, notRun])
      .when(resolve)
      .then([{ type: 'ActionResolved', data: { action: 'stopTarget:-' } }]);
    assert.equal((resolved!.data as { targetIdle?: true }).targetIdle, undefined);
  });
});

describe('a retry of an action attempted as often as a log holds', () => {
  /** A state stuck on `step` (its action `key`), whose last attempt is the most a log holds. */
  function exhausted(step: StepName, key: string): MigrationState {
    const s = initialState();
    const rec = {
      key,
      step,
      status: 'failed',
      command: { attempt: maxAttemptNumber },
    } as unknown as StepRecord;
    return {
      ...s,
      migrationId: 'm-0123456789abcdef01234567',
      steps: { [key]: rec },
      stuck: { action: key, step, plan: 'release', attempts: 5, reason: 'failed', since: m.now },
    };
  }
  const input = { kind: 'Retry', reason: 'fixed', meta: m } as const;

  it('tells the operator to do an action that may be resolved by hand and resolve it', () =>
    assert.throws(
      () => retryOf(input, exhausted('cleanupSharedDisk', 'cleanupSharedDisk:1')),
      (err: unknown) =>
        err instanceof CommandRejectedError &&
        err.code === 'HAUL_ATTEMPTS_EXHAUSTED' &&
        /do it by hand and resolve it/.test(err.message),
    ));
  it('does not send the operator to a resolve that refuses a forward step (releaseSource, takeOwnership)', () => {
    for (const step of ['releaseSource', 'takeOwnership'] as const)
      assert.throws(
        () => retryOf(input, exhausted(step, `${step}:-`)),
        (err: unknown) =>
          err instanceof CommandRejectedError &&
          err.code === 'HAUL_ATTEMPTS_EXHAUSTED' &&
          /cannot be resolved: the migration stays stuck/.test(err.message),
      );
  });
});
