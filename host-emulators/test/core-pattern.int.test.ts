import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { EmulatedCluster } from '@haul/test';
import { ctOnTwoNodes, dumpSaving } from './ve-dump.ts';

/*
 * A CT's own kernel.core_pattern (virtualized per VE) across a dump and a restore, as VZ carries it: vz-cpt-action
 * saves it at post-dump (`cgexec -g ve:$VEID cat /proc/sys/kernel/core_pattern > vz_core_pattern.img`), vz-rst-action
 * writes it back at post-restore when the file is there and skips it when not (OpenVZ/libvzctl@ebbfc38
 * scripts/vz-cpt-action.in 115–116, vz-rst-action.in 167–169).
 */
describe('the CT core pattern across a dump and a restore on another node', () => {
  let c: EmulatedCluster;
  const pattern = '|/usr/lib/systemd/systemd-coredump %P %u %g %s %t %c %h';
  const corePattern = (node: string) =>
    c.ok(node, 'cgexec', ['-g', 've:300', 'cat', '/proc/sys/kernel/core_pattern']);

  before(async () => {
    c = await ctOnTwoNodes();
  });
  after(() => c.destroy());

  /** Start on node-a, set the pattern, dump (saving it at post-dump unless `save` is false), restore on node-b. */
  async function migrate(n: number, save: boolean): Promise<string> {
    await c.ok('node-a', 'vzctl', ['start', '300']);
    assert.equal(await corePattern('node-a'), 'core\n', "a new VE has the kernel's default");
    await c.ok('node-a', 'cgexec', ['-g', 've:300', 'sysctl', '-w', `kernel.core_pattern=${pattern}`]);
    const img = await dumpSaving(
      c,
      n,
      save ? [{ proc: '/proc/sys/kernel/core_pattern', image: 'vz_core_pattern.img' }] : [],
    );
    await c.ok('node-b', 'vzctl', ['--skipowner', '--skiplock', 'restore', '300', '--dumpfile', img]);
    const restored = await corePattern('node-b');
    await c.ok('node-b', 'vzctl', ['stop', '300']);
    rmSync(img, { recursive: true, force: true });
    return restored;
  }

  it('comes back on the target when the dump saved vz_core_pattern.img', async () => {
    assert.equal(await migrate(1, true), `${pattern}\n`);
  });

  it("is the kernel's default on the target when the dump has no vz_core_pattern.img: vz-rst does not fail", async () => {
    assert.equal(await migrate(2, false), 'core\n');
  });

  it('cgexec fails for a CT that does not run, and runs only the emulated commands', async () => {
    const r = await c.run('node-a', 'cgexec', ['-g', 've:300', 'cat', '/proc/sys/kernel/core_pattern']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cgroup change of group failed/);
    await c.ok('node-a', 'vzctl', ['start', '300']);
    const other = await c.run('node-a', 'cgexec', ['-g', 've:300', 'cat', '/etc/passwd']);
    assert.equal(other.code, 1);
    assert.match(other.stderr, /only .* are emulated/);
    await c.ok('node-a', 'vzctl', ['stop', '300']);
  });
});
