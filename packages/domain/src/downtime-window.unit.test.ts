import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MigrationEvent, StepName } from '@haul/schemas';
import { deriveStats } from './stats.ts';
import { stepTable } from './steps.ts';

/**
 * A frozen window written by hand, with the times and host times of a real one: the final dump, a shared disk's
 * preparation sent at once (the agent runs it one step after the other), the final images and a local disk beside
 * it, then the restore. Times are ms after the final dump's intent.
 */
const mid = 'm-window';
const T0 = Date.parse('2026-01-01T00:00:00.000Z');
const at = (ms: number) => new Date(T0 + ms).toISOString();
let n = 0;
const ev = (type: MigrationEvent['type'], ms: number, data: unknown, node = 'coord'): MigrationEvent =>
  ({
    eventId: `${mid}:${n++}`,
    migrationId: mid,
    type,
    actor: { service: node === 'coord' ? 'coordinator' : 'node-agent', node },
    time: at(ms),
    schemaVersion: 1,
    data,
  }) as MigrationEvent;
const idOf = (key: string) => `${mid}:${key}:1`;
const nodeOf = (step: StepName) => (stepTable[step].role === 'source' ? 'node-a' : 'node-b');
const intent = (key: string, ms: number) => {
  const step = key.split(':')[0] as StepName;
  const exec = stepTable[step].executor;
  return ev('StepIntended', ms, {
    commandId: idOf(key),
    migrationId: mid,
    node: nodeOf(step),
    executor: exec,
    attempt: 1,
    step,
    args: {},
    timeoutMs: 1000,
  });
};
const outcome = (key: string, ms: number, result: Record<string, unknown>) => {
  const step = key.split(':')[0] as StepName;
  return ev(
    'StepSucceeded',
    ms,
    { commandId: idOf(key), step, node: nodeOf(step), attempt: 1, result },
    nodeOf(step),
  );
};
const requested = (mode: 'live' | 'restart') =>
  ev('MigrationRequested', -5000, {
    request: { requestId: 'r', ctid: '101', source: 'node-a', target: 'node-b', mode },
    imageRoots: { source: '/a', target: '/b' },
  });

const live: MigrationEvent[] = [
  requested('live'),
  intent('finalDump:-', 0),
  outcome('finalDump:-', 1000, { pagesWritten: 1, bytes: 1, durationMs: 950, toolMs: 950 }),
  intent('backupDescriptor:1', 1010),
  intent('snapshotOrigin:1', 1010),
  intent('snapshotCopy:1', 1010),
  intent('streamImages:final', 1010),
  intent('copyLocalDisk:0', 1010),
  outcome('backupDescriptor:1', 1020, { actions: [], toolMs: 0 }),
  outcome('streamImages:final', 1100, { bytes: 1, files: 1, durationMs: 80, mbPerSec: 1 }),
  outcome('copyLocalDisk:0', 1150, { bytes: 1, files: 1, durationMs: 100, mbPerSec: 1 }),
  outcome('snapshotOrigin:1', 1230, { actions: [], toolMs: 200 }),
  outcome('snapshotCopy:1', 1440, { actions: [], toolMs: 200 }),
  intent('restore:-', 1450),
  ev('RestoreStarted', 1455, { commandId: idOf('restore:-') }, 'node-b'),
  outcome('restore:-', 2000, { actions: ['restored'], toolMs: 530 }),
  intent('releaseSource:-', 2010),
  outcome('releaseSource:-', 2100, { actions: [], toolMs: 80 }),
];

