import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import type {
  DumpResult,
  HostResult,
  MigrationEvent,
  StepCommand,
  StepName,
  StreamResult,
} from '@haul/schemas';
import { finalDumpMs } from './convergence.ts';
import { withRequestDefaults } from './request.ts';
import { lastMeasuredConvergence } from './decide.ts';
import type { DiskRef, Findings } from './disks.ts';
import { dumpSpeedOf, isCeiling, predictDowntime, type DowntimeInput } from './downtime-prediction.ts';
import { fold } from './evolve.ts';
import { initialState, type MigrationState } from './state.ts';

const req = withRequestDefaults({ requestId: 'r', ctid: '101', source: 'node-a', target: 'node-b' });
const source = (over: Partial<Findings> = {}): Findings => ({
  configPresent: true,
  running: true,
  criuVersion: '3.17',
  memTrack: true,
  cpuFlags: ['fpu'],
  disks: [],
  freeBytes: 1e10,
  memoryBytes: 64e6,
  ...over,
});
const rootDisk: DiskRef = {
  ddxml: '/vz/private/101/root.hdd/DiskDescriptor.xml',
  shared: false,
  location: 'private',
  bytes: 3e6,
  index: 0,
};
const input = (over: Partial<DowntimeInput> = {}): DowntimeInput => ({
  request: req,
  source: source(),
  localDisks: [rootDisk],
  ...over,
});

/**
 * A completed live migration with the numbers a check reads: its dumps (the first one full), its transfers and its
 * restore, each a succeeded step with its result.
 */
function migration(m: {
  id: string;
  ctid?: string;
  source: string;
  target: string;
  dumps?: [bytes: number, ms: number][];
  streams?: [bytes: number, ms: number][];
  restoreMs?: number;
}): MigrationState {
  const s = initialState();
  s.migrationId = m.id;
  s.request = withRequestDefaults({
    requestId: m.id,
    ctid: m.ctid ?? '102',
    source: m.source,
    target: m.target,
  });
  s.lastTime = '2026-01-01T00:10:00.000Z';
  const add = (step: StepName, subject: string, result: unknown) => {
    const key = `${step}:${subject}`;
    const order = Object.keys(s.steps).length;
    s.steps[key] = {
      key,
      step,
      subject,
      status: 'succeeded',
      result,
      command: {} as StepCommand,
      intendedAt: s.lastTime!,
      order,
    };
  };
  for (const [i, [bytes, durationMs]] of (m.dumps ?? []).entries())
    add('preDump', String(i), { pagesWritten: bytes / 4096, bytes, durationMs } satisfies DumpResult);
  for (const [i, [bytes, durationMs]] of (m.streams ?? []).entries())
    add('streamImages', String(i), { bytes, durationMs, files: 1, mbPerSec: 0 } satisfies StreamResult);
  if (m.restoreMs !== undefined)
    add('restore', '-', { actions: ['restored'], durationMs: m.restoreMs } satisfies HostResult);
  return s;
}

/** CT 102's migration node-a → node-b: a full dump at 1 GB/s, the link at 200 MB/s, restored at 2 GB/s. */
const otherCtSamePair = migration({
  id: 'm-other',
  source: 'node-a',
  target: 'node-b',
  dumps: [[64e6, 64]],
  streams: [
    [64e6, 320],
    [1e6, 50],
  ],
  restoreMs: 32,
});

