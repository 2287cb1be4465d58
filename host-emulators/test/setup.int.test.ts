import assert from 'node:assert/strict';
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createEmulatedCluster, type EmulatedCluster } from '@haul/test';
import { createCt, createNode, emuEnv } from '@haul/host-emulators';

/**
 * Every file, folder and link below `dir`: relative path → content (latin1, so that any byte compares), a folder's
 * path with a slash → '', a link's → its target.
 */
function filesOf(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const st = lstatSync(p);
      if (st.isSymbolicLink()) out.set(relative(dir, p), `→ ${readlinkSync(p)}`);
      else if (st.isDirectory()) {
        out.set(`${relative(dir, p)}/`, '');
        walk(p);
      } else out.set(relative(dir, p), readFileSync(p).toString('latin1'));
    }
  };
  walk(dir);
  return out;
}

describe('haul-emu create-node and create-ct', () => {
  let c: EmulatedCluster;
  before(() => {
    c = createEmulatedCluster();
  });
  after(() => c.destroy());

  it('given the same options, then the command line makes the nodes and CTs that the functions the tests call make', async () => {
    const base = join(c.dir, 'same');
    /** One side's node, cluster folder and shared disk, all below `base/<side>`. */
    const side = (name: string) => ({
      root: join(base, name, 'node'),
      cluster: join(base, name, 'cluster'),
      shared: join(base, name, 'shared', 'ct301'),
    });
    const cli = side('cli');
    const fn = side('fn');
    const nodeFlags = ['--criu-version', '3.15', '--no-mem-track', '--cpu-flags', 'fpu,sse2', '--plain-criu'];
    const ctFlags = [
      ...['--memory-mb', '8', '--dirty-rate', '2.5', '--disk-writes', '0', '--seed', '7'],
      ...['--disk-size', '8M', '--disk-fill', '1', '--writeback-ms', '500', '--relative-disks'],
    ];
    await c.ok('node-a', 'haul-emu', [
      ...['create-node', '--root', cli.root, '--node', 'node-x', '--cluster', cli.cluster],
      ...nodeFlags,
    ]);
    const onCli = { HAUL_EMU_ROOT: cli.root };
    await c.ok(
      'node-a',
      'haul-emu',
      ['create-ct', '--ctid', '301', ...ctFlags, '--shared-disk', cli.shared],
      onCli,
    );
    await c.ok('node-a', 'haul-emu', ['create-ct', '--ctid', '302', '--config-only'], onCli);
    createNode({
      root: fn.root,
      node: 'node-x',
      cluster: fn.cluster,
      criuVersion: '3.15',
      memTrack: false,
      cpuFlags: ['fpu', 'sse2'],
      plainCriu: true,
    });
    const onFn = emuEnv({ HAUL_EMU_ROOT: fn.root });
    createCt(onFn, {
      ctid: '301',
      memoryMb: 8,
      dirtyRate: 2.5,
      diskWrites: 0,
      seed: 7,
      diskSize: '8M',
      diskFill: 1,
      writebackMs: 500,
      relativeDisks: true,
      shared: [fn.shared],
    });
    createCt(onFn, { ctid: '302', configOnly: true });
    // Each side's files name its own folders, and a node's boot id is random: the rest is the same, byte for byte.
    const made = (name: string) => {
      const files = filesOf(join(base, name));
      files.delete(join('node', 'proc', 'sys', 'kernel', 'random', 'boot_id'));
      // What the emulators parsed of the descriptors they read (ploop/descriptor.ts) is theirs, not the node's or the
      // CT's: a process that runs as the node (the command line) records it, the test process does not.
      for (const k of files.keys()) if (k.startsWith(join('cluster', 'parsed-descriptors'))) files.delete(k);
      for (const [k, v] of files) files.set(k, v.replaceAll(join(base, name), '<base>'));
      return files;
    };
    const [byCli, byFn] = [made('cli'), made('fn')];
    assert.ok(byCli.has(join('cluster', 'shaman', 'ct-301.json')), [...byCli.keys()].join(' '));
    assert.ok(byCli.has(join('shared', 'ct301', 'DiskDescriptor.xml')));
    assert.ok(byCli.has(join('node', 'vz', 'private', '301', 'disk1.hdd', 'DiskDescriptor.xml')));
    assert.equal(byCli.get(join('node', 'vz', 'private', '301', '.ve.layout')), '→ 5');
    assert.deepEqual(byFn, byCli);
  });

  it('given a count that is not one, then create-ct refuses with exit 2 and names the flag', async () => {
    for (const [flag, value] of [
      ['--memory-mb', '1.5'],
      ['--memory-mb', 'lots'],
      ['--dirty-rate', '-1'],
      ['--seed', ''],
    ]) {
      const r = await c.run('node-a', 'haul-emu', ['create-ct', '--ctid', '302', flag!, value!]);
      assert.equal(r.code, 2, `${flag} ${value}`);
      assert.match(r.stderr, new RegExp(`^${flag}: "${value}" is not a (whole )?number, 0 or more`), flag);
    }
  });
});
