import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createEmulatedCluster, type EmulatedCluster } from '@haul/test';
import { contractLine, hostContract, type ContractEntry } from '../src/adapters/host-contract.ts';
import type { RunResult } from '../src/adapters/exec.ts';
import { createTools, parsePloopList } from '../src/adapters/tools.ts';
import { holdScript } from '../src/held-dumps.ts';
import {
  bindMountMaps,
  blockDevNumber,
  cgroupMountMaps,
  cgroupPropsFile,
  vzCgroupPropsConf,
  secondaryDisks,
  vzCgroupRoots,
  vzControllers,
  vzFreeze,
  vzPostDumpFiles,
  vzSideFiles,
  writeVzSideFiles,
  type VzDump,
} from '../src/adapters/vz-checkpoint.ts';
import { readCtVars } from '../src/adapters/vz-config.ts';
import { descriptorLockArgv } from '../src/adapters/descriptor-lock.ts';
import { ctLockFile, releaseCtLock, takeCtLock } from '../src/ct-lock.ts';
import { planPass, trackHelper } from '../../image-streamer/src/disk-pass.ts';

const docPath = join(import.meta.dirname, '..', '..', '..', 'docs', 'host-contract.md');
const lines = hostContract.map(contractLine);

/** The builders of tools.ts the next function calls: every one must be, so a new builder needs its contract entry. */
const calledBuilders = new Set<string>();

/** Every argv tools.ts can build, with placeholders put back where the values were. */
async function builtArgvs(): Promise<string[]> {
  const seen: string[] = [];
  const ok: RunResult = { exitCode: 0, stdout: '', stderr: '' };
  const t = new Proxy(
    createTools((tool, args) => {
      seen.push([tool, ...args].join(' '));
      return Promise.resolve(ok);
    }),
    {
      get(target, key, receiver) {
        if (typeof key === 'string') calledBuilders.add(key);
        return Reflect.get(target, key, receiver) as unknown;
      },
    },
  );
  await t.vzctlStatus('<ctid>');
  await t.vzctlStart('<ctid>');
  await t.vzctlStop('<ctid>');
  await t.vzctlStopFast('<ctid>');
  await t.vzctlUmount('<ctid>');
  await t.vzctlRestore('<ctid>', '<dir>');
  await t.criuVersion();
  await t.criuMemTrack();
  const freeze = { freezeCgroup: '<freezer-cgroup>', controllers: vzControllers };
  await t.criuPreDump(4242, '<dir>', '<workdir>', undefined, freeze);
  await t.criuPreDump(4242, '<dir>', '<workdir>', '<prev>', freeze);
  const vz: VzDump = {
    ...freeze,
    root: '<root>',
    extMountMaps: ['<mount>:<key>'],
    externals: ['dev[<major>/<minor>]:<uuid>'],
    cgroupRoots: vzCgroupRoots('<ctid>'),
  };
  for (const prev of ['<prev>', undefined])
    for (const props of [{ cgroupPropsFile: '<props-file>' }, {}])
      seen.push(
        ['criu', ...t.criuDumpArgs(4242, '<dir>', '<workdir>', prev, '<script>', { ...vz, ...props })].join(
          ' ',
        ),
      );
  await t.vzctlCreateDevmap('<ctid>');
  await t.cgexecCatAll(
    '<ctid>',
    vzSideFiles.flatMap((f) => (f.at === 'post-dump' ? [f.veProc] : [])),
  );
  await t.ploopDevice('<dd.xml>');
  await t.ploopList();
  await t.ploopSnapshot('<dd.xml>', '<guid>', true);
  await t.ploopSnapshot('<dd.xml>', '<guid>', false);
  await t.ploopSnapshotDelete('<dd.xml>', '<guid>');
  await t.vzctlRegister('<private>', '<ctid>');
  await t.vzctlUnregister('<ctid>');
  await t.shamanAdd('<ctid>', '<prio>', '<private>');
  await t.vcmmdctlUnregister('<ctid>');
  seen.push(['flock', ...descriptorLockArgv('<dd.xml>.lck', '<holder>')].join(' '));
  seen.push('haul-hold-frozen');
  seen.push('haul-hold-ct-lock <lockfile> <migration>');
  seen.push(...(await trackArgvs()));
  return seen.map((l) => l.replaceAll('4242', '<pid>'));
}

