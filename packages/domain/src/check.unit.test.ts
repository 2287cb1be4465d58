import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkMigration } from './check.ts';
import { withRequestDefaults } from './request.ts';
import type { Findings } from './disks.ts';

const req = withRequestDefaults({ requestId: 'r', ctid: '101', source: 'node-a', target: 'node-b' });
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

  it('predicts the downtime of a CT never migrated from what the source inspected: an estimate, its copied disk included', () => {
    const r = checkMigration({ request: req, source: findings('node-a'), target: findings('node-b') });
    assert.equal(r.downtime.basis, 'estimate');
    assert.deepEqual(r.downtime.inputs?.memoryBytes, { value: 64e6, from: 'inspected' });
    assert.deepEqual(
      r.downtime.inputs?.frozenDiskBytes,
      { value: 3e6, from: 'assumed' },
      'the root disk only',
    );
    assert.ok(r.downtime.predictedMs! > 0);
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

  it('would not work live with a DiskDescriptor.xml.copy left beside a shared disk, naming the disk; restart mode would', () => {
    // Given the source finds a backup of the shared disk's descriptor that no step of this migration made
    const left = { ...sharedDisk, backupLeft: true };
    const source = findings('node-a', { disks: [{ ...rootOn('node-a'), bytes: 3e6 }, left] });
    const target = findings('node-b');

    // When a live migration is checked, and a restart-mode one
    const live = checkMigration({ request: req, source, target });
    const restart = checkMigration({ request: { ...req, mode: 'restart' }, source, target });

    // Then the live one is refused before anything changes (its preparation would take the file for its own backup,
    // its rollback would put it back over the descriptor); a restart makes no backup
    assert.equal(live.wouldWork, false);
    assert.equal(live.problem?.code, 'HAUL_PREFLIGHT_BACKUP_LEFT');
    assert.equal(live.problem?.field, 'sharedDisks');
    assert.ok(live.problem?.message.includes(sharedDisk.ddxml), live.problem?.message);
    assert.equal(restart.problem, undefined);
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
