import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createEmulatedCluster, type EmulatedCluster } from '@haul/test';
import { whileLockHeld } from './lock-holder.ts';

const TOP = '{5fbaabe3-6958-40ff-92a7-860e329aab41}';
const G1 = '{0f4c9a7e-1b2d-4c3e-8f5a-6d7e8f9a0b1c}';

describe('ploop emulator: command lines, files, messages and exit codes', () => {
  let c: EmulatedCluster;
  let dd: string;
  before(async () => {
    c = createEmulatedCluster();
    await c.addNode('node-a');
    await c.addNode('node-b');
    dd = join(c.shared, 'disk', 'DiskDescriptor.xml');
    await c.ok('node-a', 'mkdir', ['-p', join(c.shared, 'disk')]);
    await c.ok('node-a', 'ploop', ['init', '-s', '10G', join(c.shared, 'disk', 'root.hds')]);
  });
  after(() => c.destroy());

  it('init writes the Parallels_disk_image layout with one TOPDELTA image, and refuses an existing descriptor (38)', async () => {
    const xml = readFileSync(dd, 'utf8');
    assert.match(
      xml,
      /^<\?xml version="1.0"\?>\n<Parallels_disk_image>\n {2}<Disk_Parameters>\n {4}<Disk_size>20971520<\/Disk_size>\n {4}<Cylinders>40960<\/Cylinders>\n {4}<Heads>16<\/Heads>\n {4}<Sectors>32<\/Sectors>/,
    );
    assert.match(xml, new RegExp(`<TopGUID>${TOP.replace(/[{}]/g, '\\$&')}</TopGUID>`));
    assert.match(xml, /<ParentGUID>\{00000000-0000-0000-0000-000000000000\}<\/ParentGUID>/);
    const again = await c.run('node-a', 'ploop', ['init', '-s', '1G', join(c.shared, 'disk', 'root.hds')]);
    assert.equal(again.code, 38);
    assert.match(again.stderr, /File exists/);
    assert.equal((await c.run('node-a', 'ploop', ['init', '-s', 'lots', join(c.dir, 'x.hds')])).code, 38);
  });

  it('only takes descriptor names ending in .xml (usage, 38) and reports a missing one (39)', async () => {
    await c.ok('node-a', 'cp', [dd, `${dd}.copy`]);
    const r = await c.run('node-a', 'ploop', ['snapshot', `${dd}.copy`]);
    assert.equal(r.code, 38);
    assert.match(r.stderr, /^Usage: ploop/);
    assert.equal(
      (await c.run('node-a', 'ploop', ['mount', join(c.dir, 'nope', 'DiskDescriptor.xml')])).code,
      39,
    );
    await c.ok('node-a', 'rm', [`${dd}.copy`]);
  });

  it('mounts (Adding delta … (rw)), refuses a second mount (21) and an unknown -u (43); umount twice gives 40', async () => {
    const out = await c.ok('node-a', 'ploop', ['mount', dd]);
    assert.match(out, /^Adding delta dev=\/dev\/ploop\d+ img=.*root\.hds \(rw\)$/m);
    const twice = await c.run('node-a', 'ploop', ['mount', dd]);
    assert.equal(twice.code, 21);
    assert.match(twice.stderr, /already used by device/);
    assert.equal((await c.run('node-a', 'ploop', ['umount', dd])).code, 0);
    const un = await c.run('node-a', 'ploop', ['umount', dd]);
    assert.equal(un.code, 40);
    assert.match(un.stderr, /is not mounted/);
    assert.equal((await c.run('node-a', 'ploop', ['mount', '-u', G1, dd])).code, 43);
    assert.equal((await c.run('node-a', 'ploop', ['umount', '-m', '/nowhere'])).code, 38);
  });

  it('snapshot relabels the top and adds <file>.{guid} as TOPDELTA; GUIDs with or without braces; duplicates and bad ones give 38', async () => {
    const out = await c.ok('node-a', 'ploop', ['snapshot', '-u', G1.slice(1, -1), dd]);
    assert.match(
      out,
      new RegExp(`ploop snapshot \\${G1.slice(0, -1)}\\} has been successfully created$`, 'm'),
    );
    const list = await c.ok('node-a', 'ploop', ['snapshot-list', '-H', '-o', 'parent_uuid,uuid,fname', dd]);
    const rows = list
      .trim()
      .split('\n')
      .map((l) => l.trim().split(/\s+/));
    assert.equal(rows.length, 2);
    assert.deepEqual(rows[0]!.slice(0, 2), ['{00000000-0000-0000-0000-000000000000}', G1]);
    assert.deepEqual(rows[1]!.slice(0, 2), [G1, TOP]);
    assert.match(rows[1]![2]!, /root\.hds\.\{[0-9a-f-]{36}\}$/);
    // -u lists from that snapshot down to the base; one not there ends the listing with 1 (ploop-snapshot.c)
    const fromTop = await c.ok('node-a', 'ploop', ['snapshot-list', '-H', '-o', 'uuid', '-u', TOP, dd]);
    assert.deepEqual(
      fromTop
        .trim()
        .split('\n')
        .map((l) => l.trim()),
      [TOP, G1],
    );
    const missing = await c.run('node-a', 'ploop', [
      'snapshot-list',
      '-u',
      '{11111111-2222-4333-8444-555555555555}',
      dd,
    ]);
    assert.deepEqual(
      [missing.code, missing.stderr.trim()],
      [1, "Can't find snapshot by uuid {11111111-2222-4333-8444-555555555555}"],
    );
    assert.equal((await c.run('node-a', 'ploop', ['snapshot', '-u', G1, dd])).code, 38);
    const bad = await c.run('node-a', 'ploop', ['snapshot', '-u', 'not-a-guid', dd]);
    assert.equal(bad.code, 38);
    assert.match(bad.stderr, /Incorrect uuid specified: not-a-guid/);
  });

  it('snapshot-delete: unknown GUID 43, base 38; one child merges the child into it and deletes exactly the child file', async () => {
    assert.equal(
      (
        await c.run('node-a', 'ploop', [
          'snapshot-delete',
          '-u',
          '{11111111-1111-4111-8111-111111111111}',
          dd,
        ])
      ).code,
      43,
    );
    const before = readdirSync(join(c.shared, 'disk')).filter((f) => f.startsWith('root.hds.'));
    assert.equal(before.length, 1);
    const out = await c.ok('node-a', 'ploop', ['snapshot-delete', '-u', G1, dd]);
    assert.match(out, /ploop snapshot merged$/m);
    assert.deepEqual(
      readdirSync(join(c.shared, 'disk')).filter((f) => f.startsWith('root.hds.')),
      [],
    );
    assert.equal((await c.run('node-a', 'ploop', ['snapshot-delete', '-u', TOP, dd])).code, 38);
  });

  it('snapshot-merge refuses -u with -A (38); -A folds the chain into one image, and finds nothing to fold in one (38)', async () => {
    await c.ok('node-a', 'ploop', ['snapshot', dd]);
    await c.ok('node-a', 'ploop', ['snapshot', dd]);
    assert.equal((await c.run('node-a', 'ploop', ['snapshot-merge', '-A', '-u', G1, dd])).code, 38);
    await c.ok('node-a', 'ploop', ['snapshot-merge', '-A', dd]);
    assert.equal((await c.ok('node-a', 'ploop', ['snapshot-list', '-H', dd])).trim().split('\n').length, 1);
    // With no snapshot left, -A finds none to merge: 38, and nothing said (ploop 7: lib/merge.c 1023–1047 at v7.0.280).
    const none = await c.run('node-a', 'ploop', ['snapshot-merge', '-A', dd]);
    assert.deepEqual([none.code, none.stderr.trim()], [38, '']);
  });

  it("snapshot-switch refuses in ploop 7's order (38), then goes back to the snapshot offline: a fresh top on it", async () => {
    await c.ok('node-a', 'ploop', ['snapshot', '-u', G1, dd]);
    await c.ok('node-a', 'ploop', ['mount', dd]);
    const G2 = '{3a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d}';
    // Given a mounted disk, the refusals that come before the device check (lib/snapshot.c 836–852 at v7.0.280)
    const refusal = async (guid: string) => {
      const r = await c.run('node-a', 'ploop', ['snapshot-switch', '-u', guid, dd]);
      return [r.code, r.stderr.trim()];
    };
    assert.deepEqual(await refusal(TOP), [38, `Nothing to do, already on ${TOP} snapshot`]);
    assert.deepEqual(await refusal(G2), [38, `Can't find snapshot by uuid ${G2}`]);
    // Then the device (870–878)
    const [code, stderr] = await refusal(G1);
    assert.equal(code, 38);
    assert.match(
      String(stderr),
      /^Unable to perform switch to snapshot operation on running device \(\/dev\/ploop\d+\)$/,
    );
    await c.ok('node-a', 'ploop', ['umount', dd]);
    // When switched offline to G1, the top the snapshot made is removed and a new empty one made on G1
    const deltas = () => readdirSync(join(c.shared, 'disk')).filter((f) => f.startsWith('root.hds.{'));
    const [oldTop] = deltas();
    const out = await c.ok('node-a', 'ploop', ['snapshot-switch', '-u', G1, dd]);
    assert.match(
      out,
      new RegExp(
        `^Removing .*${oldTop!.replace(/[{}.]/g, '\\$&')}\nploop snapshot has been successfully switched\n$`,
      ),
    );
    const [newTop, ...more] = deltas();
    assert.deepEqual(more, []);
    assert.notEqual(newTop, oldTop);
    assert.match(
      await c.ok('node-a', 'ploop', ['snapshot-list', '-H', '-o', 'uuid,parent_uuid', dd]),
      new RegExp(`^${TOP.replace(/[{}]/g, '\\$&')} +${G1.replace(/[{}]/g, '\\$&')}$`, 'm'),
    );
    await c.ok('node-a', 'ploop', ['snapshot-merge', dd]);
  });

  it('snapshot-delete of a snapshot whose child the mounted device does not hold: "Inconsistency detected" (38), nothing merged', async () => {
    // Given the disk mounted, then an offline snapshot: the device keeps writing the old top, now the snapshot G1,
    // and the descriptor's new top is a delta the device does not hold
    await c.ok('node-a', 'ploop', ['mount', dd]);
    await c.ok('node-a', 'ploop', ['snapshot', '-o', '-u', G1, dd]);
    const files = () => readdirSync(join(c.shared, 'disk')).sort();
    const before = files();
    // When G1 is deleted (its child merged into it): ploop refuses where a merge offline would write the device's
    // open delta (lib/merge.c ploop_delete_snapshot_by_guid 955–962)
    const r = await c.run('node-a', 'ploop', ['snapshot-delete', '-u', G1, dd]);
    assert.equal(r.code, 38);
    assert.match(r.stderr, /^Inconsistency detected .*root\.hds \[0\] .*root\.hds\.\S+ \[-1\]$/m);
    assert.deepEqual(files(), before, 'nothing merged or removed');
    // Once the device is gone, the same delete merges offline
    await c.ok('node-a', 'ploop', ['umount', dd]);
    await c.ok('node-a', 'ploop', ['snapshot-delete', '-u', G1, dd]);
    assert.equal((await c.ok('node-a', 'ploop', ['snapshot-list', '-H', dd])).trim().split('\n').length, 1);
  });

  it("shows a device's deltas in sysfs as ploop 7's driver does: /sys/block/<dev>/pdelta/<level>/image", async () => {
    const pdelta = (dev: string) =>
      join(c.nodeRoot('node-a'), 'sys', 'block', dev.replace('/dev/', ''), 'pdelta');
    const levels = (dev: string) =>
      existsSync(pdelta(dev))
        ? readdirSync(pdelta(dev))
            .sort()
            .map((l) => readFileSync(join(pdelta(dev), l, 'image'), 'utf8').trim())
        : undefined;
    const base = join(c.shared, 'disk', 'root.hds');
    // Mounted: the base alone
    const dev = /ploop\d+/.exec(await c.ok('node-a', 'ploop', ['mount', dd]))![0];
    assert.deepEqual(levels(dev), [base]);
    // An online snapshot switches the device to its new delta: level 1
    await c.ok('node-a', 'ploop', ['snapshot', '-u', G1, dd]);
    const top = levels(dev)?.[1];
    assert.match(top ?? '', /root\.hds\.\{[0-9a-f-]{36}\}$/);
    // An online merge takes it back out; an unmount removes the device's entry
    await c.ok('node-a', 'ploop', ['snapshot-delete', '-u', G1, dd]);
    assert.deepEqual(levels(dev), [base]);
    await c.ok('node-a', 'ploop', ['umount', dd]);
    assert.equal(levels(dev), undefined);
  });

  it('info -s prints size, blocksize and format version', async () => {
    assert.equal(
      await c.ok('node-a', 'ploop', ['info', '-s', dd]),
      'size:\t\t20971520\nblocksize:\t2048\nfmt_version:\t2\n',
    );
  });

  it('times out on a held descriptor lock with exit 23', async () => {
    const res = await whileLockHeld(c, 'node-a', dd, () =>
      c.run('node-a', 'ploop', ['snapshot', dd], { HAUL_EMU_PLOOP_LOCK_TIMEOUT_MS: '300' }),
    );
    assert.equal(res.code, 23);
    assert.match(res.stderr, /DiskDescriptor\.xml\.lck is locked: Resource temporarily unavailable/);
    assert.ok(existsSync(`${dd}.lck`), 'ploop never deletes the .lck file');
  });

  it('locks a copy addressed through a .xml link as <copy>.lck (the realpath)', async () => {
    await c.ok('node-a', 'cp', [dd, `${dd}.copy`]);
    symlinkSync('DiskDescriptor.xml.copy', join(c.shared, 'disk', 'DiskDescriptor.copy.xml'));
    await c.ok('node-a', 'ploop', ['snapshot', join(c.shared, 'disk', 'DiskDescriptor.copy.xml')]);
    assert.ok(existsSync(`${dd}.copy.lck`));
  });

  it('refuses a read-write attach of an image another node has open, and records it as corruption', async () => {
    const d2 = join(c.shared, 'disk2');
    await c.ok('node-a', 'mkdir', ['-p', d2]);
    await c.ok('node-a', 'ploop', ['init', '-s', '64M', join(d2, 'root.hds')]);
    await c.ok('node-a', 'ploop', ['mount', join(d2, 'DiskDescriptor.xml')]);
    const r = await c.run('node-b', 'ploop', ['mount', join(d2, 'DiskDescriptor.xml')]);
    assert.notEqual(r.code, 0);
    const log = await c.ok('node-b', 'haul-emu', ['corruption-log']);
    assert.match(log, /refused mount: .*root\.hds/);
  });

  it('refuses it too when the other node names the same image through a link, from a descriptor of its own', async () => {
    // Given disk3 attached on node-a, and node-b's descriptor naming disk3's image by an absolute path through a link
    const d3 = join(c.shared, 'disk3');
    await c.ok('node-a', 'mkdir', ['-p', d3]);
    await c.ok('node-a', 'ploop', ['init', '-s', '64M', join(d3, 'root.hds')]);
    await c.ok('node-a', 'ploop', ['mount', join(d3, 'DiskDescriptor.xml')]);
    symlinkSync(d3, join(c.shared, 'disk3-link'));
    const other = join(c.dir, 'node-b-view');
    mkdirSync(other);
    writeFileSync(
      join(other, 'DiskDescriptor.xml'),
      readFileSync(join(d3, 'DiskDescriptor.xml'), 'utf8').replace(
        '<File>root.hds</File>',
        `<File>${join(c.shared, 'disk3-link', 'root.hds')}</File>`,
      ),
    );
    // When node-b mounts it, then the emulated kernel sees one file, open read-write on node-a: refused, recorded
    const r = await c.run('node-b', 'ploop', ['mount', join(other, 'DiskDescriptor.xml')]);
    assert.notEqual(r.code, 0, r.stdout);
    const log = await c.ok('node-b', 'haul-emu', ['corruption-log']);
    assert.ok(log.includes(`refused mount: ${join(d3, 'root.hds')}`), log);
  });
});
