import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MigrationEvent } from '@haul/schemas';
import { given } from '../test/decider-spec.ts';
import { liveScenario, meta, request, simulate } from '../test/simulate.ts';
import { assumedSpeeds } from './assumed-speeds.ts';
import { frozenLeaseMs } from './frozen-lease.ts';

const m = meta(Date.parse('2026-01-01T01:00:00.000Z'));
const advance = { kind: 'Advance', meta: m } as const;

/** A successful live migration with one local and one shared disk and three pre-dumps, as a log to cut. */
const happyScenario = {
  mode: 'live',
  sharedDisks: 1,
  localDisks: 1,
  pagesPerIteration: [9000, 5000, 3000, 10],
  memTrack: true,
  preDump: 'auto',
  fault: { kind: 'none' },
  picks: [],
} as const satisfies Parameters<typeof simulate>[0];
const happy = simulate(happyScenario).events;
const restart = simulate({
  mode: 'restart',
  sharedDisks: 1,
  localDisks: 1,
  pagesPerIteration: [],
  memTrack: true,
  preDump: 'auto',
  fault: { kind: 'none' },
  picks: [],
}).events;

/** The log up to and including the first event that matches. */
function until(log: MigrationEvent[], pred: (e: MigrationEvent) => boolean): MigrationEvent[] {
  const i = log.findIndex(pred);
  assert.ok(i >= 0, 'no such event in the log');
  return log.slice(0, i + 1);
}
const succeeded = (key: string) => (e: MigrationEvent) =>
  e.type === 'StepSucceeded' && `${e.data.step}:${e.data.commandId.split(':').at(-2)}` === key;
const intended = (key: string) => (e: MigrationEvent) =>
  e.type === 'StepIntended' && `${e.data.step}:${e.data.commandId.split(':').at(-2)}` === key;

describe('given no migration', () => {
  const req = request({ mode: 'live', preDump: 'auto', sharedDisks: 1 });
  it('a request records MigrationRequested with the image folders decided from the node roots', () => {
    given([])
      .when({
        kind: 'RequestMigration',
        migrationId: 'mig-abc123',
        request: req,
        imageRoots: { source: '/a', target: '/b' },
        meta: m,
      })
      .then([{ type: 'MigrationRequested', data: { imageRoots: { source: '/a', target: '/b' } } }]);
  });
  it('a request from a node to itself is rejected, naming the target field', () => {
    given([])
      .when({
        kind: 'RequestMigration',
        migrationId: 'mig-abc123',
        request: { ...req, target: req.source },
        imageRoots: { source: '/a', target: '/b' },
        meta: m,
      })
      .thenThrows('HAUL_SAME_NODE');
  });
  it('a cancel names an unknown migration', () => {
    given([]).when({ kind: 'Cancel', reason: 'x', meta: m }).thenThrows('HAUL_UNKNOWN_MIGRATION');
  });
});

describe('given a requested migration', () => {
  it("both preflights are intended, each with its own image folder, and the source's CT lock", () => {
    given(happy.slice(0, 1))
      .when(advance)
      .then([
        {
          type: 'StepIntended',
          data: { step: 'preflightTarget', node: 'node-b', args: { imageDir: '/tgt/img/haul-mig-sim01' } },
        },
        {
          type: 'StepIntended',
          data: { step: 'preflightSource', node: 'node-a', args: { imageDir: '/src/img/haul-mig-sim01' } },
        },
        { type: 'StepIntended', data: { step: 'lockSource', node: 'node-a', args: { ctid: '101' } } },
      ]);
  });
  it('nothing is dumped while the CT lock is not held', () => {
    given(until(happy, succeeded('preflightSource:-')))
      .when(advance)
      .thenNothingHappened();
  });
  it('a CT locked by someone else rolls back before anything is frozen; no lock of ours to release', () => {
    const r = simulate(liveScenario({ fault: { kind: 'fail', step: 'lockSource', nth: 1, partial: false } }));
    const rb = r.events.find((e) => e.type === 'RollbackStarted');
    assert.equal(rb?.type === 'RollbackStarted' && rb.data.reason, 'lockSource:- failed');
    const steps = r.events.flatMap((e) => (e.type === 'StepIntended' ? [e.data.step] : []));
    assert.ok(!steps.includes('preDump') && !steps.includes('finalDump'), steps.join(' '));
    assert.ok(!steps.includes('unlockSource'), 'a lock that was not taken is not released');
    assert.equal(r.terminal, 'MigrationRolledBack');
  });
});

