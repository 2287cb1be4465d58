import assert from 'node:assert/strict';
import { closeSync, cpSync, existsSync, openSync, readFileSync, readSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createEmulatedCluster, until, type EmulatedCluster } from '@haul/test';

describe('the page cache of a mounted emulated disk, and its write tracker', () => {
  let c: EmulatedCluster;
  const ctid = '300';
  let disk: string;
  let dd: string;
  const journal = () => join(c.nodeRoot('node-a'), 'var', 'log', `ct-${ctid}.writes`);
  const lines = () => (existsSync(journal()) ? readFileSync(journal(), 'utf8').split('\n').length - 1 : 0);
  const view = async (ddxml: string) =>
    JSON.parse(await c.ok('node-a', 'haul-emu', ['disk-view', ddxml])) as Record<string, string>;
  const track = async (cmd: string) =>
    JSON.parse(await c.ok('node-a', 'haul-ploop-track', [...cmd.split(' '), dd])) as {
      file?: string;
      extents?: [number, number][];
    };
  const copy = (to: string) => {
    rmSync(to, { recursive: true, force: true });
    cpSync(disk, to, { recursive: true });
    return join(to, 'DiskDescriptor.xml');
  };
  const frozen = async <T>(fn: () => Promise<T>): Promise<T> => {
    await c.ok('node-a', 'haul-emu', ['freeze', ctid]);
    try {
      return await fn();
    } finally {
      await c.ok('node-a', 'haul-emu', ['thaw', ctid]);
    }
  };

  before(async () => {
    c = createEmulatedCluster();
    await c.addNode('node-a');
    // No writeback: what the CT writes stays in the page cache until a sync (or an unmount).
    await c.ok('node-a', 'haul-emu', [
      'create-ct',
      '--ctid',
      ctid,
      '--memory-mb',
      '4',
      '--disk-writes',
      '400',
      '--writeback-ms',
      '0',
    ]);
    await c.ok('node-a', 'vzctl', ['start', ctid]);
    disk = join(c.nodeRoot('node-a'), 'vz', 'private', ctid, 'root.hdd');
    dd = join(disk, 'DiskDescriptor.xml');
  });
  after(() => c.destroy());

  it('a copy of the image files made without a sync loses what the CT wrote (the unsafe copy)', async () => {
    await until(() => lines() >= 20, 'the CT to write blocks', 20_000);
    await frozen(async () => {
      const seen = await view(dd);
      const lost = await view(copy(join(c.dir, 'unsafe')));
      const missing = Object.keys(seen).filter((b) => seen[b] !== lost[b]);
      assert.ok(missing.length > 0, 'the copy holds every block the CT wrote, page cache or not');
    });
  });

  it('after a sync (syncfs) a copy made while the CT is frozen equals what the CT sees', async () => {
    await until(() => lines() >= 40, 'more writes', 20_000);
    await frozen(async () => {
      await c.ok('node-a', 'haul-ploop-track', ['sync', dd]);
      assert.deepEqual(await view(copy(join(c.dir, 'synced'))), await view(dd));
    });
  });

  it('tracks the extents written since it started: a copy made while the CT ran, patched with them, is equal', async () => {
    const started = await track('start');
    const top = started.file!;
    const target = copy(join(c.dir, 'tracked'));
    const at = lines();
    await until(() => lines() >= at + 40, 'writes after the copy', 20_000);
    await c.ok('node-a', 'haul-ploop-track', ['sync', dd]); // a writeback while the CT runs
    const first = await track('take');
    assert.ok((first.extents ?? []).length > 0, 'the writeback is tracked');
    await frozen(async () => {
      // One call: sync, then take (what a pass of the streamer's copy runs).
      const last = await track('take --sync');
      // Patch the copy's top delta with every extent taken, read from the source's top delta.
      const src = openSync(top, 'r');
      const dst = openSync(join(c.dir, 'tracked', top.slice(disk.length + 1)), 'r+');
      try {
        for (const [s, e] of last.extents ?? []) {
          const buf = Buffer.alloc(e - s);
          readSync(src, buf, 0, buf.length, s);
          writeSync(dst, buf, 0, buf.length, s);
        }
      } finally {
        closeSync(src);
        closeSync(dst);
      }
      await track('ack');
      assert.deepEqual(await view(target), await view(dd));
    });
    const misplaced = await c.run('node-a', 'haul-ploop-track', ['ack', '--sync', dd]);
    assert.equal(misplaced.code, 1, '--sync belongs to take alone');
    await c.ok('node-a', 'haul-ploop-track', ['stop', dd]);
    const r = await c.run('node-a', 'haul-ploop-track', ['take', dd]);
    assert.equal(r.code, 3, 'no tracker runs after stop');
  });
});
