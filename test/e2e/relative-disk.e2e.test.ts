import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { followToEnd } from '@haul/cli';
import { startRunningWorld, type World } from '@haul/test';

/**
 * A CT configured as VZ7 writes its config (libvzctl lib/disk.c disk2str): DISK= names the root disk and a secondary
 * local disk by image= paths relative to VE_PRIVATE (`image=root.hdd,mnt=/`, `image=disk1.hdd`), and a shared disk
 * by its absolute path. It migrates live: both local disks are copied into the target's VE_PRIVATE, the shared one
 * is only handed over, and the target's config still names them as VZ7 would.
 */
describe('a live migration of a CT whose DISK= paths are relative to VE_PRIVATE', () => {
  let w: World;
  const confOn = (n: string) => join(w.cluster.nodeRoot(n), 'etc', 'vz', 'conf', `${w.ctid}.conf`);
  const diskLine = (n: string) => /^DISK=.*$/m.exec(readFileSync(confOn(n), 'utf8'))?.[0];
  before(async () => {
    w = await startRunningWorld({ sharedDisks: 1, memoryMb: 16, relativeDisks: true });
  });
  after(() => w?.stop());

  it('completes; the disks arrive, the config keeps its relative entries, the CT runs on the target', async () => {
    const source = diskLine('node-a');
    assert.match(source ?? '', /[,"]mnt=\/,image=root\.hdd;/);
    assert.match(source ?? '', /,image=disk1\.hdd;/);
    assert.ok(source?.includes(`,image=${w.shared[0]!}`), source);
    const base = await w.baseline('node-a');
    const r = await w.migrate(`relative-disk-${Date.now()}`);
    assert.ok(r.ok, JSON.stringify(r));
    if (!r.ok) return;
    const end = await followToEnd(w.eventLog, r.migrationId, () => {});
    if (end.type !== 'MigrationCompleted')
      for (const name of ['agent-node-a', 'agent-node-b', 'streamer-node-a', 'streamer-node-b'])
        console.error(`--- ${name}\n${w.services.get(name)?.lines.slice(-30).join('\n')}`);
    assert.equal(end.type, 'MigrationCompleted', JSON.stringify(end.data));
    // Disk contents (root, disk1.hdd, the shared disk) on the target, ownership, no leftovers on the source.
    assert.deepEqual(await w.brokenInvariants(r.migrationId, base), []);

    // Both local disks were copied (copyLocalDisk subject `<disk>` is a disk's frozen pass); the shared one was not.
    const events = await w.events(r.migrationId);
    const frozenPasses = events.flatMap((e) =>
      e.type === 'StepSucceeded' &&
      e.data.step === 'copyLocalDisk' &&
      !e.data.commandId.split(':').at(-2)!.includes('.')
        ? [e.data.commandId.split(':').at(-2)!]
        : [],
    );
    assert.deepEqual(frozenPasses.sort(), ['0', '1']);

    // takeOwnership makes the target's config $VE_PRIVATE/ve.conf: the same DISK= as the source's, still relative.
    assert.equal(diskLine('node-b'), source);
    const veConf = readFileSync(
      join(w.cluster.nodeRoot('node-b'), 'vz', 'private', w.ctid, 've.conf'),
      'utf8',
    );
    assert.ok(veConf.includes(source!), veConf);

    const status = await w.cluster.ok('node-b', 'vzctl', ['status', w.ctid]);
    assert.match(status, /running/);
    for (const d of ['root.hdd', 'disk1.hdd']) {
      const dd = join(w.cluster.nodeRoot('node-b'), 'vz', 'private', w.ctid, d, 'DiskDescriptor.xml');
      const info = await w.cluster.ok('node-b', 'ploop', ['info', '-d', dd]);
      assert.match(info, /device:\s+\/dev\/ploop\d+/, `${d} is mounted on the target`);
    }
  });
});