describe('given both preflights passed and the CT lock held', () => {
  const log = until(happy, succeeded('lockSource:-'));
  it('the first pre-dump writes img/1 with no parent; the local disk starts its live copy beside it', () => {
    const [e] = given(log)
      .when(advance)
      .then([
        {
          type: 'StepIntended',
          data: { step: 'preDump', args: { iteration: 0, imageDir: '/src/img/haul-mig-sim01/1' } },
        },
        {
          type: 'StepIntended',
          data: { step: 'copyLocalDisk', args: { priority: 'iteration', pass: { index: 0, final: false } } },
        },
      ]);
    assert.equal((e!.data as { args: { prevImageDir?: string } }).args.prevImageDir, undefined);
  });
  it('a target without the CT config rolls back before anything changed but the image folders', () => {
    const bad = log.map((e) =>
      e.type === 'StepSucceeded' && e.data.step === 'preflightTarget'
        ? ({
            ...e,
            data: { ...e.data, result: { ...(e.data.result as object), configPresent: false } },
          } as MigrationEvent)
        : e,
    );
    given(bad)
      .when(advance)
      .then([
        { type: 'RollbackStarted', data: { cause: { code: 'HAUL_PREFLIGHT_NO_CONFIG', field: 'target' } } },
      ]);
  });
});

describe('given a finished pre-dump', () => {
  it('the convergence policy decides first and records its numbers', () => {
    given(until(happy, succeeded('preDump:0')))
      .when(advance)
      .then([
        {
          type: 'IterationDecided',
          data: { iteration: 0, decision: 'continue', reason: 'continue', numbers: { pagesWritten: 9000 } },
        },
      ]);
  });
  it('then the next pre-dump (parent ../1) and the stream of img/1 run side by side', () => {
    given(until(happy, (e) => e.type === 'IterationDecided' && e.data.iteration === 0))
      .when(advance)
      .then([
        {
          type: 'StepIntended',
          data: {
            step: 'preDump',
            args: { iteration: 1, imageDir: '/src/img/haul-mig-sim01/2', prevImageDir: '../1' },
          },
        },
        {
          type: 'StepIntended',
          data: {
            step: 'streamImages',
            node: 'node-a',
            args: {
              toNode: 'node-b',
              sourceDir: '/src/img/haul-mig-sim01/1',
              targetDir: '/tgt/img/haul-mig-sim01/1',
              priority: 'iteration',
            },
          },
        },
      ]);
  });
  it('a small dump (≤ 64 pages) goes to the final dump', () => {
    given(until(happy, succeeded('preDump:3')))
      .when(advance)
      .then([
        { type: 'IterationDecided', data: { iteration: 3, decision: 'final-dump', reason: 'small-dump' } },
      ]);
  });
});

