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
  // The root disk's files: on the source; the target's copy is not there yet.
  disks: [node === 'node-a' ? { ...rootOn(node), bytes: 3e6 } : rootOn(node), sharedDisk],
  freeBytes: 1e10,
  privateFreeBytes: 1e10,
  memoryBytes: 64e6,
  vePrivate: `/${node}/vz/private/101`,
  // The source's private area is a ploop CT's; the target has none yet (its agent makes it before the restore).
  layout: node === 'node-a' ? 5 : 0,
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

  it('would not work in restart mode with files on the target where a local disk is copied to, naming the folder; live mode would', () => {
    // Given a target that holds files in the folder of the CT's root disk (an earlier migration's copy, whose
    // removal was resolved by hand)
    const source = findings('node-a');
    const target = findings('node-b', { disks: [{ ...rootOn('node-b'), bytes: 5e6 }, sharedDisk] });

    // When a restart-mode migration is checked, and a live one
    const restart = checkMigration({ request: { ...req, mode: 'restart' }, source, target });
    const live = checkMigration({ request: req, source, target });

    // Then the restart is refused before anything changes (its copy would take a file of the same name and size
    // for its own); a live migration's first pass sends every byte
    assert.equal(restart.problem?.code, 'HAUL_PREFLIGHT_LOCAL_DISK_LEFT');
    assert.equal(restart.problem?.field, 'target');
    assert.ok(
      restart.problem?.message.includes('/node-b/vz/private/101/root.hdd on node-b'),
      restart.problem?.message,
    );
    assert.equal(live.problem, undefined);
    // And an empty folder there, or none, holds nothing to take
    const empty = findings('node-b', { disks: [{ ...rootOn('node-b'), bytes: 0 }, sharedDisk] });
    assert.equal(
      checkMigration({ request: { ...req, mode: 'restart' }, source, target: empty }).problem,
      undefined,
    );
  });

  it('would not work for a CT whose action scripts the target does not have the same; the same scripts on both are fine', () => {
    // Given a CT whose private area holds a mount script, and targets with the same script, none, another version of
    // it, the same plus a premount script, or (from an agent older than the check) no finding at all
    const mount = { name: 'mount' as const, sha256: 'b'.repeat(64) };
    const check = (src: Findings['actionScripts'], tgt: Findings['actionScripts']) =>
      checkMigration({
        request: req,
        source: findings('node-a', src ? { actionScripts: src } : {}),
        target: findings('node-b', tgt ? { actionScripts: tgt } : {}),
      }).problem;

    // When each is checked (and one whose copy lost its mode bit x)
    const same = check([mount], [mount]);
    const none = check([mount], []);
    const other = check([mount], [{ name: 'mount', sha256: 'c'.repeat(64) }]);
    const extra = check([mount], [{ name: 'premount', sha256: 'd'.repeat(64) }, mount]);
    const notAFile = check([{ name: 'mount' }], [{ name: 'mount' }]);
    const notExecutable = check([{ ...mount, executable: true }], [{ ...mount, executable: false }]);

    // Then the same scripts pass, and every difference is refused naming the scripts, both private areas and what
    // to do; a script that is no regular file equals nothing; findings without scripts are not judged
    assert.equal(same, undefined);
    assert.deepEqual([none?.code, none?.field], ['HAUL_PREFLIGHT_ACTION_SCRIPTS', 'ctid']);
    assert.match(
      none!.message,
      /action script\(s\) mount of CT 101 in \/node-a\/vz\/private\/101\/scripts on node-a are not the same in \/node-b\/vz\/private\/101\/scripts on node-b/,
    );
    assert.match(none!.message, /copy the scripts to the target, or remove them/);
    assert.equal(other?.code, 'HAUL_PREFLIGHT_ACTION_SCRIPTS');
    assert.equal(extra?.code, 'HAUL_PREFLIGHT_ACTION_SCRIPTS');
    assert.match(extra.message, /scripts on node-b has premount, which the CT on node-a has not/);
    assert.doesNotMatch(extra.message, /are not the same/);
    assert.equal(notAFile?.code, 'HAUL_PREFLIGHT_ACTION_SCRIPTS');
    assert.equal(notExecutable?.code, 'HAUL_PREFLIGHT_ACTION_SCRIPTS');
    assert.equal(check([], []), undefined);
    assert.equal(check([mount], undefined), undefined);
    assert.equal(check(undefined, []), undefined);
  });

  it("would not work for a CT that is no ploop CT, nor onto another layout's private area; the target's own ploop one is fine", () => {
    // Given a source whose private area has no layout link, or VZFS's 4, and a target with a ploop private area, a
    // VZFS one, and (from an agent older than the check) none reported
    const check = (source: Partial<Findings>, target: Partial<Findings>) =>
      checkMigration({ request: req, source: findings('node-a', source), target: findings('node-b', target) })
        .problem;

    // When each is checked
    const noLink = check({ layout: 0 }, {});
    const vzfs = check({ layout: 4 }, {});
    const onto = check({}, { layout: 4 });

    // Then the source's is refused naming the CT and its layout, the target's naming the target; a target whose
    // private area is a ploop one already (shared storage, a CT that lived there) and findings without a layout pass
    assert.deepEqual([noLink?.code, noLink?.field], ['HAUL_PREFLIGHT_NOT_PLOOP', 'ctid']);
    assert.match(noLink!.message, /\/node-a\/vz\/private\/101 has layout 0 \(\.ve\.layout\), not layout 5/);
    assert.deepEqual([vzfs?.code, vzfs?.field], ['HAUL_PREFLIGHT_NOT_PLOOP', 'ctid']);
    assert.deepEqual([onto?.code, onto?.field], ['HAUL_PREFLIGHT_NOT_PLOOP', 'target']);
    assert.match(onto!.message, /on node-b has layout 4/);
    const unreadable = check({}, { layout: -1 });
    assert.deepEqual([unreadable?.code, unreadable?.field], ['HAUL_PREFLIGHT_NOT_PLOOP', 'target']);
    assert.match(unreadable!.message, /a \.ve\.layout that is no layout link/);
    assert.equal(check({}, { layout: 5 }), undefined);
    const { layout: _s, ...olderSource } = findings('node-a', { layout: 4 });
    const { layout: _t, ...olderTarget } = findings('node-b', { layout: 4 });
    assert.equal(
      checkMigration({ request: req, source: olderSource, target: olderTarget }).problem,
      undefined,
    );
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