/**
 * Every argv the image streamer's live disk copy runs (disk-pass.ts planPass: the first pass, a later one and its
 * acknowledgement, the final one), recorded by a stand-in helper first on PATH.
 */
async function trackArgvs(): Promise<string[]> {
  const dir = mkdtempSync(join(tmpdir(), 'haul-contract-'));
  const log = join(dir, 'argv');
  // The disk folder: the helper names its delta, which a later pass finds in it.
  const src = join(dir, 'src');
  mkdirSync(src);
  writeFileSync(join(src, 'root.hds'), '');
  writeFileSync(
    join(dir, trackHelper),
    `#!/bin/sh\necho "$*" >> '${log}'\necho '{"file":"${src}/root.hds","started":true,"extents":[]}'\n`,
    { mode: 0o755 },
  );
  const path = process.env['PATH'];
  process.env['PATH'] = `${dir}:${path ?? ''}`;
  try {
    const a = { toNode: 'node-b', sourceDir: src, targetDir: '/dst', priority: 'iteration' as const };
    await planPass({ ...a, pass: { index: 0, final: false } });
    for (const final of [false, true]) {
      const plan = await planPass({ ...a, pass: { index: 1, final } });
      assert.equal(plan.kind, 'update');
      if (plan.kind === 'update') await plan.done();
    }
    const ran = readFileSync(log, 'utf8').trim().split('\n');
    return [...new Set(ran)].map(
      (l) => `${trackHelper} ${l.replaceAll(`${src}/DiskDescriptor.xml`, '<dd.xml>')}`,
    );
  } finally {
    process.env['PATH'] = path;
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('the host contract', () => {
  it('lists exactly the argv tools.ts builds', async () => {
    assert.deepEqual([...(await builtArgvs())].sort(), [...lines].sort());
  });

  it('builds the argv of every builder in tools.ts (a new one fails here until it is in the contract)', async () => {
    await builtArgvs();
    const builders = Object.keys(createTools(() => Promise.reject(new Error('not run'))));
    assert.deepEqual([...calledBuilders].sort(), builders.sort());
  });

  it('docs/host-contract.md lists exactly the contract', () => {
    const doc = readFileSync(docPath, 'utf8');
    const block = /```argv\n([\s\S]*?)```/.exec(doc)?.[1];
    assert.ok(block, 'docs/host-contract.md has an ```argv block');
    assert.deepEqual(block.trim().split('\n'), lines);
  });
});

const G1 = '{11111111-2222-4333-8444-555555555555}';
const G2 = '{22222222-2222-4333-8444-555555555555}';

describe('every argv of the contract runs on the strict emulators', () => {
  let c: EmulatedCluster;
  let dd: string;
  let holdDir: string;
  const ran = new Set<string>();
  const pid = () =>
    readFileSync(join(c.nodeRoot('node-a'), 'var', 'run', 've', '101.init.pid'), 'utf8').trim();
  const img = (n: number) => {
    const d = join(c.dir, 'img', String(n));
    mkdirSync(d, { recursive: true });
    return d;
  };

  /** Run the contract's argv for `line` with these values; it must end with a code haul takes as success. */
  function argvOf(line: string, values: Record<string, string | string[]>) {
    const e: ContractEntry | undefined = hostContract.find((x) => contractLine(x) === line);
    assert.ok(e, `not in the contract: ${line}`);
    // A word with a list value is a repeated option: `--opt <word>` becomes `--opt v1 --opt v2 …`.
    const argv: string[] = [];
    for (const w of e.argv) {
      const v = values[w];
      if (Array.isArray(v)) {
        const opt = argv.pop()!;
        for (const x of v) argv.push(opt, x);
      } else argv.push(w.replace(/<[a-z.-]+>/g, (k) => (values[k] as string | undefined) ?? k));
    }
    for (const w of argv) assert.ok(!/<[a-z.-]+>/.test(w), `no value for ${w} in ${line}`);
    return { e, argv };
  }

  /** The final dump without one of VZ's pieces fails as criu (or VZ's tools) would, and leaves the CT running. */
  async function refusedWithout(
    line: string,
    values: Record<string, string | string[]>,
    drop: (a: string[]) => string[],
    why: RegExp,
  ) {
    const { argv } = argvOf(line, values);
    const r = await c.run('node-a', 'criu', drop(argv), { HAUL_HOLD_DIR: holdDir });
    assert.equal(r.code, 1, `criu ${drop(argv).join(' ')} should fail: ${r.stdout}`);
    // criu says why in its -o log, in the work dir, not on stderr (criu/log.c).
    const log = join(argv[argv.indexOf('-W') + 1]!, argv[argv.indexOf('-o') + 1]!);
    assert.equal(r.stderr, '');
    assert.match(readFileSync(log, 'utf8'), why);
    assert.match(await c.ok('node-a', 'vzctl', ['status', '101']), / running$/m);
  }
  /** argv without every `opt value` pair whose value passes `which`. */
  const without =
    (opt: string, which: (v: string) => boolean = () => true) =>
    (a: string[]) =>
      a.filter((w, i) => !((w === opt && which(a[i + 1]!)) || (a[i - 1] === opt && which(w))));

  async function run(
    line: string,
    values: Record<string, string | string[]> = {},
  ): Promise<Awaited<ReturnType<EmulatedCluster['run']>>> {
    const { e, argv } = argvOf(line, values);
    const r = await c.run('node-a', e.tool, argv, { HAUL_HOLD_DIR: holdDir });
    assert.ok(
      r.code === 0 || e.okCodes.includes(r.code),
      `${e.tool} ${argv.join(' ')} exited ${r.code}: ${r.stderr}`,
    );
    ran.add(line);
    return r;
  }
  const find = (prefix: string, has: string[] = [], hasNot: string[] = []) =>
    lines.find(
      (l) => l.startsWith(prefix) && has.every((h) => l.includes(h)) && hasNot.every((h) => !l.includes(h)),
    )!;

  before(async () => {
    c = createEmulatedCluster();
    await c.addNode('node-a');
    const dir = join(c.shared, 'ct101-data');
    dd = join(dir, 'DiskDescriptor.xml');
    await c.ok('node-a', 'haul-emu', ['create-ct', '--ctid', '101', '--shared-disk', dir]);
    // haul-hold-frozen answers post-dump from its decision file: "commit" lets criu finish the dump.
    holdDir = join(c.dir, 'hold');
    mkdirSync(holdDir);
    writeFileSync(join(holdDir, 'decision'), 'commit\n');
  });
  after(() => c?.destroy());

  /** The VZ pieces of a dump of CT 101 on node-a, found the way dumps.ts finds them. */
  async function vzValues(): Promise<Record<string, string | string[]>> {
    const host = c.nodeRoot('node-a');
    const etc = join(host, 'etc', 'vz');
    const vars = readCtVars(etc, '101')!;
    const externals: string[] = [];
    for (const d of secondaryDisks(vars)) {
      const info = await run('ploop info -d <dd.xml>', { '<dd.xml>': d.dd });
      const part = /^partition:\s*(\S+)/m.exec(info.stdout)![1]!;
      const { major, minor } = blockDevNumber(host, part);
      externals.push(`dev[${major}/${minor}]:${d.uuid}`);
    }
    assert.equal(externals.length, 1, 'the shared disk is a secondary disk of the CT');
    return {
      '<freezer-cgroup>': vzFreeze(host, etc, '101').freezeCgroup,
      '<props-file>': cgroupPropsFile(host) ?? '(none)',
      '<root>': vars['VE_ROOT']!,
      '<mount>:<key>': [...cgroupMountMaps(host), ...bindMountMaps(vars)],
      'dev[<major>/<minor>]:<uuid>': externals,
    };
  }

  it('runs the CT through every command line haul uses', async () => {
    const ct = { '<ctid>': '101' };
    const work = join(c.dir, 'work');
    mkdirSync(work);
    const host = c.nodeRoot('node-a');
    const freeze = () => ({
      '<freezer-cgroup>': vzFreeze(host, join(host, 'etc', 'vz'), '101').freezeCgroup,
    });
    const mem = (n: number) => ({
      '<pid>': pid(),
      '<dir>': img(n),
      '<workdir>': work,
      '<prev>': `../${n - 1}`,
      ...freeze(),
    });
    const script = { '<script>': holdScript };
    /** The final dump as dumps.ts makes it: the devmap, the side files, then criu. */
    const final = async (line: string, n: number) => {
      await run('vzctl --skipowner --skiplock suspend <ctid> --create-devmap', ct);
      writeVzSideFiles(host, '101', img(n));
      // dumps.ts reads them while criu holds the CT at post-dump; here the decision is already "commit", so before.
      // One cat of them all, one line each (this host has fs.fsync-enable: all the contract's files).
      const files = vzPostDumpFiles(host);
      const read = await run(`cgexec -g ve:<ctid> cat ${files.map((f) => f.veProc).join(' ')}`, ct);
      const values = read.stdout.split('\n');
      assert.equal(values.pop(), '');
      assert.equal(values.length, files.length, read.stdout);
      files.forEach((f, i) => writeFileSync(join(img(n), f.image), `${values[i]}\n`));
      await run(line, { ...mem(n), ...script, ...(await vzValues()), ...ct });
    };
    const corePattern = '|/usr/libexec/abrt-hook-ccpp %s %c %p %u %g %t e %P %I %h';
    await run('vzctl status <ctid>', ct);
    await run('vzctl --skipowner --skiplock start <ctid>', ct);
    // A CT whose freezer cgroup is frozen is `paused`, as vzctl's Show prints it (src/vzctl.c 1465–1467).
    await c.ok('node-a', 'haul-emu', ['freeze', '101']);
    assert.match((await run('vzctl status <ctid>', ct)).stdout, /^VEID 101 exist mounted paused$/m);
    await c.ok('node-a', 'haul-emu', ['thaw', '101']);
    assert.match((await run('vzctl status <ctid>', ct)).stdout, /^VEID 101 exist mounted running$/m);
    // The image streamer's write tracker on the running CT's root disk: the passes of a live local-disk copy.
    const root = { '<dd.xml>': join(host, 'vz', 'private', '101', 'root.hdd', 'DiskDescriptor.xml') };
    type Tracked = { file: string; started?: boolean; extents?: [number, number][] };
    const json = async (line: string) => JSON.parse((await run(line, root)).stdout) as Tracked;
    const started = await json('haul-ploop-track start <dd.xml>');
    assert.equal(started.started, true, 'no tracker ran on the disk before');
    const taken = await json('haul-ploop-track take --sync <dd.xml>');
    assert.equal(taken.file, started.file, 'take names the delta start tracks');
    assert.ok(Array.isArray(taken.extents));
    await json('haul-ploop-track ack <dd.xml>');
    await run('criu -V');
    await run('criu check --feature mem_dirty_track');
    await run(find('criu pre-dump', [], ['--prev-images-dir']), mem(1));
    await run(find('criu pre-dump', ['--prev-images-dir']), mem(2));
    const dumpLine = find('criu dump', ['--prev-images-dir', '--cgroup-props-file']);
    const full = { ...mem(3), ...script, ...(await vzValues()), ...ct };
    // Without the devmap (only vzctl suspend --create-devmap makes it) the dump is refused too.
    await refusedWithout(dumpLine, full, (a) => a, /has no \/dev\/\{00000000-0000-4000-8000-000000000000\}/);
    await run('vzctl --skipowner --skiplock suspend <ctid> --create-devmap', ct);
    await refusedWithout(
      dumpLine,
      full,
      without('--freeze-cgroup'),
      /must be frozen through the CT's freezer cgroup/,
    );
    await refusedWithout(dumpLine, full, without('--root'), /--root is missing/);
    // A props file criu cannot open fails the dump (criu/cgroup-props.c cgp_parse_file): passed only when it exists.
    await refusedWithout(
      dumpLine,
      full,
      (a) => a.map((w) => (w === cgroupPropsFile(host) ? `${w}.missing` : w)),
      /Can't open file \S+cgroup-props\.conf\.missing: No such file or directory/,
    );
    await refusedWithout(
      dumpLine,
      full,
      without('--external'),
      /FS mnt \.\/data0 dev 0x[0-9a-f]+ root \/ unsupported/,
    );
    await refusedWithout(
      dumpLine,
      full,
      without('--ext-mount-map', (v) => v.startsWith('/sys/fs/cgroup/memory')),
      /\.\/sys\/fs\/cgroup\/memory doesn't have a proper root mount/,
    );
    // The CT's own core pattern (per VE) goes with the dump and comes back with the restore (vz-rst-action).
    await c.ok('node-a', 'cgexec', ['-g', 've:101', 'sysctl', '-w', `kernel.core_pattern=${corePattern}`]);
    for (const s of ['fs.fsync-enable=0', 'fs.odirect_enable=1', 'kernel.randomize_va_space=0'])
      await c.ok('node-a', 'cgexec', ['-g', 've:101', 'sysctl', '-w', s]);
    // The memory limits vz-cpt-action saves at pre-dump (vz-cpt-action.in 98–103), read from the CT's memory cgroup.
    const memoryFiles = ['memory.limit_in_bytes', 'memory.memsw.limit_in_bytes'];
    const limits = memoryFiles.map((f) =>
      readFileSync(join(host, 'sys', 'fs', 'cgroup', 'memory', 'machine.slice', '101', f), 'utf8'),
    );
    await final(dumpLine, 3);
    assert.deepEqual(
      memoryFiles.map((f) => readFileSync(join(img(3), `vz_${f.replaceAll('.', '_')}.img`), 'utf8')),
      limits,
    );
    ran.add('haul-hold-frozen');
    // vcmmd keeps the CT the emulated vzctl start registered until it is told to forget it (lib/cr_criu.c 254–256);
    // the restore registers it again (lib/env_nsops.c 566–577).
    const vcmmd = async () =>
      (JSON.parse(await c.ok('node-a', 'vcmmdctl', ['list', '-j'])) as { name: string }[]).map((v) => v.name);
    assert.deepEqual(await vcmmd(), ['101']);
    await run('vcmmdctl unregister <ctid>', ct);
    assert.deepEqual(await vcmmd(), []);
    await run('vzctl --skipowner --skiplock restore <ctid> --skip_arpdetect --dumpfile <dir>', {
      ...ct,
      '<dir>': img(3),
    });
    assert.deepEqual(await vcmmd(), ['101']);
    assert.equal(
      await c.ok('node-a', 'cgexec', ['-g', 've:101', 'cat', '/proc/sys/kernel/core_pattern']),
      `${corePattern}\n`,
    );
    const sysctl = (name: string) => c.ok('node-a', 'cgexec', ['-g', 've:101', 'sysctl', '-n', name]);
    assert.deepEqual(
      [
        await sysctl('fs.fsync-enable'),
        await sysctl('fs.odirect_enable'),
        await sysctl('kernel.randomize_va_space'),
      ],
      ['0\n', '1\n', '0\n'],
    );
    await run('vzctl --skipowner --skiplock stop <ctid>', ct);
    await run('vzctl --skipowner --skiplock start <ctid>', ct);
    await final(find('criu dump', ['--cgroup-props-file'], ['--prev-images-dir']), 4);
    await run('vzctl --skipowner --skiplock start <ctid>', ct);
    // A host without libvzctl's cgroup-props.conf: the dumps without the option, which vzctl restore takes too.
    const props = join(host, vzCgroupPropsConf);
    const propsText = readFileSync(props);
    rmSync(props);
    await final(find('criu dump', [], ['--prev-images-dir', '--cgroup-props-file']), 5);
    await run('vzctl --skipowner --skiplock restore <ctid> --skip_arpdetect --dumpfile <dir>', {
      ...ct,
      '<dir>': img(5),
    });
    await final(find('criu dump', ['--prev-images-dir'], ['--cgroup-props-file']), 6);
    writeFileSync(props, propsText);
    await run('vzctl --skipowner --skiplock start <ctid>', ct);
    // The CT's disks are attached until its unmount: ploop list names the shared disk's base, then nothing.
    const bases = async () => parsePloopList((await run('ploop list')).stdout).map((d) => dirname(d.base));
    assert.ok((await bases()).includes(dirname(dd)), 'the shared disk is listed while mounted');
    await run('vzctl --skipowner --skiplock stop <ctid> --fast', ct);
    await run('vzctl --skipowner --skiplock umount <ctid>', ct);
    assert.deepEqual(await bases(), []);
    await run('ploop snapshot -u <guid> -o <dd.xml>', { '<guid>': G1, '<dd.xml>': dd });
    await run('ploop snapshot -u <guid> <dd.xml>', { '<guid>': G2, '<dd.xml>': dd });
    await run('ploop snapshot-delete -u <guid> <dd.xml>', { '<guid>': G2, '<dd.xml>': dd });
    await run('flock --exclusive --timeout 60 <dd.xml>.lck sh -c <holder>', {
      '<dd.xml>': dd,
      '<holder>': 'echo locked',
    });
    // The migration's CT lock: a plain vzctl is refused while the holder has it, as the real one would be.
    const lock = ctLockFile(join(c.nodeRoot('node-a'), 'vz', 'lock'), '101');
    assert.deepEqual(await takeCtLock(lock, 'm-contract'), { held: true });
    const refused = await c.run('node-a', 'vzctl', ['start', '101']);
    assert.equal(refused.code, 9, refused.stderr);
    assert.match(
      refused.stderr,
      /Locked info: pid=\d+ cmdline=sh \S*haul-hold-ct-lock[^\n]*\nCannot lock the Container/,
    );
    releaseCtLock(lock, 'm-contract');
    ran.add('haul-hold-ct-lock <lockfile> <migration>');
    const priv = { '<private>': join(c.nodeRoot('node-a'), 'vz', 'private', '101'), ...ct };
    await run('shaman -i add ct-<ctid> --prio <prio> --path <private> --force', {
      ...priv,
      '<prio>': '0',
    });
    await run('vzctl --ignore-ha-cluster register <private> <ctid> --force', priv);
    await run('vzctl --skipowner --ignore-ha-cluster unregister <ctid>', ct);
    assert.deepEqual([...ran].sort(), [...lines].sort());
  });
});

describe('each strict emulator refuses what its real tool refuses', () => {
  let c: EmulatedCluster;
  before(async () => {
    c = createEmulatedCluster();
    await c.addNode('node-a');
  });
  after(() => c?.destroy());

  const refusals: { tool: string; argv: string[]; code: number; stderr: RegExp; stdout?: RegExp }[] = [
    // ploop: glibc's message and the command's usage on stderr, SYSEXIT_PARAM (38) — tools/ploop.c
    // A -u that is no GUID, empty included, as getopt reads it (tools/common.c parse_uuid).
    ...(['snapshot', 'snapshot-delete', 'snapshot-merge', 'snapshot-switch', 'mount'] as const).map(
      (sub) => ({
        tool: 'ploop',
        argv: [sub, '-u', '', 'a.xml'],
        code: 38,
        stderr: /^Incorrect uuid specified: $/m,
      }),
    ),
    {
      tool: 'ploop',
      argv: ['mount', '-u', 'nope', 'a.xml'],
      code: 38,
      stderr: /Incorrect uuid specified: nope/,
    },
    { tool: 'ploop', argv: ['info', '-d', 'a.xml', 'b.xml'], code: 38, stderr: /Usage: ploop info/ },
    {
      tool: 'ploop',
      argv: ['snapshot-merge', 'a.xml', 'b.xml'],
      code: 38,
      stderr: /Usage: ploop snapshot-merge/,
    },
    {
      tool: 'ploop',
      argv: ['snapshot', '-x', 'a.xml'],
      code: 38,
      stderr: /invalid option -- 'x'\nUsage: ploop snapshot/,
    },
    {
      tool: 'ploop',
      argv: ['snapshot', '--offline', 'a.xml'],
      code: 38,
      stderr: /unrecognized option '--offline'/,
    },
    {
      tool: 'ploop',
      argv: ['snapshot', 'a.xml', '-u'],
      code: 38,
      stderr: /option requires an argument -- 'u'\nUsage: ploop snapshot/,
    },
    {
      tool: 'ploop',
      argv: ['snapshot-delete', 'a.xml'],
      code: 38,
      stderr: /^Usage: ploop snapshot-delete -u UUID/m,
    },
    {
      tool: 'ploop',
      argv: ['snapshot-delete', '-o', '-u', G1, 'a.xml'],
      code: 38,
      stderr: /invalid option -- 'o'/,
    },
    {
      tool: 'ploop',
      argv: ['snapshot', '-u', G1, 'a.xml', 'b.xml'],
      code: 38,
      stderr: /Usage: ploop snapshot/,
    },
    { tool: 'ploop', argv: ['snapshot-list', '-x', 'a.xml'], code: 1, stderr: /Usage: ploop snapshot-list/ },
    { tool: 'ploop', argv: ['--bogus', 'snapshot'], code: 38, stderr: /Bad option --bogus/ },
    { tool: 'ploop', argv: ['list', 'a.xml'], code: 38, stderr: /Usage: ploop list \[-a\]/ },
    { tool: 'ploop', argv: ['list', '-d'], code: 38, stderr: /invalid option -- 'd'/ },
    // vzctl: glibc's message named after the ctid (vzctl shifts argv), VZ_INVALID_PARAMETER_* — src/vzctl.c
    {
      tool: 'vzctl',
      argv: ['stop', '101', '--bogus'],
      code: 20,
      stderr: /101: unrecognized option '--bogus'/,
    },
    {
      tool: 'vzctl',
      argv: ['start', '101', '--skip_arpdetect'],
      code: 21,
      stderr: /unrecognized option '--skip_arpdetect'/,
    },
    {
      tool: 'vzctl',
      argv: ['restore', '101', '--dumpfile'],
      code: 21,
      stderr: /option '--dumpfile' requires an argument/,
    },
    {
      tool: 'vzctl',
      argv: ['restore', '101', '--skip-umount'],
      code: 21,
      stderr: /unrecognized option '--skip-umount'/,
    },
    { tool: 'vzctl', argv: ['umount', '101', '--fast'], code: 20, stderr: /Invalid options: --fast/ },
    {
      tool: 'vzctl',
      argv: ['--skiplock', '--bogus', 'start', '101'],
      code: 20,
      stderr: /Bad command: --bogus/,
    },
    { tool: 'vzctl', argv: ['start'], code: 21, stderr: /ctid is not given/ },
    { tool: 'vzctl', argv: ['unregister', '101', '--force'], code: 20, stderr: /Invalid options: --force/ },
    {
      tool: 'vzctl',
      argv: ['register', '/x', '101', '--bogus'],
      code: 21,
      stderr: /101: unrecognized option '--bogus'/,
    },
    { tool: 'vzctl', argv: ['register'], code: 20, stderr: /Usage: vzctl register <path>/ },
    // shaman: its callers' argv only (its parser was not read); add of an existing resource is 2 (lib/ha.c)
    {
      tool: 'shaman',
      argv: ['-i', 'add', 'ct-101', '--bogus'],
      code: 1,
      stderr: /unrecognized option '--bogus'/,
    },
    { tool: 'shaman', argv: ['-i', 'frobnicate', 'ct-101'], code: 1, stderr: /unknown command frobnicate/ },
    // flock(1): EX_USAGE (64) — sys-utils/flock.c
    { tool: 'flock', argv: ['--bogus', 'f', 'true'], code: 64, stderr: /unrecognized option '--bogus'/ },
    { tool: 'flock', argv: ['-x', 'f'], code: 64, stderr: /missing command/ },
    // criu: glibc's message on stderr, the usage on stdout (pr_msg), exit 1 — criu/config.c, criu/crtools.c
    { tool: 'criu', argv: ['check', '--feature', 'bogus'], code: 1, stderr: /Unknown feature bogus/ },
    {
      tool: 'criu',
      argv: ['dump', '-t', '1', '--bogus'],
      code: 1,
      stderr: /unrecognized option '--bogus'/,
      stdout: /Usage:\n {2}criu dump\|pre-dump -t PID/,
    },
    {
      tool: 'criu',
      argv: ['pre-dump', '-t', '1', '-D'],
      code: 1,
      stderr: /option requires an argument -- 'D'/,
      stdout: /Usage:/,
    },
    {
      tool: 'criu',
      argv: ['dump', '-t', '1', '--action-script'],
      code: 1,
      stderr: /option '--action-script' requires an argument/,
    },
    { tool: 'criu', argv: ['dump', '-t', 'x'], code: 1, stderr: /invalid argument for -t: x/ },
    {
      tool: 'criu',
      argv: ['dump', 'extra', '-t', '1'],
      code: 1,
      stderr: /excessive parameter for command dump/,
    },
    { tool: 'criu', argv: ['dmup', '-t', '1'], code: 1, stderr: /unknown command: dmup/ },
  ];
  for (const r of refusals) {
    it(`${r.tool} ${r.argv.join(' ')} → ${r.code}`, async () => {
      const got = await c.run('node-a', r.tool, r.argv);
      assert.equal(got.code, r.code, got.stderr);
      assert.match(got.stderr, r.stderr);
      if (r.stdout) assert.match(got.stdout, r.stdout);
    });
  }
});
