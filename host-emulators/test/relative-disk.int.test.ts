import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createEmulatedCluster, type EmulatedCluster } from '@haul/test';

/** VZ7 writes DISK image= relative to VE_PRIVATE for a disk inside it (libvzctl lib/disk.c get_rel_path). */
describe('a CT disk inside VE_PRIVATE', () => {
  let c: EmulatedCluster;
  let priv: string;
  before(async () => {
    c = createEmulatedCluster();
    await c.addNode('node-a');
    priv = join(c.nodeRoot('node-a'), 'vz', 'private', '101');
    await c.ok('node-a', 'haul-emu', [
      'create-ct',
      '--ctid',
      '101',
      '--shared-disk',
      join(priv, 'disk1.hdd'),
      '--shared-disk',
      join(c.shared, 'd2'),
    ]);
  });
  after(() => c?.destroy());

  it('is written relative, a disk outside it absolute', () => {
    const conf = readFileSync(join(c.nodeRoot('node-a'), 'etc', 'vz', 'conf', '101.conf'), 'utf8');
    assert.match(conf, /,image=disk1\.hdd,/);
    assert.match(conf, new RegExp(`,image=${join(c.shared, 'd2')},`));
  });

  it('is found there by vzctl: start mounts it', async () => {
    await c.ok('node-a', 'vzctl', ['--skipowner', '--skiplock', 'start', '101']);
    const info = await c.ok('node-a', 'ploop', ['info', '-d', join(priv, 'disk1.hdd', 'DiskDescriptor.xml')]);
    assert.match(info, /device:\s+\/dev\/ploop\d+/);
    await c.ok('node-a', 'vzctl', ['--skipowner', '--skiplock', 'stop', '101']);
  });
});