describe('given a CT never migrated, between two nodes no migration has measured', () => {
  it('when it pre-dumps: at most its whole memory dumped, streamed and restored, an estimate naming what it assumed', () => {
    const p = predictDowntime(input());
    // 100 ms fixed + 64 MB dumped at 500 MB/s + streamed at 100 MB/s + restored at 500 MB/s + 3 MB of disk at 100 MB/s
    assert.equal(p.predictedMs, 100 + 128 + 640 + 128 + 30);
    assert.equal(p.basis, 'estimate');
    assert.deepEqual(p.inputs?.memoryBytes, { value: 64e6, from: 'inspected' });
    assert.deepEqual(p.inputs?.dumpedBytes, { value: 64e6, from: 'assumed' });
    assert.deepEqual(p.inputs?.linkBytesPerSec, { value: 100e6, from: 'assumed' });
    assert.deepEqual(p.inputs?.dumpBytesPerSec, { value: 500e6, from: 'assumed' });
    assert.deepEqual(p.inputs?.restoreBytesPerSec, { value: 500e6, from: 'assumed' });
    assert.deepEqual(p.inputs?.frozenDiskBytes, { value: 3e6, from: 'assumed' });
    assert.equal(p.inputs?.dirtyPagesPerSec, undefined);
    assert.match(
      p.note,
      /^the final dump is counted as the CT's whole resident memory, the most it can write/,
    );
    assert.match(p.note, /no migration of CT 101 measured its dirty rate/);
    assert.match(
      p.note,
      /; assumed: dump 500 MB\/s, link 100 MB\/s, restore 500 MB\/s, 4 MiB per local disk/,
    );
    assert.equal(isCeiling(p.inputs), false, 'the real speeds may be slower than assumed');
  });

  it('when --pre-dump off: the final dump is the whole memory as inspected, the speeds still assumed', () => {
    const p = predictDowntime(input({ request: { ...req, preDump: 'off' } }));
    assert.equal(p.predictedMs, 1026);
    assert.equal(p.basis, 'estimate');
    assert.deepEqual(p.inputs?.dumpedBytes, { value: 64e6, from: 'inspected' });
    assert.match(p.note, /^no pre-dump: the whole resident memory is dumped, streamed and restored/);
  });

  it('when pre-dumps are auto and the source’s criu cannot track memory: no pre-dump, as the decider would', () => {
    const p = predictDowntime(input({ source: source({ memTrack: false }) }));
    assert.equal(p.inputs?.dumpedBytes.from, 'inspected');
    assert.match(p.note, /criu on node-a cannot track memory/);
  });

  it('when --bandwidth is below the assumed link: the limit, marked as the request’s', () => {
    const p = predictDowntime(input({ request: { ...req, bandwidthLimitMBps: 10 } }));
    assert.deepEqual(p.inputs?.linkBytesPerSec, { value: 10e6, from: 'assumed', cappedByRequest: true });
  });

  it('when the CT has no local disk: no frozen disk pass, and nothing assumed about one', () => {
    const p = predictDowntime(input({ localDisks: [] }));
    assert.deepEqual(p.inputs?.frozenDiskBytes, { value: 0, from: 'inspected' });
    assert.equal(p.predictedMs, 996);
  });

  it('a local disk smaller than a converged pass: at most the disk itself in the frozen pass', () => {
    const p = predictDowntime(input({ localDisks: [rootDisk, { ...rootDisk, index: 1, bytes: 64e6 }] }));
    assert.equal(p.inputs?.frozenDiskBytes.value, 3e6 + 4 * 2 ** 20);
  });
});

