import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import type { MigrateRequest, MigrationEvent } from '@haul/schemas';
import { checkMigration, predictDowntime } from './check.ts';
import { predictFrozenMs } from './convergence.ts';
import { lastMeasuredConvergence } from './decide.ts';
import type { Findings } from './disks.ts';
import { fold } from './evolve.ts';
import { initialState } from './state.ts';

const req: MigrateRequest = { requestId: 'r', ctid: '101', source: 'node-a', target: 'node-b' };
const digest = 'a'.repeat(64);
const sharedDisk = {
  ddxml: '/shared/ct101-data0/DiskDescriptor.xml',
  shared: true,
  location: 'shared' as const,
  sharedRoot: '/shared',
  descriptorSha256: digest,
};
const rootOn = (n: string) => ({
  ddxml: `/${n}/vz/private/101/root.hdd/DiskDescriptor.xml`,
  shared: false,
  location: 'private' as const,
});
const findings = (node: string, over: Partial<Findings> = {}): Findings => ({
  configPresent: true,
  running: node === 'node-a',
  criuVersion: '3.17',
  memTrack: true,
  cpuFlags: ['fpu'],
  disks: [{ ...rootOn(node), bytes: 3e6 }, sharedDisk],
  freeBytes: 1e10,
  privateFreeBytes: 1e10,
  memoryBytes: 64e6,
  ...over,
});

describe('checkMigration', () => {
  it('would work: the shared disk takes the shared-disk steps, the root disk and the memory are copied', () => {
    const r = checkMigration({ request: req, source: findings('node-a'), target: findings('node-b') });
    assert.equal(r.wouldWork, true);
    assert.equal(r.problem, undefined);
    assert.deepEqual(
      r.disks.map((d) => [d.location, d.action]),
      [
        ['private', 'copied'],
        ['shared', 'shared'],
      ],
    );
    assert.deepEqual(r.copy, { localDiskBytes: 3e6, memoryBytes: 64e6, targetFreeBytes: 1e10 });
  });

  it('would not work with a wrong sharedDisks: the preflight’s refusal, naming the entry', () => {
    const r = checkMigration({
      request: { ...req, sharedDisks: ['/shared/elsewhere'] },
      source: findings('node-a'),
      target: findings('node-b'),
    });
    assert.equal(r.wouldWork, false);
    assert.equal(r.problem?.code, 'HAUL_PREFLIGHT_SHARED_DISK');
    assert.equal(r.problem?.field, 'sharedDisks.0');
  });

  it('would not work on a target without room for the memory images, nor for the local disks', () => {
    const noImages = checkMigration({
      request: req,
      source: findings('node-a'),
      target: findings('node-b', { freeBytes: 1e6 }),
    });
    assert.equal(noImages.problem?.code, 'HAUL_PREFLIGHT_NO_ROOM');
    assert.match(noImages.problem.message, /image root/);
    const noDisks = checkMigration({
      request: req,
      source: findings('node-a'),
      target: findings('node-b', { privateFreeBytes: 1e6 }),
    });
    assert.equal(noDisks.problem?.code, 'HAUL_PREFLIGHT_NO_ROOM');
    assert.match(noDisks.problem.message, /local disks/);
  });

  it('says what admission would answer before anything the nodes found', () => {
    const busy = { code: 'HAUL_CT_BUSY', message: 'CT 101 is already migrating (m-1)', field: 'ctid' };
    const r = checkMigration({
      request: { ...req, sharedDisks: ['/nope'] },
      admission: busy,
      source: findings('node-a'),
      target: findings('node-b'),
    });
    assert.deepEqual(r.problem, busy);
  });
});

describe('predictDowntime', () => {
  const here = dirname(fileURLToPath(import.meta.url));
  const log = readFileSync(
    join(here, '..', '..', '..', 'test', 'fixtures', 'logs', 'live-shared-and-local.jsonl'),
    'utf8',
  )
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as MigrationEvent);
  const history = fold(log, initialState());

  it('is the decider’s prediction from the last measured pre-dumps, plus the local disks at the link', () => {
    const m = lastMeasuredConvergence(history)!;
    assert.ok(m.dirtyPagesPerSec! > 0);
    const p = predictDowntime(req, history, 4e6);
    const bw = m.bandwidthBytesPerSec ?? m.dumpBytesPerSec!;
    const want = predictFrozenMs({ ...m, bandwidthBytesPerSec: bw })! + (4e6 / bw) * 1000;
    assert.ok(Math.abs(p.predictedMs! - want) < 0.1, `${p.predictedMs} vs ${want}`);
    assert.equal(p.basis?.migrationId, history.migrationId);
  });

  it('takes the request’s bandwidth limit when it is below the measured link', () => {
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
    const free = predictDowntime(req, fast, 0);
    const capped = predictDowntime({ ...req, bandwidthLimitMBps: 1 }, fast, 0);
    assert.equal(free.basis?.bandwidthCappedByRequest, undefined);
    assert.equal(capped.basis?.bandwidthCappedByRequest, true);
    assert.equal(capped.basis?.bandwidthBytesPerSec, 1e6);
    assert.ok(capped.predictedMs! > free.predictedMs!);
  });

  it('has none without a migration that measured the CT’s dirty rate', () => {
    const p = predictDowntime(req, undefined, 0);
    assert.equal(p.predictedMs, undefined);
    assert.match(p.note, /dirty rate/);
  });
});
