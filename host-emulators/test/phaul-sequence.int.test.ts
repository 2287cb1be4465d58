import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
  chmodSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { createEmulatedCluster, type EmulatedCluster } from '@haul/test';
import { layoutCopied } from './ve-dump.ts';

const G1 = '{11111111-2222-4333-8444-555555555555}';
const G2 = '{22222222-2222-4333-8444-555555555555}';
const TOP = '{5fbaabe3-6958-40ff-92a7-860e329aab41}';

type Sum = { sha256: string; blocks: number };

/**
 * P.Haul's shared-ploop dance (host-tools.md §5.3–5.4) done by hand on the emulators, with a running, dirtying CT
 * that is frozen by a real (emulated) criu dump held open by its action script.
 */
describe("P.Haul's shared-ploop sequence on the emulators", () => {
  let c: EmulatedCluster;
  let dd: string;
  let dir: string;
  let copyXml: string;
  let frozenSum: Sum;
  let dump: Promise<number>;
  const decision = () => join(c.dir, 'decision');

  beforeEach(async () => {
    c = createEmulatedCluster();
    await c.addNode('node-a', { plainCriu: true });
    await c.addNode('node-b', { plainCriu: true });
    dir = join(c.shared, 'ct101-data');
    dd = join(dir, 'DiskDescriptor.xml');
    copyXml = join(dir, 'DiskDescriptor.copy.xml');
    await c.ok('node-a', 'haul-emu', [
      'create-ct',
      '--ctid',
      '101',
      '--shared-disk',
      dir,
      '--disk-writes',
      '200',
      '--dirty-rate',
      '2000',
    ]);
    await c.ok('node-b', 'haul-emu', ['create-ct', '--ctid', '101', '--shared-disk', dir, '--config-only']);
    layoutCopied(c, '101');
    await c.ok('node-a', 'vzctl', ['--skipowner', '--skiplock', 'start', '101']);
    // Freeze it with a final dump whose action script waits for our decision.
    const hold = join(c.dir, 'hold.sh');
    writeFileSync(
      hold,
      `#!/bin/sh\n[ "$CRTOOLS_SCRIPT_ACTION" = post-dump ] || exit 0\necho frozen\nwhile [ ! -f ${decision()} ]; do sleep 0.02; done\nexit $(cat ${decision()})\n`,
    );
    chmodSync(hold, 0o755);
    const img = join(c.dir, 'img', '1');
    mkdirSync(img, { recursive: true });
    const pid = readFileSync(join(c.nodeRoot('node-a'), 'var', 'run', 've', '101.init.pid'), 'utf8').trim();
    // The action script says "frozen" on criu's stdout once post-dump is reached: that is the event we await.
    let frozen!: () => void;
    const isFrozen = new Promise<void>((r) => (frozen = r));
    dump = new Promise((resolve) => {
      const p = spawn('criu', ['dump', '-t', pid, '-D', img, '--action-script', hold], {
        env: c.envFor('node-a'),
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      p.stdout.on('data', (d: Buffer) => d.toString().includes('frozen') && frozen());
      p.once('exit', (code) => resolve(code ?? -1));
    });
    await isFrozen;
    frozenSum = JSON.parse(await c.ok('node-a', 'haul-emu', ['checksum-disk', dd])) as Sum;
  });
  afterEach(() => c.destroy());

  const sum = async (node: string, path: string) =>
    JSON.parse(await c.ok(node, 'haul-emu', ['checksum-disk', path])) as Sum;
  const deltas = () =>
    readdirSync(dir)
      .filter((f) => /^root\.hds\.\{/.test(f))
      .sort();

  async function prepare(): Promise<{ f1: string; f2: string }> {
    // 1. byte copy of the descriptor
    writeFileSync(`${dd}.copy`, readFileSync(dd));
    // 2. offline snapshot G1 on the origin: base relabelled G1, new empty top f1, the device is not switched
    await c.ok('node-a', 'ploop', ['snapshot', '-o', '-u', G1, dd]);
    const [f1] = deltas();
    assert.equal(deltas().length, 1);
    assert.equal(
      (await sum('node-a', dd)).sha256,
      frozenSum.sha256,
      'origin chain (base + empty f1) shows the frozen content',
    );
    // 3. online snapshot G2 on the copy (through a .xml name): the running device now writes f2
    symlinkSync('DiskDescriptor.xml.copy', copyXml);
    await c.ok('node-a', 'ploop', ['snapshot', '-u', G2, copyXml]);
    const f2 = deltas().find((f) => f !== f1)!;
    assert.ok(existsSync(`${dd}.copy.lck`));
    const devs = JSON.parse(readFileSync(join(c.clusterDir, 'devices.json'), 'utf8')) as {
      devices: { node: string; deltas: string[] }[];
    };
    const shared = devs.devices.find((d) => d.deltas[0] === join(dir, 'root.hds'))!;
    assert.deepEqual(
      shared.deltas,
      [join(dir, 'root.hds'), join(dir, f2)],
      'the source device switched to f2',
    );
    assert.equal((await sum('node-a', copyXml)).sha256, frozenSum.sha256);
    return { f1: f1!, f2 };
  }

  it('success branch: restore on the target from base + f1, release, source umount, merge G1 on the target', async () => {
    const { f1, f2 } = await prepare();
    // The target restores from the image dir (here: the images are on a path both see) on the origin descriptor.
    const img = join(c.dir, 'img', '1');
    await c.ok('node-b', 'mkdir', ['-p', join(c.nodeRoot('node-b'), 'vz', 'private', '101', 'root.hdd')]);
    await c.ok('node-b', 'cp', [
      '-r',
      join(c.nodeRoot('node-a'), 'vz', 'private', '101', 'root.hdd'),
      join(c.nodeRoot('node-b'), 'vz', 'private', '101'),
    ]);
    await c.ok('node-b', 'vzctl', [
      '--skipowner',
      '--skiplock',
      'restore',
      '101',
      '--skip_arpdetect',
      '--dumpfile',
      img,
    ]);
    const mem = JSON.parse(await c.ok('node-b', 'haul-emu', ['checksum-mem', '101'])) as {
      restoredSha256: string;
    };
    const core = JSON.parse(
      readFileSync(
        readdirSync(img)
          .filter((f) => f.startsWith('core-'))
          .map((f) => join(img, f))[0]!,
        'utf8',
      ),
    ) as { memSha256: string };
    assert.equal(mem.restoredSha256, core.memSha256);
    writeFileSync(decision(), '0');
    assert.equal(await dump, 0, 'dump committed: source tasks killed');
    // cleanup as P.Haul, plus the f2 delta it leaks
    unlinkSync(`${dd}.copy`);
    unlinkSync(`${dd}.copy.lck`);
    unlinkSync(copyXml);
    await c.ok('node-a', 'vzctl', ['--skipowner', '--skiplock', 'umount', '101']);
    unlinkSync(join(dir, f2));
    await c.ok('node-b', 'ploop', ['snapshot-delete', '-u', G1, dd]);
    const list = await c.ok('node-b', 'ploop', ['snapshot-list', '-H', '-o', 'uuid,fname', dd]);
    assert.equal(list.trim(), `${TOP} ${join(dir, 'root.hds')}`);
    assert.ok(!existsSync(join(dir, f1)), 'f1 merged and removed');
    assert.deepEqual(readdirSync(dir).sort(), ['DiskDescriptor.xml', 'DiskDescriptor.xml.lck', 'root.hds']);
    assert.equal(readFileSync(join(c.clusterDir, 'corruption.jsonl'), { flag: 'a+' }).length, 0);
    await c.ok('node-b', 'vzctl', ['stop', '101']);
  });

  it('failure branch: rename the copy back, merge G2 online; the disk is unchanged and the CT resumes', async () => {
    const { f1 } = await prepare();
    renameSync(`${dd}.copy`, dd);
    unlinkSync(copyXml);
    await c.ok('node-a', 'ploop', ['snapshot-delete', '-u', G2, dd]);
    // P.Haul leaks f1 and the copy's lock; we do not.
    unlinkSync(join(dir, f1));
    unlinkSync(`${dd}.copy.lck`);
    assert.deepEqual(readdirSync(dir).sort(), ['DiskDescriptor.xml', 'DiskDescriptor.xml.lck', 'root.hds']);
    assert.equal((await sum('node-a', dd)).sha256, frozenSum.sha256, 'disk content as at the freeze');
    assert.equal((await c.ok('node-a', 'ploop', ['snapshot-list', '-H', '-o', 'uuid', dd])).trim(), TOP);
    writeFileSync(decision(), '1');
    assert.equal(await dump, 1, 'dump aborted with the script status');
    const st = JSON.parse(await c.ok('node-a', 'haul-emu', ['checksum-mem', '101'])) as { frozen: boolean };
    assert.equal(st.frozen, false, 'the CT runs again on the source');
    assert.match(await c.ok('node-a', 'vzctl', ['status', '101']), /running/);
  });
});