describe('given the final dump about to be intended', () => {
  const leaseOf = (log: MigrationEvent[]) => {
    const e = log.find(intended('finalDump:-'));
    assert.ok(e?.type === 'StepIntended' && e.data.step === 'finalDump');
    const lease = e.data.args.leaseMs;
    assert.ok(lease !== undefined, 'a finalDump carries its lease');
    return lease;
  };
  /** The result of the last succeeded step of this name before the final dump was intended. */
  const lastResult = <T>(log: MigrationEvent[], step: string): T => {
    const upTo = log.slice(0, log.findIndex(intended('finalDump:-')));
    const e = upTo.findLast((x) => x.type === 'StepSucceeded' && x.data.step === step);
    assert.ok(e?.type === 'StepSucceeded', `a ${step} succeeded`);
    return e.data.result as T;
  };
  it("after pre-dumps, the lease grows with the last pre-dump and the local disk's last live pass, over the rate its stream measured", () => {
    // The local disk's frozen pass streams beside the final images: about as much as its last live pass moved
    const dump = lastResult<{ bytes: number }>(happy, 'preDump');
    const pass = lastResult<{ bytes: number }>(happy, 'copyLocalDisk');
    const stream = lastResult<{ bytes: number; durationMs: number }>(happy, 'streamImages');
    assert.ok(pass.bytes > 0);
    assert.equal(
      leaseOf(happy),
      frozenLeaseMs({
        floorMs: m.frozenLeaseMs,
        predictedBytes: dump.bytes + pass.bytes,
        bytesPerSec: stream.bytes / (stream.durationMs / 1000),
      }),
    );
  });
  it('a local disk written hard (each live pass moved 2 GB): the lease covers its frozen pass, not the memory alone', () => {
    // Given a local disk whose four live passes each moved 2 GB: after four a disk goes to the freeze whatever its last
    // one moved (disk-passes.ts), and its frozen pass will move about as much
    const hard = simulate({ ...happyScenario, diskPassBytes: [2e9, 2e9, 2e9, 2e9] }).events;
    const passes = hard.filter(
      (e) => e.type === 'StepIntended' && /:copyLocalDisk:0\.\d:/.test(e.data.commandId),
    );
    assert.equal(passes.length, 4);

    // When the final dump is decided, then its lease counts the disk's last pass beside the last pre-dump (before: the
    // memory alone, and the frozen pass was cut by the lease on every attempt)
    const dump = lastResult<{ bytes: number }>(hard, 'preDump');
    const stream = lastResult<{ bytes: number; durationMs: number }>(hard, 'streamImages');
    assert.equal(
      leaseOf(hard),
      frozenLeaseMs({
        floorMs: m.frozenLeaseMs,
        predictedBytes: dump.bytes + 2e9,
        bytesPerSec: stream.bytes / (stream.durationMs / 1000),
      }),
    );
  });
  it('without a pre-dump and with no memory reported, the lease is the floor', () => {
    assert.equal(leaseOf(simulate(liveScenario({ preDump: 'off' })).events), m.frozenLeaseMs);
  });
  it('without a pre-dump but with a bandwidth limit, the limit is the rate, not the assumed link', () => {
    const memoryBytes = 2 ** 30;
    const limited = simulate(liveScenario({ preDump: 'off', memoryBytes, bandwidthLimitMBps: 10 })).events;
    const pass = lastResult<{ bytes: number }>(limited, 'copyLocalDisk');
    assert.equal(
      leaseOf(limited),
      frozenLeaseMs({
        floorMs: m.frozenLeaseMs,
        predictedBytes: memoryBytes + pass.bytes,
        bytesPerSec: 10e6,
      }),
    );
  });
  it('without a pre-dump, the lease covers the whole inspected memory at the assumed link rate: not the floor alone', () => {
    // 8 GiB resident: at the assumed 100 MB/s, 86 s to stream, more than the 60 s floor by itself.
    const memoryBytes = 8 * 2 ** 30;
    const off = simulate(liveScenario({ preDump: 'off', memoryBytes })).events;
    assert.equal(
      leaseOf(off),
      frozenLeaseMs({
        floorMs: m.frozenLeaseMs,
        predictedBytes: memoryBytes + lastResult<{ bytes: number }>(off, 'copyLocalDisk').bytes,
        bytesPerSec: assumedSpeeds.linkBytesPerSec,
      }),
    );
    assert.ok(leaseOf(off) > m.frozenLeaseMs);
  });
});

