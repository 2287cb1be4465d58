import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { EmulatedCluster } from '@haul/test';
import { ctOnTwoNodes, dumpSaving } from './ve-dump.ts';

/*
 * A CT's own fs.fsync-enable, fs.odirect_enable and kernel.randomize_va_space (virtualized per VE) across a dump and
 * a restore, as VZ carries them: vz-cpt-action saves each at post-dump (`cgexec -g ve:$VEID cat /proc/sys/<…> >
 * vz_<…>.img`, fsync-enable only when the host has it), vz-rst-action writes each back at post-restore when the file
 * is there and fails the restore when the write fails (OpenVZ/libvzctl@ebbfc38 scripts/vz-cpt-action.in 117–124,
 * vz-rst-action.in 170–179). vzctl suspend also saves the memory limits (vz-cpt-action.in 98–103).
 */
describe('per-VE sysctls across a dump and a restore on another node', () => {
  let c: EmulatedCluster;
  const sysctls = {
    'fs.fsync-enable': ['/proc/sys/fs/fsync-enable', 'vz_fsync-enable.img', '0'],
    'fs.odirect_enable': ['/proc/sys/fs/odirect_enable', 'vz_odirect_enable.img', '1'],
    'kernel.randomize_va_space': ['/proc/sys/kernel/randomize_va_space', 'vz_randomize_va_space.img', '0'],
  } as const;
  const read = (node: string, proc: string) => c.run(node, 'cgexec', ['-g', 've:300', 'cat', proc]);

  before(async () => {
    c = await ctOnTwoNodes();
  });
  after(() => c.destroy());

  /** Start on node-a, set the values, dump saving the named ones at post-dump, restore on node-b: its values. */
  async function migrate(n: number, save: (keyof typeof sysctls)[]): Promise<Record<string, string>> {
    await c.ok('node-a', 'vzctl', ['start', '300']);
    for (const [name, [, , v]] of Object.entries(sysctls))
      await c.ok('node-a', 'cgexec', ['-g', 've:300', 'sysctl', '-w', `${name}=${v}`]);
    const img = await dumpSaving(
      c,
      n,
      save.map((s) => ({ proc: sysctls[s][0], image: sysctls[s][1] })),
    );
    const r = await c.run('node-b', 'vzctl', [
      '--skipowner',
      '--skiplock',
      'restore',
      '300',
      '--dumpfile',
      img,
    ]);
    const values: Record<string, string> = { rc: String(r.code), stderr: r.stderr };
    if (r.code === 0) {
      for (const [name, [proc]] of Object.entries(sysctls)) {
        const v = await read('node-b', proc);
        values[name] = v.code === 0 ? v.stdout : `exit ${v.code}`;
      }
      await c.ok('node-b', 'vzctl', ['stop', '300']);
    }
    rmSync(img, { recursive: true, force: true });
    return values;
  }

  it('come back on the target when the dump saved them', async () => {
    const v = await migrate(1, ['fs.fsync-enable', 'fs.odirect_enable', 'kernel.randomize_va_space']);
    assert.equal(v['rc'], '0', v['stderr']);
    assert.deepEqual(
      [v['fs.fsync-enable'], v['fs.odirect_enable'], v['kernel.randomize_va_space']],
      ['0\n', '1\n', '0\n'],
    );
  });

  it("keep the new VE's values when the dump has no file for them: vz-rst does not fail", async () => {
    const v = await migrate(2, []);
    assert.equal(v['rc'], '0', v['stderr']);
    assert.deepEqual(
      [v['fs.fsync-enable'], v['fs.odirect_enable'], v['kernel.randomize_va_space']],
      ['2\n', '2\n', '2\n'],
    );
  });

  it('fsync-enable: a host without it has no VE value to read, and a restore there skips the saved one', async () => {
    const hostA = join(c.nodeRoot('node-a'), 'proc', 'sys', 'fs', 'fsync-enable');
    rmSync(hostA);
    try {
      await c.ok('node-a', 'vzctl', ['start', '300']);
      const r = await read('node-a', '/proc/sys/fs/fsync-enable');
      assert.equal(r.code, 1);
      assert.match(r.stderr, /No such file or directory/);
      // One cat of several: as cat does, the missing one is reported, the others printed in turn, and it exits 1.
      const all = await c.run('node-a', 'cgexec', [
        '-g',
        've:300',
        'cat',
        '/proc/sys/kernel/randomize_va_space',
        '/proc/sys/fs/fsync-enable',
        '/proc/sys/fs/odirect_enable',
      ]);
      assert.equal(all.code, 1);
      assert.equal(all.stdout, '2\n2\n');
      assert.equal(all.stderr.trim(), 'cat: /proc/sys/fs/fsync-enable: No such file or directory');
      await c.ok('node-a', 'vzctl', ['stop', '300']);
    } finally {
      writeFileSync(hostA, '1\n');
    }
    const hostB = join(c.nodeRoot('node-b'), 'proc', 'sys', 'fs', 'fsync-enable');
    rmSync(hostB);
    try {
      const v = await migrate(3, ['fs.fsync-enable', 'fs.odirect_enable']);
      assert.equal(v['rc'], '0', v['stderr']);
      assert.equal(v['fs.fsync-enable'], 'exit 1');
      assert.equal(v['fs.odirect_enable'], '1\n');
    } finally {
      writeFileSync(hostB, '1\n');
    }
  });

  it('one cat reads several of them, one after the other in the order given', async () => {
    await c.ok('node-a', 'vzctl', ['start', '300']);
    try {
      await c.ok('node-a', 'cgexec', ['-g', 've:300', 'sysctl', '-w', 'fs.odirect_enable=1']);
      await c.ok('node-a', 'cgexec', ['-g', 've:300', 'sysctl', '-w', 'kernel.core_pattern=|/bin/x %p']);
      const procs = [
        '/proc/sys/kernel/core_pattern',
        '/proc/sys/fs/fsync-enable',
        '/proc/sys/fs/odirect_enable',
        '/proc/sys/kernel/randomize_va_space',
      ];
      const r = await c.run('node-a', 'cgexec', ['-g', 've:300', 'cat', ...procs]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, '|/bin/x %p\n2\n1\n2\n');
      assert.equal(r.stderr, '');
      // A path that is not an emulated /proc/sys file is refused, even among known ones.
      const other = await c.run('node-a', 'cgexec', ['-g', 've:300', 'cat', procs[0]!, '/etc/passwd']);
      assert.equal(other.code, 1);
      assert.match(other.stderr, /only .* are emulated/);
      assert.equal(other.stdout, '');
    } finally {
      await c.ok('node-a', 'vzctl', ['stop', '300']);
    }
  });

  it('vzctl suspend saves them, the memory limits and the clocks beside the dump', async () => {
    await c.ok('node-a', 'vzctl', ['start', '300']);
    await c.ok('node-a', 'cgexec', ['-g', 've:300', 'sysctl', '-w', 'fs.odirect_enable=1']);
    const veCg = join(c.nodeRoot('node-a'), 'sys', 'fs', 'cgroup', 've', '300');
    const clocks: Record<string, string> = {};
    for (const f of ['clock_bootbased', 'clock_monotonic'])
      clocks[f] = readFileSync(join(veCg, `ve.${f}`), 'utf8');
    const dir = join(c.dir, 'suspended');
    await c.ok('node-a', 'vzctl', ['suspend', '300', '--dumpfile', dir]);
    assert.equal(readFileSync(join(dir, 'vz_odirect_enable.img'), 'utf8'), '1\n');
    for (const f of ['vz_fsync-enable.img', 'vz_randomize_va_space.img', 'vz_core_pattern.img'])
      assert.ok(existsSync(join(dir, f)), f);
    for (const f of ['vz_memory_limit_in_bytes.img', 'vz_memory_memsw_limit_in_bytes.img'])
      assert.equal(readFileSync(join(dir, f), 'utf8'), `${4 * 1024 * 1024}\n`);
    // And its clocks (pre-dump, vz-cpt-action.in 94–97), as the CT's ve cgroup had them
    for (const f of ['clock_bootbased', 'clock_monotonic'])
      assert.equal(readFileSync(join(dir, `vz_${f}.img`), 'utf8'), clocks[f]);
    await c.ok('node-a', 'vzctl', ['restore', '300', '--dumpfile', dir]);
    await c.ok('node-a', 'vzctl', ['stop', '300']);
  });
  it('a CT that vzctl suspended on a VZ host restores there: the dump has the clocks vz-rst needs', async () => {
    await c.addNode('node-v'); // criu as VZ runs it, whose restore refuses a dump without the clocks
    await c.ok('node-v', 'haul-emu', [
      'create-ct',
      '--ctid',
      '301',
      '--memory-mb',
      '4',
      '--disk-writes',
      '0',
    ]);
    await c.ok('node-v', 'vzctl', ['start', '301']);
    const dir = join(c.dir, 'suspended-vz');
    await c.ok('node-v', 'vzctl', ['suspend', '301', '--dumpfile', dir]);
    assert.match(
      await c.ok('node-v', 'vzctl', ['restore', '301', '--dumpfile', dir]),
      /restored successfully/,
    );
    await c.ok('node-v', 'vzctl', ['stop', '301']);
  });
});
