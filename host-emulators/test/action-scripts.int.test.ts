import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { createEmulatedCluster, type EmulatedCluster } from '@haul/test';

/**
 * The mount action scripts as libvzctl runs them (lib/fs.c vzctl2_env_mount, vzctl2_env_umount; lib/util.c
 * get_action_script, run_action_scripts): the node's /etc/vz/conf/vps.<action> and the CT's
 * $VE_PRIVATE/scripts/<action>, on the host, with VEID and VE_CONFFILE.
 */
describe('vzctl: mount action scripts', () => {
  let c: EmulatedCluster;
  let priv: string;
  let confDir: string;
  let log: string;
  /** A script that logs its name, VEID and VE_CONFFILE, then exits `status`. */
  const script = (path: string, status = 0) =>
    writeFileSync(path, `#!/bin/sh\necho "$0 $VEID $VE_CONFFILE" >> ${log}\nexit ${status}\n`, {
      mode: 0o755,
    });
  const logged = (): string[] => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : []);
  const vzctl = (...args: string[]) => c.run('node-a', 'vzctl', ['--skipowner', '--skiplock', ...args]);
  const mounted = async () =>
    /device:\s+\/dev\/ploop\d+/.test(
      (await c.run('node-a', 'ploop', ['info', '-d', join(priv, 'root.hdd', 'DiskDescriptor.xml')])).stdout,
    );

  before(async () => {
    c = createEmulatedCluster();
    await c.addNode('node-a');
    priv = join(c.nodeRoot('node-a'), 'vz', 'private', '101');
    confDir = join(c.nodeRoot('node-a'), 'etc', 'vz', 'conf');
    log = join(c.dir, 'scripts.log');
    await c.ok('node-a', 'haul-emu', ['create-ct', '--ctid', '101']);
  });
  after(() => c?.destroy());
  afterEach(async () => {
    for (const a of ['premount', 'mount', 'umount', 'postumount']) {
      rmSync(join(priv, 'scripts', a), { force: true });
      rmSync(join(confDir, `vps.${a}`), { force: true });
    }
    if (await mounted()) await c.ok('node-a', 'vzctl', ['--skipowner', '--skiplock', 'umount', '101']);
    rmSync(log, { force: true });
  });

  it("given the node's and the CT's scripts, when the CT is mounted and unmounted, then each runs in libvzctl's order", async () => {
    for (const a of ['premount', 'mount', 'umount', 'postumount']) {
      script(join(priv, 'scripts', a));
      script(join(confDir, `vps.${a}`));
    }

    assert.equal((await vzctl('mount', '101')).code, 0);
    assert.ok(await mounted());
    assert.equal((await vzctl('umount', '101')).code, 0);

    const conf = join(confDir, '101.conf');
    assert.deepEqual(logged(), [
      `${confDir}/vps.premount 101 ${conf}`,
      `${priv}/scripts/premount 101 ${conf}`,
      `${confDir}/vps.mount 101 ${conf}`,
      `${priv}/scripts/mount 101 ${conf}`,
      `${priv}/scripts/umount 101 ${conf}`,
      `${confDir}/vps.umount 101 ${conf}`,
      `${priv}/scripts/postumount 101 ${conf}`,
      `${confDir}/vps.postumount 101 ${conf}`,
    ]);
  });

  it('given a mount script that fails, when the CT is started, then vzctl exits 79 naming it and leaves it unmounted', async () => {
    script(join(priv, 'scripts', 'mount'), 1);

    const r = await vzctl('start', '101');

    assert.equal(r.code, 79, r.stderr);
    assert.match(r.stderr, new RegExp(`Error on executing the mount script ${priv}/scripts/mount`));
    assert.equal(await mounted(), false);
    assert.match((await vzctl('status', '101')).stdout, /down/);
  });

  it('given a premount script that says skip (39), when the CT is mounted, then its disks are not, and the mount scripts still run', async () => {
    script(join(priv, 'scripts', 'premount'), 39);
    script(join(priv, 'scripts', 'mount'));

    const r = await vzctl('mount', '101');

    assert.equal(r.code, 0, r.stderr);
    assert.equal(await mounted(), false);
    assert.deepEqual(
      logged().map((l) => l.split(' ')[0]),
      [`${priv}/scripts/premount`, `${priv}/scripts/mount`],
    );
  });

  it('given a mounted CT, when it is started, then it is unmounted and mounted again, scripts and all', async () => {
    assert.equal((await vzctl('mount', '101')).code, 0);
    for (const a of ['premount', 'mount', 'umount', 'postumount']) script(join(priv, 'scripts', a));

    const r = await vzctl('start', '101');
    const order = logged().map((l) => l.split(' ')[0]!.slice(`${priv}/scripts/`.length));
    await c.ok('node-a', 'vzctl', ['--skipowner', '--skiplock', 'stop', '101']);

    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(order, ['umount', 'postumount', 'premount', 'mount']);
  });

  it('given a umount script that fails or says skip, when the CT is unmounted, then vzctl fails and the CT stays mounted; an unregister says it is mounted', async () => {
    assert.equal((await vzctl('mount', '101')).code, 0);
    script(join(priv, 'scripts', 'umount'), 1);
    const failed = await vzctl('umount', '101');
    const unregister = await c.run('node-a', 'vzctl', ['--skipowner', 'unregister', '101']);
    script(join(priv, 'scripts', 'umount'), 39);
    const skipped = await vzctl('umount', '101');

    assert.equal(failed.code, 79, failed.stderr);
    assert.match(failed.stderr, new RegExp(`Error on executing the mount script ${priv}/scripts/umount`));
    assert.equal(unregister.code, 41, unregister.stderr);
    assert.match(unregister.stderr, /Container is mounted, Unmount Container before proceeding\./);
    assert.equal(skipped.code, 39, skipped.stderr);
    assert.ok(await mounted());
  });

  it("given a script that prints, when it runs, then its output is on vzctl's stderr, not on its stdout", async () => {
    writeFileSync(join(priv, 'scripts', 'mount'), '#!/bin/sh\necho from the mount script\n', { mode: 0o755 });

    const r = await vzctl('mount', '101');

    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /from the mount script/);
    assert.doesNotMatch(r.stdout, /from the mount script/);
  });
});