describe('given the CT frozen by the final dump', () => {
  const log = until(happy, succeeded('finalDump:-'));
  it('everything the frozen window can run goes out at once: the disk preparation in P.Haul order, the final images, the local disk', () => {
    given(log)
      .when(advance)
      .then([
        {
          type: 'StepIntended',
          data: { step: 'backupDescriptor', args: { ddxml: '/shared/disk0/DiskDescriptor.xml' } },
        },
        { type: 'StepIntended', data: { step: 'snapshotOrigin', node: 'node-a' } },
        { type: 'StepIntended', data: { step: 'snapshotCopy', node: 'node-a' } },
        { type: 'StepIntended', data: { step: 'streamImages', args: { priority: 'final' } } },
        { type: 'StepIntended', data: { step: 'copyLocalDisk', args: { priority: 'final' } } },
      ]);
  });
  it('the final images stream as soon as the earlier streams are done, before the restore', () => {
    const keys = happy
      .filter((e) => e.type === 'StepIntended')
      .map((e) => (e.type === 'StepIntended' ? `${e.data.step}:${e.data.commandId.split(':').at(-2)}` : ''));
    assert.ok(keys.indexOf('streamImages:3') < keys.indexOf('streamImages:final'));
    assert.ok(keys.indexOf('streamImages:final') < keys.indexOf('restore:-'));
    assert.ok(keys.indexOf('copyLocalDisk:0') < keys.indexOf('restore:-'));
  });
  it('the snapshots use the GUIDs the core chose, recorded before they run', () => {
    const [, origin, copy] = given(log)
      .when(advance)
      .then([
        { type: 'StepIntended', data: { step: 'backupDescriptor' } },
        { type: 'StepIntended', data: { step: 'snapshotOrigin' } },
        { type: 'StepIntended', data: { step: 'snapshotCopy' } },
        { type: 'StepIntended' },
        { type: 'StepIntended' },
      ]);
    const guid = (e: MigrationEvent | undefined) => (e!.data as { args: { guid: string } }).args.guid;
    assert.match(guid(origin), /^\{[0-9a-f-]{36}\}$/);
    assert.match(guid(copy), /^\{[0-9a-f-]{36}\}$/);
    assert.notEqual(guid(origin), guid(copy));
  });
  it('the restore waits for every step of the window: each disk step, the final images, the local disk', () => {
    const before = happy.slice(0, happy.findIndex(intended('restore:-')));
    for (const key of [
      'backupDescriptor:1',
      'snapshotOrigin:1',
      'snapshotCopy:1',
      'streamImages:final',
      'copyLocalDisk:0',
    ]) {
      const missing = before.filter((e) => !succeeded(key)(e));
      assert.equal(missing.length, before.length - 1, key);
      given(missing).when(advance).thenNothingHappened();
    }
    given(before)
      .when(advance)
      .then([{ type: 'StepIntended', data: { step: 'restore' } }]);
  });
  it('the disks are prepared side by side, each in P.Haul order', () => {
    const two = simulate({
      mode: 'live',
      sharedDisks: 2,
      localDisks: 0,
      pagesPerIteration: [10],
      memTrack: true,
      preDump: 'auto',
      fault: { kind: 'none' },
      picks: [],
    }).events;
    given(until(two, succeeded('finalDump:-')))
      .when(advance)
      .then([
        {
          type: 'StepIntended',
          data: { step: 'backupDescriptor', args: { ddxml: '/shared/disk0/DiskDescriptor.xml' } },
        },
        {
          type: 'StepIntended',
          data: { step: 'snapshotOrigin', args: { ddxml: '/shared/disk0/DiskDescriptor.xml' } },
        },
        {
          type: 'StepIntended',
          data: { step: 'snapshotCopy', args: { ddxml: '/shared/disk0/DiskDescriptor.xml' } },
        },
        {
          type: 'StepIntended',
          data: { step: 'backupDescriptor', args: { ddxml: '/shared/disk1/DiskDescriptor.xml' } },
        },
        {
          type: 'StepIntended',
          data: { step: 'snapshotOrigin', args: { ddxml: '/shared/disk1/DiskDescriptor.xml' } },
        },
        {
          type: 'StepIntended',
          data: { step: 'snapshotCopy', args: { ddxml: '/shared/disk1/DiskDescriptor.xml' } },
        },
        { type: 'StepIntended', data: { step: 'streamImages', args: { priority: 'final' } } },
      ]);
  });
  it('a failed backup stops the chain on the host: the queued snapshots refuse, and the migration rolls back', () => {
    const r = simulate({
      mode: 'live',
      sharedDisks: 1,
      localDisks: 1,
      pagesPerIteration: [10],
      memTrack: true,
      preDump: 'auto',
      fault: { kind: 'fail', step: 'backupDescriptor', nth: 1, partial: false },
      picks: [],
    });
    const failed = r.events.flatMap((e) =>
      e.type === 'StepFailed' ? [`${e.data.step} ${e.data.error.code}`] : [],
    );
    assert.deepEqual(failed, [
      'backupDescriptor HAUL_TOOL_FAILED',
      'snapshotOrigin HAUL_NO_BACKUP',
      'snapshotCopy HAUL_NO_BACKUP',
    ]);
    assert.equal(r.terminal, 'MigrationRolledBack');
  });
  it('a cancel rolls back: the CT resumes on the source after the disks are restored', () => {
    const cancelled = given(log)
      .when({ kind: 'Cancel', reason: 'ops', meta: m })
      .then([{ type: 'CancelRequested' }]);
    given([...log, ...cancelled])
      .when(advance)
      .then([{ type: 'RollbackStarted', data: { reason: 'cancelled: ops' } }]);
  });
});

