import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MigrationEvent } from '@haul/schemas';
import { fold } from './evolve.ts';
import { judgedAgain, mayResumeSource, mayStartRestore, neverRanHere, resumeVerdict } from './fencing.ts';
import { initialState } from './state.ts';

const ev = (type: MigrationEvent['type'], data: Record<string, unknown> = {}): MigrationEvent =>
  ({
    eventId: type,
    migrationId: 'mig-1234',
    type,
    actor: { service: 'node-agent', node: 'n' },
    time: '2026-01-01T00:00:00Z',
    schemaVersion: 1,
    data,
  }) as MigrationEvent;

/** Every log starts with its request (wholeLog). */
const requested = ev('MigrationRequested', {
  request: { requestId: 'r', ctid: '101', source: 'node-a', target: 'node-b', mode: 'live' },
  imageRoots: { source: '/a', target: '/b' },
});
/** The target's restore started; the target CT stopped by its agent, or by hand as an operator resolved. */
const started = ev('RestoreStarted', { commandId: 'c' });
const stopped = ev('StepSucceeded', {
  commandId: 'c2',
  step: 'stopTarget',
  node: 'b',
  attempt: 1,
  result: { actions: [] },
});
const byHand = ev('ActionResolved', { action: 'stopTarget:-', step: 'stopTarget', reason: 'vzctl stop' });

describe('the commit-point fence', () => {
  it('lets the restore start while nobody resumed the source', () =>
    assert.equal(mayStartRestore([requested]).ok, true));
  it('refuses the restore once the source resumed', () =>
    assert.equal(mayStartRestore([requested, ev('ResumedOnSource', { reason: 'lease-expired' })]).ok, false));
  it('refuses the restore during a rollback', () =>
    assert.equal(mayStartRestore([requested, ev('RollbackStarted', { reason: 'x' })]).ok, false));
  it('refuses the restore once an operator cancelled the migration: the cancel is not overtaken by the commit', () => {
    const v = mayStartRestore([requested, ev('CancelRequested', { reason: 'ops' })]);
    assert.deepEqual(v.ok ? 'ok' : [v.code, v.reason], [
      'HAUL_FENCED',
      'an operator cancelled the migration',
    ]);
  });
  it("refuses the restore once the coordinator gave its command up, before the rollback's start is in the log", () => {
    // Given the restore's give-up appended (its timeout), and the RollbackStarted the coordinator appends after it not yet
    const gaveUp = ev('StepFailed', {
      commandId: 'c-restore',
      step: 'restore',
      node: 'node-b',
      attempt: 1,
      error: {
        code: 'HAUL_STEP_TIMEOUT',
        message: 'restore:- gave no result within 180000 ms',
        retryable: true,
      },
    });
    // When that restore asks, then it is refused (before: it started the CT, which the rollback stopped again)
    const v = mayStartRestore([requested, gaveUp], { commandId: 'c-restore' });
    assert.deepEqual(v.ok ? 'ok' : [v.code, v.reason], [
      'HAUL_FENCED',
      'the coordinator gave this restore up: it has an outcome',
    ]);
    // and another command's outcome says nothing of it
    assert.equal(mayStartRestore([requested, gaveUp], { commandId: 'c-other' }).ok, true);
  });
  it('refuses the restore when the target rebooted since its preflight', () => {
    const preflight = ev('StepSucceeded', {
      commandId: 'p',
      step: 'preflightTarget',
      result: { bootId: 'boot-1' },
    });
    assert.equal(mayStartRestore([requested, preflight], { bootId: 'boot-1' }).ok, true);
    const v = mayStartRestore([requested, preflight], { bootId: 'boot-2' });
    assert.equal(v.ok, false);
    assert.equal(!v.ok && v.code, 'HAUL_TARGET_REBOOTED');
    assert.equal(
      mayStartRestore([requested, preflight]).ok,
      true,
      'no boot id known now: nothing to compare',
    );
  });
  it('does not refuse a restore run again for a cancel before its RestoreStarted (a log older than the cancel rule)', () => {
    // Given a log where an earlier version's fence let a restore start after an operator's cancel
    const log = [requested, ev('CancelRequested', { reason: 'ops' }), started];
    // When the restore is delivered again (its agent restarted), then it is judged as its first run was: allowed
    const { inLog, verdict } = judgedAgain(log, started.eventId, (e, again) => mayStartRestore(e, {}, again));
    assert.equal(inLog, true);
    assert.equal(verdict.ok, true);
    // And a first run on that log is refused
    assert.equal(mayStartRestore(log.slice(0, 2)).ok, false);
  });
  it('judges a restore run again (RestoreStarted already in the log) as its first run: refused once the target rebooted', () => {
    // Given a log where the target's preflight recorded boot-1 and the target then appended RestoreStarted
    const preflight = ev('StepSucceeded', {
      commandId: 'p',
      step: 'preflightTarget',
      result: { bootId: 'boot-1' },
    });
    const log = [requested, preflight, started];
    const asked = (bootId: string) =>
      judgedAgain(log, started.eventId, (e) => mayStartRestore(e, { bootId }));
    // When the restore is delivered again on the same boot (its agent restarted), then it goes on, nothing appended
    assert.deepEqual(asked('boot-1'), { inLog: true, verdict: { ok: true } });
    // When it is delivered again after a reboot, then it is refused: its images may have been lost with the cache
    const again = asked('boot-2');
    assert.equal(again.inLog, true);
    assert.equal(!again.verdict.ok && again.verdict.code, 'HAUL_TARGET_REBOOTED');
    // And an event not in the log yet is judged on the whole log
    assert.deepEqual(
      judgedAgain([requested, preflight], started.eventId, (e) => mayStartRestore(e, { bootId: 'boot-1' })),
      {
        inLog: false,
        verdict: { ok: true },
      },
    );
  });
  it('lets the source resume before the restore started', () =>
    assert.equal(mayResumeSource([requested]).ok, true));
  it('keeps the source frozen once the restore started', () =>
    assert.equal(mayResumeSource([requested, started]).ok, false));
  it('lets the source resume after the target CT is known stopped', () => {
    assert.equal(mayResumeSource([requested, started, stopped]).ok, true);
    assert.equal(mayResumeSource([requested, stopped, started]).ok, false);
  });
  it('lets the source resume after an operator stopped the target CT by hand and resolved stopTarget', () => {
    assert.equal(mayResumeSource([requested, started, byHand]).ok, true);
    const other = ev('ActionResolved', {
      action: 'removeFiles:target-images',
      step: 'removeFiles',
      reason: 'x',
    });
    assert.equal(mayResumeSource([requested, started, other]).ok, false);
  });

  it('given any of these logs, then the state folded from it (the operator API decides on it) says the same as the log', () => {
    const logs: MigrationEvent[][] = [
      [],
      [started],
      [started, stopped],
      [stopped, started],
      [started, byHand],
      [started, stopped, started],
      [byHand, started, started],
    ];
    for (const log of logs.map((l) => [requested, ...l]))
      assert.equal(
        resumeVerdict(fold(log, initialState())).ok,
        mayResumeSource(log).ok,
        log.map((e) => e.type).join(', '),
      );
  });

  it('refuses both the restore and the resume on a log that lost its oldest events (it does not start with its request)', () => {
    // Given the log of a migration in its frozen window whose oldest events, RestoreStarted among them, were dropped
    // (the stream full, or flooded by a node): what is left holds neither its request nor the restore
    const rest = [ev('StepIntended', { commandId: 'c3' })];
    for (const v of [mayResumeSource(rest), mayStartRestore(rest), mayResumeSource([]), mayStartRestore([])])
      assert.deepEqual(v.ok ? 'ok' : v.code, 'HAUL_LOG_INCOMPLETE');
  });
});

