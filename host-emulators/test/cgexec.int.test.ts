import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createEmulatedCluster, emulatorBin, type EmulatedCluster } from '@haul/test';

/*
 * bin/cgexec answers the calls VZ's action scripts and the agent make in sh, and hands every other call to the Node
 * emulator (src/cgexec/cli.ts), which is the whole definition. A call the sh answers runs both ways on the same VE,
 * and both must print, exit with and leave behind the same. A `node` first on PATH that only says it was started
 * tells which calls the sh answers alone: those must not start Node; the others must, before printing or changing
 * anything (what they answer is then the Node emulator's own).
 */
const ctid = '300';
const ve = (c: EmulatedCluster) => join(c.nodeRoot('node-a'), 'var', 'lib', 'haul-emu', 've', ctid);
const haulEmu = join(emulatorBin, '..', 'dist', 'haul-emu.cjs');
const g = ['-g', `ve:${ctid}`];
const core = '/proc/sys/kernel/core_pattern';
const all = [
  core,
  '/proc/sys/fs/fsync-enable',
  '/proc/sys/fs/odirect_enable',
  '/proc/sys/kernel/randomize_va_space',
];

/** Answered by the sh alone. */
const inSh: string[][] = [
  [...g, 'cat', core],
  [...g, 'cat', ...all],
  [...g, 'cat', core, core],
  [...g, 'sysctl', '-n', 'fs.odirect_enable'],
  [...g, 'sysctl', '-w', 'kernel.core_pattern=|/usr/libexec/x %p a=b'],
  [...g, 'sysctl', '-w', 'fs.odirect_enable='],
];
/** Handed to the Node emulator. */
const inNode: string[][] = [
  [],
  ['-h'],
  ['-x', 'cat', core],
  ['-g'],
  [...g],
  ['cat', core],
  ['-g', 'memory:300', 'cat', core],
  ['-g', 've', 'cat', core],
  [`-gve:${ctid}`, 'cat', core],
  ['-g', `ve:/${ctid}`, 'cat', core],
  ['-g', `ve,memory:${ctid}`, '--sticky', 'cat', core],
  ['-g', 've:301', 'cat', core],
  ['-g', 've:', 'cat', core],
  ['-g', 've:..', 'cat', core],
  [...g, 'cat'],
  [...g, 'cat', core, '/etc/passwd'],
  [...g, 'cat', 'constructor'],
  [...g, 'sysctl', '-n', 'kernel.shmmax'],
  [...g, 'sysctl', '-n', 'fs.odirect_enable', 'x'],
  [...g, 'sysctl', '-w', 'kernel.core_pattern'],
  [...g, 'sysctl', '-w', '=1'],
  [...g, 'sysctl', '-q', 'kernel.core_pattern'],
  [...g, 'echo', '1'],
];
/** Answered by Node because the VE lacks the file (a host without fs.fsync-enable): cat's and sysctl's errors. */
const lacking: string[][] = [
  [...g, 'cat', core, '/proc/sys/fs/fsync-enable', '/proc/sys/fs/odirect_enable'],
  [...g, 'sysctl', '-n', 'fs.fsync-enable'],
  [...g, 'sysctl', '-w', 'fs.fsync-enable=0'],
];