describe('given the target restore in flight', () => {
  const log = until(happy, intended('restore:-'));
  it('a cancel is recorded but the rollback waits for the restore result', () => {
    const cancelled = given(log)
      .when({ kind: 'Cancel', reason: 'ops', meta: m })
      .then([{ type: 'CancelRequested' }]);
    given([...log, ...cancelled])
      .when(advance)
      .thenNothingHappened();
  });
  it('a cancel is refused once the restore won its fence: the commit is under way, and would overtake it', () => {
    const restore = log.at(-1)!;
    assert.ok(restore.type === 'StepIntended' && restore.data.step === 'restore');
    const started = {
      ...restore,
      eventId: `${restore.data.commandId}:started`,
      type: 'RestoreStarted',
      data: { commandId: restore.data.commandId },
    } as MigrationEvent;
    given([...log, started])
      .when({ kind: 'Cancel', reason: 'ops', meta: m })
      .thenThrows('HAUL_CANCEL_TOO_LATE');
  });
  it('a cancel whose restore then failed before it started (its fence refuses a cancelled migration) rolls back as cancelled', () => {
    const cancelled = given(log)
      .when({ kind: 'Cancel', reason: 'ops', meta: m })
      .then([{ type: 'CancelRequested' }]);
    const late = meta(Date.parse(log.at(-1)!.time) + 10 * 60_000);
    const failed = given([...log, ...cancelled])
      .when({ kind: 'Tick', meta: late })
      .then([{ type: 'StepFailed', data: { step: 'restore' } }]);
    given([...log, ...cancelled, ...failed])
      .when(advance)
      .then([
        { type: 'RollbackStarted', data: { reason: 'cancelled: ops', cause: { code: 'HAUL_STEP_TIMEOUT' } } },
      ]);
  });
  it('a step past its timeout is recorded as failed by the coordinator', () => {
    const late = meta(Date.parse(log.at(-1)!.time) + 10 * 60_000);
    given(log)
      .when({ kind: 'Tick', meta: late })
      .then([{ type: 'StepFailed', data: { step: 'restore', error: { code: 'HAUL_STEP_TIMEOUT' } } }]);
  });
});

describe('given the restore succeeded (the commit point)', () => {
  const log = until(happy, succeeded('restore:-'));
  it('the target takes the CT over (HA resource, registration) while the source is released', () => {
    given(log)
      .when(advance)
      .then([
        { type: 'StepIntended', data: { step: 'takeOwnership', node: 'node-b', args: { ctid: '101' } } },
        { type: 'StepIntended', data: { step: 'releaseSource', node: 'node-a' } },
      ]);
  });
  it('the source lets go of the CT only after the target owns it: no cleanup before takeOwnership succeeded', () => {
    const released = until(happy, succeeded('releaseSource:-')).filter(
      (e) => !succeeded('takeOwnership:-')(e),
    );
    given(released).when(advance).thenNothingHappened();
  });
  it('a cancel is refused: the migration rolls forward', () => {
    given(log).when({ kind: 'Cancel', reason: 'too late', meta: m }).thenThrows('HAUL_CANCEL_TOO_LATE');
  });
});