describe('the downtime window, step by step', () => {
  const w = deriveStats(live).downtimeWindow!;
  const row = (key: string) => w.steps.find((r) => r.key === key)!;

  it('spans the final dump to the restore, in the order the steps were intended (not the release after it)', () => {
    assert.equal(w.windowMs, 2000);
    assert.equal(w.windowMs, deriveStats(live).downtimeMs);
    assert.deepEqual(
      w.steps.map((r) => r.key),
      [
        'finalDump:-',
        'backupDescriptor:1',
        'snapshotOrigin:1',
        'snapshotCopy:1',
        'streamImages:final',
        'copyLocalDisk:0',
        'restore:-',
      ],
    );
  });

  it("counts the coordinator's dispatch and the executor's time beside its tools as overhead", () => {
    assert.deepEqual(row('finalDump:-'), {
      key: 'finalDump:-',
      step: 'finalDump',
      node: 'node-a',
      ok: true,
      dispatchMs: 0,
      spanMs: 1000,
      queuedMs: 0,
      hostMs: 950,
      overheadMs: 50,
    });
    assert.deepEqual([row('backupDescriptor:1').dispatchMs, row('backupDescriptor:1').overheadMs], [10, 20]);
    // A transfer's host time is its duration; the streamer runs transfers side by side (never queued).
    assert.deepEqual([row('streamImages:final').overheadMs, row('copyLocalDisk:0').overheadMs], [20, 50]);
    // The restore was decided on the last step it needed (the copy snapshot); the fence is overhead.
    assert.deepEqual([row('restore:-').dispatchMs, row('restore:-').overheadMs], [10, 30]);
  });

  it("counts a disk pass's write tracker (its toolMs) as host time beside its transfer, not as overhead", () => {
    const split = live.map((e) =>
      e.type === 'StepSucceeded' && e.data.step === 'copyLocalDisk'
        ? {
            ...e,
            data: { ...e.data, result: { bytes: 1, files: 1, durationMs: 20, mbPerSec: 1, toolMs: 80 } },
          }
        : e,
    );
    const copy = (events: MigrationEvent[]) =>
      deriveStats(events).downtimeWindow!.steps.find((r) => r.key === 'copyLocalDisk:0')!;
    assert.deepEqual([copy(split).hostMs, copy(split).overheadMs], [100, 50]);
    const untimed = split.map((e) =>
      e.type === 'StepSucceeded' && e.data.step === 'copyLocalDisk'
        ? {
            ...e,
            data: { ...e.data, result: { bytes: 1, files: 1, durationMs: 20, mbPerSec: 1 } },
          }
        : e,
    );
    assert.deepEqual([copy(untimed).hostMs, copy(untimed).overheadMs], [20, 130], 'without it, as before');
  });

  it('does not count the wait for the agent as overhead: it runs one host action of a migration at a time', () => {
    assert.deepEqual(
      [
        row('snapshotOrigin:1').queuedMs,
        row('snapshotOrigin:1').dispatchMs,
        row('snapshotOrigin:1').overheadMs,
      ],
      [10, 0, 10],
    );
    assert.deepEqual([row('snapshotCopy:1').queuedMs, row('snapshotCopy:1').overheadMs], [220, 10]);
  });

  it('follows what each step waited for back to the freeze: the window is host time plus overhead on that path', () => {
    assert.deepEqual(w.criticalPath, {
      steps: ['finalDump:-', 'backupDescriptor:1', 'snapshotOrigin:1', 'snapshotCopy:1', 'restore:-'],
      hostMs: 1880,
      overheadMs: 120,
    });
    assert.equal(w.overheadMedianMs, 20);
  });

  it('in restart mode spans the stop on the source to the start on the target', () => {
    const restart = [
      requested('restart'),
      intent('stopSource:-', 0),
      outcome('stopSource:-', 300, { actions: [], toolMs: 290 }),
      intent('copyLocalDisk:0', 305),
      outcome('copyLocalDisk:0', 500, { bytes: 1, files: 1, durationMs: 190, mbPerSec: 1 }),
      intent('startTarget:-', 505),
      outcome('startTarget:-', 900, { actions: [], toolMs: 390 }),
    ];
    const r = deriveStats(restart).downtimeWindow!;
    assert.equal(r.windowMs, 900);
    assert.deepEqual(r.criticalPath, {
      steps: ['stopSource:-', 'copyLocalDisk:0', 'startTarget:-'],
      hostMs: 870,
      overheadMs: 30,
    });
  });

  it('leaves a failed step out of the median: a failure reports no host time', () => {
    const upTo = live.findIndex((e) => e.type === 'StepSucceeded' && e.data.step === 'snapshotCopy');
    const failed = ev(
      'StepFailed',
      1440,
      {
        commandId: idOf('snapshotCopy:1'),
        step: 'snapshotCopy',
        node: 'node-a',
        attempt: 1,
        error: { code: 'HAUL_TOOL_FAILED', message: 'injected' },
      },
      'node-a',
    );
    const r = deriveStats([...live.slice(0, upTo), failed]).downtimeWindow!;
    const copy = r.steps.find((x) => x.key === 'snapshotCopy:1')!;
    assert.deepEqual([copy.ok, copy.hostMs, copy.overheadMs], [false, 0, 210]);
    // finalDump 50, backup 20, origin 10, final images 20, local disk 50 (the restore never came)
    assert.equal(r.overheadMedianMs, 20);
    assert.equal(r.windowMs, 1440);
  });

  it('has no window before the freeze has an outcome', () => {
    assert.equal(deriveStats(live.slice(0, 2)).downtimeWindow, undefined);
  });
});