describe('an agent skipping a command given up before it began: may it say the command never ran here?', () => {
  // Given the target's preflight (boot-1) and a start there that the coordinator gave up (its timeout)
  const preflight = (node: string, bootId: string) =>
    ({
      ...ev('StepSucceeded', { commandId: `p-${node}`, step: 'preflightTarget', node, result: { bootId } }),
      eventId: `p-${node}`,
    }) as MigrationEvent;
  const gaveUp = {
    ...ev('StepFailed', {
      commandId: 'c-start',
      step: 'startTarget',
      node: 'node-b',
      attempt: 1,
      error: { code: 'HAUL_STEP_TIMEOUT', message: 'startTarget:- gave no result within 180000 ms' },
    }),
    actor: { service: 'coordinator', node: 'coordinator' },
  } as MigrationEvent;
  const log = [requested, preflight('node-b', 'boot-1'), gaveUp];
  const here = { node: 'node-b', bootId: 'boot-1', marked: false };

  it('yes: only the coordinator recorded its outcome, no marker of it, and the host booted before its preflight', () =>
    assert.equal(neverRanHere(log, 'c-start', here), true));
  it('no, while the agent holds its marker: a run of it began here and recorded no end', () =>
    assert.equal(neverRanHere(log, 'c-start', { ...here, marked: true }), false));
  it('no, once the host rebooted since its preflight: a crash of the machine may have lost the marker', () =>
    assert.equal(neverRanHere(log, 'c-start', { ...here, bootId: 'boot-2' }), false));
  it("no, when its node's preflight is not in the log (the boot it ran in is unknown)", () => {
    assert.equal(neverRanHere([requested, gaveUp], 'c-start', here), false);
    // another node's preflight of the same boot id says nothing of this one
    assert.equal(neverRanHere([requested, preflight('node-a', 'boot-1'), gaveUp], 'c-start', here), false);
  });
  it('no, when an executor wrote any event naming it: it came to the command (RestoreStarted, a refusal)', () => {
    for (const type of ['RestoreStarted', 'CommandRejected'] as const) {
      const came = { ...ev(type, { commandId: 'c-start' }), eventId: type } as MigrationEvent;
      assert.equal(neverRanHere([...log, came], 'c-start', here), false, type);
    }
  });
  it("no, when the coordinator's outcome is no give-up (a refusal it recorded), or the command is a preflight", () => {
    const refusal = {
      ...gaveUp,
      data: { ...gaveUp.data, error: { code: 'HAUL_PATH_OUTSIDE_ROOTS', message: 'refused' } },
    } as MigrationEvent;
    assert.equal(neverRanHere([requested, preflight('node-b', 'boot-1'), refusal], 'c-start', here), false);
    const preflightGivenUp = {
      ...gaveUp,
      data: { ...gaveUp.data, commandId: 'c-pre', step: 'preflightTarget' },
    } as MigrationEvent;
    const retried = [requested, preflightGivenUp, preflight('node-b', 'boot-1')];
    assert.equal(neverRanHere(retried, 'c-pre', here), false);
  });
  it('no, when an executor recorded an outcome of it (its own end says more), or nobody any', () => {
    const late = {
      ...gaveUp,
      eventId: 'late',
      actor: { service: 'node-agent', node: 'node-b' },
    } as MigrationEvent;
    assert.equal(neverRanHere([...log, late], 'c-start', here), false);
    assert.equal(neverRanHere(log.slice(0, 2), 'c-start', here), false);
    assert.equal(neverRanHere(log, 'c-other', here), false);
  });
});