describe('given the source released and the CT owned by the target', () => {
  it('cleanup unmounts the source first, then the source unregisters it, and the CT lock is released last', () => {
    const order = happy.flatMap((e) => (e.type === 'StepIntended' ? [e.data.step] : []));
    assert.ok(order.indexOf('takeOwnership') < order.indexOf('releaseOwnership'));
    assert.ok(order.indexOf('umountSource') < order.indexOf('releaseOwnership'));
    assert.equal(order.at(-1), 'unlockSource');
    given(until(happy, succeeded('releaseSource:-')))
      .when(advance)
      .then([{ type: 'StepIntended', data: { step: 'umountSource', node: 'node-a' } }]);
  });
  it('the origin snapshot is merged on the target only after the source dropped the copy and unmounted', () => {
    const order = happy
      .filter((e) => e.type === 'StepIntended')
      .map((e) => (e.type === 'StepIntended' ? e.data.step : ''));
    assert.ok(order.indexOf('umountSource') < order.indexOf('cleanupSharedDisk'));
    assert.ok(order.indexOf('cleanupSharedDisk') < order.indexOf('mergeOrigin'));
  });
  it('ends with MigrationCompleted and its stats', () => {
    const last = happy.at(-1)!;
    assert.equal(last.type, 'MigrationCompleted');
    if (last.type !== 'MigrationCompleted') return;
    assert.equal(last.data.stats.iterations.length, 5);
    assert.ok(last.data.stats.downtimeMs! > 0);
    assert.ok(last.data.stats.restoreMs! > 0);
  });
});

describe('given a rollback while a forward step is still running', () => {
  it('no compensation starts until that step reports', () => {
    const log = until(happy, intended('snapshotOrigin:1'));
    const rb: MigrationEvent = {
      ...log.at(-1)!,
      eventId: 'x:rb',
      type: 'RollbackStarted',
      data: { reason: 'test' },
    };
    given([...log, rb])
      .when(advance)
      .thenNothingHappened();
  });
});

describe('given a restart-mode migration', () => {
  it('copies every local disk at once once the source stopped', () => {
    const two = simulate({
      mode: 'restart',
      sharedDisks: 0,
      localDisks: 2,
      pagesPerIteration: [],
      memTrack: true,
      preDump: 'auto',
      fault: { kind: 'none' },
      picks: [],
    }).events;
    given(until(two, succeeded('stopSource:-')))
      .when(advance)
      .then([
        { type: 'StepIntended', data: { step: 'copyLocalDisk' } },
        { type: 'StepIntended', data: { step: 'copyLocalDisk' } },
      ]);
  });
  it('stops on the source, copies local disks, starts on the target, then cleans up', () => {
    const steps = restart
      .filter((e) => e.type === 'StepIntended')
      .map((e) => (e.type === 'StepIntended' ? e.data.step : ''));
    assert.deepEqual(steps, [
      'preflightTarget',
      'preflightSource',
      'lockSource',
      'stopSource',
      'copyLocalDisk',
      'startTarget',
      'takeOwnership',
      'releaseOwnership',
      'removeFiles',
      'removeFiles',
      'removeFiles',
      'unlockSource',
    ]);
    assert.equal(restart.at(-1)!.type, 'MigrationCompleted');
  });
  it('refuses a cancel while the CT is being started on the target (no fence there): the start would overtake it', () => {
    given(until(restart, intended('startTarget:-')))
      .when({ kind: 'Cancel', reason: 'ops', meta: m })
      .thenThrows('HAUL_CANCEL_TOO_LATE');
  });
  it('takes a cancel before the start is intended: the migration rolls back', () => {
    given(until(restart, succeeded('copyLocalDisk:0')))
      .when({ kind: 'Cancel', reason: 'ops', meta: m })
      .then([{ type: 'CancelRequested' }]);
  });
});
