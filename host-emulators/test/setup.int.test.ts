import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createEmulatedCluster, type EmulatedCluster } from '@haul/test';
import { createCt, createNode, emuEnv } from '@haul/host-emulators';

/** Every file below `dir`: relative path → content (latin1, so that any byte compares). */
function filesOf(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out.set(relative(dir, p), readFileSync(p).toString('latin1'));
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

  it('given the same options, then the command line makes the node and CT that the functions the tests call make', async () => {
    const cluster = join(c.dir, 'same');
    const args = [
      '--ctid',
      '301',
      '--memory-mb',
      '8',
      '--dirty-rate',
      '2.5',
      '--disk-writes',
      '0',
      '--seed',
      '7',
    ];
    await c.ok('node-a', 'haul-emu', [
      'create-node',
      '--root',
      join(cluster, 'cli'),
      '--node',
      'node-x',
      '--cluster',
      join(cluster, 'shared-cli'),
    ]);
    await c.ok('node-a', 'haul-emu', ['create-ct', ...args], { HAUL_EMU_ROOT: join(cluster, 'cli') });
    createNode({ root: join(cluster, 'fn'), node: 'node-x', cluster: join(cluster, 'shared-fn') });
    createCt(emuEnv({ HAUL_EMU_ROOT: join(cluster, 'fn') }), {
      ctid: '301',
      memoryMb: 8,
      dirtyRate: 2.5,
      diskWrites: 0,
      seed: 7,
    });
    // Each node's files name its own folders, and its boot id is random: the rest is the same, byte for byte.
    const made = (root: string, shared: string) => {
      const files = filesOf(join(cluster, root));
      files.delete(join('proc', 'sys', 'kernel', 'random', 'boot_id'));
      for (const [k, v] of files)
        files.set(
          k,
          v.replaceAll(join(cluster, root), '<root>').replaceAll(join(cluster, shared), '<shared>'),
        );
      return files;
    };
    assert.deepEqual(made('fn', 'shared-fn'), made('cli', 'shared-cli'));
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