describe('given another CT’s migration between the same two nodes', () => {
  it('when predicting: its dump, link and restore speeds, each naming it; the final dump is still the ceiling', () => {
    const p = predictDowntime(input({ recent: [otherCtSamePair] }));
    const named = {
      from: 'measured',
      migrationId: 'm-other',
      ctid: '102',
      source: 'node-a',
      target: 'node-b',
      endedAt: '2026-01-01T00:10:00.000Z',
    };
    assert.deepEqual(p.inputs?.dumpBytesPerSec, { value: 1e9, ...named });
    assert.deepEqual(p.inputs?.linkBytesPerSec, { value: 200e6, ...named }, 'its largest transfer');
    assert.deepEqual(p.inputs?.restoreBytesPerSec, { value: 2e9, ...named });
    // 100 fixed + 64 MB at 1 GB/s + at 200 MB/s + restored at 2 GB/s + 3 MB of disk at 200 MB/s
    assert.equal(p.predictedMs, 100 + 64 + 320 + 32 + 15);
    assert.equal(p.basis, 'estimate', 'the dirty rate is still unknown');
    assert.doesNotMatch(p.note, /link|dump \d|restore \d/, 'no speed assumed');
  });

  it('when the CT has no local disk: only its final dump is assumed, the whole memory, so the prediction is a ceiling', () => {
    const p = predictDowntime(input({ localDisks: [], recent: [otherCtSamePair] }));
    assert.equal(p.basis, 'estimate');
    assert.equal(isCeiling(p.inputs!), true);
    assert.match(p.note, /^at most: the final dump is counted as the CT's whole resident memory/);
  });

  it('when --pre-dump off and the CT has no local disk: nothing assumed, so its basis is history', () => {
    const p = predictDowntime(
      input({ request: { ...req, preDump: 'off' }, localDisks: [], recent: [otherCtSamePair] }),
    );
    assert.equal(p.basis, 'history');
    assert.doesNotMatch(p.note, /assumed/);
  });

  it('one the other way measures the link, but neither this source’s dump nor this target’s restore', () => {
    const back = migration({ ...otherCtSamePair.request!, id: 'm-back', source: 'node-b', target: 'node-a' });
    Object.assign(back.steps, otherCtSamePair.steps);
    const p = predictDowntime(input({ recent: [back] }));
    assert.equal(p.inputs?.linkBytesPerSec.migrationId, 'm-back');
    assert.equal(p.inputs?.dumpBytesPerSec.from, 'assumed');
    assert.equal(p.inputs?.restoreBytesPerSec.from, 'assumed');
  });

  it('one from this source to a third node measures its dump speed, not this link', () => {
    const elsewhere = migration({
      ...otherCtSamePair.request!,
      id: 'm-c',
      source: 'node-a',
      target: 'node-c',
    });
    Object.assign(elsewhere.steps, otherCtSamePair.steps);
    const p = predictDowntime(input({ recent: [elsewhere] }));
    assert.equal(p.inputs?.dumpBytesPerSec.migrationId, 'm-c');
    assert.equal(p.inputs?.linkBytesPerSec.from, 'assumed');
  });

  it('the newest of several that measured it is taken', () => {
    const newer = migration({ id: 'm-new', source: 'node-a', target: 'node-b', streams: [[1e6, 100]] });
    const p = predictDowntime(input({ recent: [newer, otherCtSamePair] }));
    assert.equal(p.inputs?.linkBytesPerSec.migrationId, 'm-new');
    assert.equal(p.inputs?.dumpBytesPerSec.migrationId, 'm-other', 'the newer one made no dump');
  });
});

describe('given the CT’s own live migration that measured its dirty rate', () => {
  const here = dirname(fileURLToPath(import.meta.url));
  const log = readFileSync(
    join(here, '..', '..', '..', 'test', 'fixtures', 'logs', 'live-shared-and-local.jsonl'),
    'utf8',
  )
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as MigrationEvent);
  const history = fold(log, initialState());

  it('when predicting: one pre-dump window at its dirty rate, at its speeds, and its frozen disk pass: history', () => {
    const p = predictDowntime(input({ history }));
    assert.equal(p.basis, 'history');
    const i = p.inputs!;
    assert.equal(i.dirtyPagesPerSec?.from, 'measured');
    assert.equal(i.dirtyPagesPerSec?.migrationId, history.migrationId);
    const m = lastMeasuredConvergence(history)!;
    const dirtied = m.dirtyPagesPerSec! * (m.iterationMs! / 1000) * 4096;
    assert.ok(Math.abs(i.dumpedBytes.value - dirtied) < 0.1, `${i.dumpedBytes.value} vs ${dirtied}`);
    assert.deepEqual(
      [i.dumpBytesPerSec.from, i.linkBytesPerSec.from, i.restoreBytesPerSec.from, i.frozenDiskBytes.from],
      ['measured', 'measured', 'measured', 'measured'],
    );
    const link = i.linkBytesPerSec.value;
    const want =
      finalDumpMs(i.dumpedBytes.value, i.dumpBytesPerSec.value, link) +
      (i.frozenDiskBytes.value / link) * 1000 +
      (64e6 / i.restoreBytesPerSec.value) * 1000;
    assert.ok(Math.abs(p.predictedMs! - want) < 0.1, `${p.predictedMs} vs ${want}`);
    assert.match(p.note, new RegExp(`at the dirty rate ${history.migrationId} measured`));
  });

  it('when --bandwidth is below the measured link: the limit, marked as the request’s', () => {
    // The simulated link is slow (0.4 MB/s): make it 40 MB/s, so that a 1 MB/s limit is below it.
    const fast = fold(
      log.map((e) =>
        e.type === 'StepSucceeded' && e.data.step === 'streamImages'
          ? {
              ...e,
              data: {
                ...e.data,
                result: { ...e.data.result, bytes: Number((e.data.result as { bytes: number }).bytes) * 100 },
              },
            }
          : e,
      ),
      initialState(),
    );
    const free = predictDowntime(input({ history: fast }));
    const capped = predictDowntime(input({ request: { ...req, bandwidthLimitMBps: 1 }, history: fast }));
    assert.equal(free.inputs?.linkBytesPerSec.cappedByRequest, undefined);
    assert.equal(capped.inputs?.linkBytesPerSec.cappedByRequest, true);
    assert.equal(capped.inputs?.linkBytesPerSec.value, 1e6);
    assert.equal(capped.inputs?.linkBytesPerSec.from, 'measured');
    assert.ok(capped.predictedMs! > free.predictedMs!);
  });

  it('when asked for two other nodes: its link is not theirs, so that one is assumed', () => {
    const p = predictDowntime(input({ request: { ...req, source: 'node-b', target: 'node-c' }, history }));
    assert.equal(p.inputs?.linkBytesPerSec.from, 'assumed');
    assert.equal(p.inputs?.dirtyPagesPerSec?.from, 'measured');
    assert.equal(p.basis, 'estimate');
    assert.match(p.note, /assumed: link 100 MB\/s$/);
  });

  it('when --pre-dump off: the whole memory at its speeds, its dirty rate not needed', () => {
    const p = predictDowntime(input({ request: { ...req, preDump: 'off' }, history }));
    assert.deepEqual(p.inputs?.dumpedBytes, { value: 64e6, from: 'inspected' });
    assert.equal(p.inputs?.dirtyPagesPerSec, undefined);
    assert.equal(p.basis, 'history');
  });
});

describe('no prediction', () => {
  it('in restart mode', () => {
    const p = predictDowntime(input({ request: { ...req, mode: 'restart' } }));
    assert.equal(p.predictedMs, undefined);
    assert.match(p.note, /restart mode/);
  });
  it('without the CT’s resident memory (not running, or its agent did not answer)', () => {
    const { memoryBytes: _, ...stopped } = source();
    for (const src of [undefined, stopped]) {
      const p = predictDowntime(input({ source: src }));
      assert.equal(p.predictedMs, undefined);
      assert.equal(p.inputs, undefined);
      assert.match(p.note, /no resident memory of CT 101/);
    }
  });
});

describe('dumpSpeedOf', () => {
  it('takes the speed of the dump closest in size: a full dump’s for a full dump, a small one’s for a small one', () => {
    const s = migration({
      id: 'm',
      source: 'node-a',
      target: 'node-b',
      dumps: [
        [64e6, 64],
        [40960, 50],
      ],
    });
    assert.equal(dumpSpeedOf(s, 60e6), 1e9);
    assert.equal(dumpSpeedOf(s, 100e3), 819200);
    assert.equal(dumpSpeedOf(migration({ id: 'n', source: 'a', target: 'b' }), 1), undefined);
  });
});