describe('cgexec: the sh answers as the Node emulator does', () => {
  let c: EmulatedCluster;
  let fakeNode: string;
  before(async () => {
    c = createEmulatedCluster();
    await c.addNode('node-a', { plainCriu: true });
    await c.ok('node-a', 'haul-emu', ['create-ct', '--ctid', ctid, '--memory-mb', '4', '--disk-writes', '0']);
    await c.ok('node-a', 'vzctl', ['start', ctid]);
    fakeNode = join(c.dir, 'fake-node');
    mkdirSync(fakeNode);
    writeFileSync(join(fakeNode, 'node'), '#!/bin/sh\necho "node started" >&2\nexit 99\n');
    chmodSync(join(fakeNode, 'node'), 0o755);
  });
  after(async () => {
    await c.run('node-a', 'vzctl', ['stop', ctid]);
    c.destroy();
  });

  /** The VE's files, to compare and to put back after a call that writes one. */
  const files = (): Record<string, string> =>
    Object.fromEntries(readdirSync(ve(c)).map((f) => [f, readFileSync(join(ve(c), f), 'utf8')]));
  const putBack = (saved: Record<string, string>): void => {
    for (const f of readdirSync(ve(c))) if (!(f in saved)) rmSync(join(ve(c), f));
    for (const [f, v] of Object.entries(saved)) writeFileSync(join(ve(c), f), v);
  };

  /** What a call prints, exits with and leaves in the VE: through bin/cgexec, or through the Node emulator. */
  async function outcome(args: string[], how: 'sh' | 'node', extra: Record<string, string> = {}) {
    const saved = files();
    const r =
      how === 'sh'
        ? await c.run('node-a', 'cgexec', args, extra)
        : await c.run('node-a', process.execPath, [haulEmu, ...args], { HAUL_EMU_AS: 'cgexec', ...extra });
    const left = files();
    putBack(saved);
    return { ...r, files: left };
  }

  /** A PATH whose `node` only says it was started. */
  const withoutNode = () => ({ PATH: `${fakeNode}:${emulatorBin}:${process.env['PATH'] ?? ''}` });

  /** The sh answers alone (Node never starts) and as the Node emulator does. */
  async function answeredInSh(args: string[]): Promise<void> {
    const sh = await outcome(args, 'sh');
    assert.deepEqual(sh, await outcome(args, 'node'), `cgexec ${args.join(' ')}`);
    assert.deepEqual(await outcome(args, 'sh', withoutNode()), sh, `cgexec ${args.join(' ')} started Node`);
  }

  /** The sh hands the call to Node, having printed and changed nothing: what it answers is Node's by construction. */
  async function handedToNode(args: string[]): Promise<void> {
    const before = files();
    assert.deepEqual(
      await outcome(args, 'sh', withoutNode()),
      { code: 99, stdout: '', stderr: 'node started\n', files: before },
      `cgexec ${args.join(' ')}`,
    );
  }

  it('given the calls VZ and the agent make, then the sh answers them without starting Node, as Node would', async () => {
    for (const args of inSh) await answeredInSh(args);
  });

  it('given any other call, then the Node emulator answers it', async () => {
    for (const args of inNode) await handedToNode(args);
  });

  it('given a VE without one of the files, then the Node emulator answers with the error of cat or sysctl', async () => {
    const lost = join(ve(c), 'fs.fsync-enable');
    const value = readFileSync(lost, 'utf8');
    rmSync(lost);
    try {
      for (const args of lacking) await handedToNode(args);
    } finally {
      writeFileSync(lost, value);
    }
  });

  it('given a group without its colon, or a file name that is no sysctl, then the Node emulator refuses it', async () => {
    const noColon = await outcome(['-g', 'vex', 'cat', core], 'node');
    assert.equal(noColon.code, 1);
    assert.match(noColon.stderr, /only commands in a CT's ve cgroup \(-g ve:<ctid>\) are emulated/);
    const noSysctl = await outcome([...g, 'cat', 'constructor'], 'node');
    assert.equal(noSysctl.code, 1);
    assert.match(noSysctl.stderr, /only `cat \/proc\/sys\/<…> …` and `sysctl -n\|-w/);
  });

  it('given a fault plan that names cgexec, then the Node emulator answers, which reads the plan', async () => {
    const plan = join(c.dir, 'faults.json');
    writeFileSync(
      plan,
      JSON.stringify([{ tool: 'cgexec', action: 'fail', exitCode: 7, stderr: 'injected' }]),
    );
    const r = await c.run('node-a', 'cgexec', [...g, 'cat', core], { HAUL_EMU_FAULTS: plan });
    assert.deepEqual(r, { code: 7, stdout: '', stderr: 'injected\n' });
    // And a plan that names other tools only leaves the sh to answer
    writeFileSync(plan, JSON.stringify([{ tool: 'criu', action: 'fail', exitCode: 7 }]));
    const other = await c.run('node-a', 'cgexec', [...g, 'cat', core], {
      HAUL_EMU_FAULTS: plan,
      ...withoutNode(),
    });
    assert.deepEqual(other, { code: 0, stdout: 'core\n', stderr: '' });
  });
});
