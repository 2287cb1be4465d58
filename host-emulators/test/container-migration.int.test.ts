import assert from 'node:assert/strict';
import {
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { spawn } from 'node:child_process';
import { setTimeout as delay } from 'node:timers/promises';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createEmulatedCluster, createToolGate, until, type EmulatedCluster } from '@haul/test';
import { processRunning } from '../src/lib/process.ts';
import { layoutCopied } from './ve-dump.ts';
import { whileLockHeld } from './lock-holder.ts';

/** Decode the varint fields of a stats-dump file (host-tools.md §4.3) — as an independent check of the format. */
function readStats(path: string): Record<number, number> {
  const b = readFileSync(path);
  assert.equal(b.readUInt32LE(0), 0x55105940);
  assert.equal(b.readUInt32LE(4), 0x57093306);
  let i = 12;
  const varint = () => {
    let v = 0;
    let shift = 0;
    for (;;) {
      const x = b[i++]!;
      v += (x & 0x7f) * 2 ** shift;
      shift += 7;
      if (!(x & 0x80)) return v;
    }
  };
  assert.equal(varint(), (1 << 3) | 2, 'stats_entry.dump');
  const end = varint() + i;
  const out: Record<number, number> = {};
  while (i < end) {
    const tag = varint();
    out[tag >> 3] = varint();
  }
  return out;
}

describe('an emulated CT: three pre-dumps, a dump, a restore on another node', () => {
  let c: EmulatedCluster;
  const pages = (64 * 1024 * 1024) / 4096;
  /** Pages the CT dirties per second of its running. */
  const dirtyRate = 3000;
  before(async () => {
    c = createEmulatedCluster();
    await c.addNode('node-a', { plainCriu: true });
    await c.addNode('node-b', { plainCriu: true });
    await c.ok('node-a', 'haul-emu', [
      'create-ct',
      '--ctid',
      '200',
      '--memory-mb',
      '64',
      '--dirty-rate',
      String(dirtyRate),
      '--disk-writes',
      '0',
      '--seed',
      '42',
    ]);
    await c.ok('node-b', 'haul-emu', ['create-ct', '--ctid', '200', '--config-only']);
    layoutCopied(c, '200');
    await c.ok('node-a', 'vzctl', ['start', '200']);
  });
  after(() => c.destroy());

  it('writes all pages first, then only the pages dirtied since, and restores memory equal to the freeze', async () => {
    const pid = readFileSync(join(c.nodeRoot('node-a'), 'var', 'run', 've', '200.init.pid'), 'utf8').trim();
    const img = join(c.dir, 'img');
    const work = join(c.dir, 'work');
    mkdirSync(work, { recursive: true });
    const written: number[] = [];
    /** When each pre-dump's criu was started and when it ended. */
    const spans: { start: number; end: number }[] = [];
    let first: Record<number, number> = {};
    for (let n = 1; n <= 3; n++) {
      mkdirSync(join(img, String(n)), { recursive: true });
      const args = ['pre-dump', '-t', pid, '-D', join(img, String(n)), '-W', work, '--track-mem'];
      if (n > 1) args.push('--prev-images-dir', `../${n - 1}`);
      const start = Date.now();
      await c.ok('node-a', 'criu', args);
      spans.push({ start, end: Date.now() });
      const st = readStats(join(work, 'stats-dump'));
      if (n === 1) first = st;
      written.push(st[7]!);
      assert.equal(st[6]! + st[7]!, pages, 'pages_skipped_parent + pages_written = pages scanned');
      if (n > 1) assert.equal(readlinkSync(join(img, String(n), 'parent')), `../${n - 1}`);
    }
    assert.equal(written[0], pages, 'the first pre-dump writes every page');
    // A pre-dump thaws the CT before it writes the pages (criu/cr-dump.c cr_pre_dump_finish): its frozen_time (2) is
    // the collection of the page list, far shorter than writing all 64 MiB (memwrite_time, 4).
    assert.ok(first[2]! < first[4]!, `frozen ${first[2]} µs, memwrite ${first[4]} µs`);
    // Later ones follow the dirty rate: at most rate × the CT's running time between the earlier pre-dump's thaw and
    // the later one's collection (random pages can repeat, so not more; the workload catches up to the moment of
    // each collection first). Both moments lie within the span from the earlier criu's start to the later one's end,
    // however long either took to start on a busy machine. Slack: the clocks' whole milliseconds, a page's carry.
    for (let n = 1; n < 3; n++) {
      const elapsed = (spans[n]!.end - spans[n - 1]!.start) / 1000;
      assert.ok(
        written[n]! > 0 && written[n]! <= dirtyRate * (elapsed + 0.002) + 1,
        `pre-dump ${n + 1}: ${written[n]} pages within ${elapsed}s`,
      );
    }
    // Final dump, frozen at post-dump: record the memory checksum at the freeze, then commit.
    mkdirSync(join(img, '4'), { recursive: true });
    const hold = join(c.dir, 'hold.sh');
    writeFileSync(
      hold,
      `#!/bin/sh\n[ "$CRTOOLS_SCRIPT_ACTION" = post-dump ] || exit 0\nhaul-emu checksum-mem 200 > ${c.dir}/at-freeze.json\n`,
      { mode: 0o755 },
    );
    await c.ok('node-a', 'criu', [
      'dump',
      '-t',
      pid,
      '-D',
      join(img, '4'),
      '-W',
      work,
      '--prev-images-dir',
      '../3',
      '--track-mem',
      '--action-script',
      hold,
    ]);
    const atFreeze = JSON.parse(readFileSync(join(c.dir, 'at-freeze.json'), 'utf8')) as {
      memSha256: string;
      frozen: boolean;
    };
    assert.equal(atFreeze.frozen, true);
    assert.match(
      await c.ok('node-a', 'vzctl', ['status', '200']),
      /down/,
      'the dump killed the source tasks',
    );
    // Restore on node-b from the whole chain.
    writeFileSync(
      join(img, '4', 'restore-extra-args'),
      `VE_WORK_DIR=${work}\nVE_RESTORE_LOG_PATH=criu_restore.1.log\nVE_CRIU_LOGLEVEL=4\n`,
    );
    const out = await c.ok('node-b', 'vzctl', [
      '--skipowner',
      '--skiplock',
      'restore',
      '200',
      '--skip_arpdetect',
      '--dumpfile',
      join(img, '4'),
    ]);
    assert.match(out, /^Restoring the Container \.\.\.$/m);
    assert.match(out, /^Container was restored successfully$/m);
    const restored = JSON.parse(await c.ok('node-b', 'haul-emu', ['checksum-mem', '200'])) as {
      restoredSha256: string;
    };
    assert.equal(restored.restoredSha256, atFreeze.memSha256);
    assert.ok(readdirSync(work).includes('stats-restore'));
    await c.ok('node-b', 'vzctl', ['stop', '200']);
  });

  it('refuses a restore whose chain lacks a page (a missing parent image)', async () => {
    const img = join(c.dir, 'img');
    const broken = join(c.dir, 'broken');
    mkdirSync(broken);
    for (const f of readdirSync(join(img, '4')))
      if (f !== 'parent') writeFileSync(join(broken, f), readFileSync(join(img, '4', f)));
    const r = await c.run('node-b', 'vzctl', ['restore', '200', '--dumpfile', broken]);
    assert.equal(r.code, 17);
    assert.match(r.stderr, /pages are in no image|Failed to restore the Container/);
  });

  it('a restored CT whose memory differs from the dump (one byte of a page image) ends itself', async () => {
    const img = join(c.dir, 'img');
    const corrupt = join(img, 'corrupt');
    mkdirSync(corrupt);
    for (const f of readdirSync(join(img, '4')))
      if (f !== 'parent') writeFileSync(join(corrupt, f), readFileSync(join(img, '4', f)));
    symlinkSync('../3', join(corrupt, 'parent'));
    const pagesImg = readFileSync(join(corrupt, 'pages-1.img'));
    pagesImg.writeUInt8(pagesImg.readUInt8(100) ^ 0xff, 100);
    writeFileSync(join(corrupt, 'pages-1.img'), pagesImg);
    // The restore itself reports success: the CT checks its memory right after it said it was ready.
    await c.ok('node-b', 'vzctl', ['restore', '200', '--dumpfile', corrupt]);
    // Its pid file goes when it ends: on a fast machine it can be gone before this reads it.
    const initPid = join(c.nodeRoot('node-b'), 'var', 'run', 've', '200.init.pid');
    let pid = 0;
    try {
      pid = Number(readFileSync(initPid, 'utf8').trim());
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const deadline = Date.now() + 60_000;
    while (pid > 0 && processRunning(pid)) {
      assert.ok(Date.now() < deadline, `CT init ${pid} still runs a minute after a corrupt restore`);
      await delay(50);
    }
    const log = readFileSync(join(c.nodeRoot('node-b'), 'var', 'log', 'ct-200.log'), 'utf8');
    assert.match(log, /restore: memory checksum \w+ differs from the dump's \w+/);
    assert.match(await c.ok('node-b', 'vzctl', ['status', '200']), /down/);
  });
});

describe('vzctl and criu messages and exit codes', () => {
  let c: EmulatedCluster;
  before(async () => {
    c = createEmulatedCluster();
    await c.addNode('node-a', { criuVersion: '3.15', plainCriu: true });
    await c.ok('node-a', 'haul-emu', ['create-ct', '--ctid', '300', '--disk-writes', '0']);
  });
  after(() => c.destroy());

  it('follow the contract', async () => {
    assert.equal((await c.run('node-a', 'vzctl', ['start', '999'])).code, 14);
    assert.equal((await c.run('node-a', 'vzctl', ['explode', '300'])).code, 20);
    assert.equal((await c.run('node-a', 'vzctl', ['start'])).code, 21);
    // --help and --version (by prefix, before the action) print and exit 0 (src/vzctl.c 1565–1574); no action is a
    // usage error, with the same text (1598–1601).
    const help = await c.run('node-a', 'vzctl', ['--quiet', '--help', 'start', '300']);
    assert.deepEqual([help.code, help.stdout.split('\n').slice(0, 3)], [0, ['vzctl v.9.0.1', '', 'Usage:']]);
    assert.deepEqual(await c.ok('node-a', 'vzctl', ['--versions']), 'vzctl v.9.0.1\n');
    const none = await c.run('node-a', 'vzctl', ['--skiplock']);
    assert.deepEqual([none.code, none.stdout], [20, help.stdout]);
    assert.match(await c.ok('node-a', 'vzctl', ['status', '300']), /^VEID 300 exist unmounted down$/m);
    // A ctid is a UUID or a number up to INT_MAX, taken as "%d" prints it (libvzctl vzctl2_parse_ctid).
    assert.match(await c.ok('node-a', 'vzctl', ['status', '0300']), /^VEID 300 exist unmounted down$/m);
    // A UUID in any of libvzctl's forms is the same CT, named dashed and without braces (lib/util.c 1778–1853).
    const uuid = 'fbcdf284-5345-416B-a589-7b5fcaa87673';
    for (const form of [uuid, `{${uuid}}`, `{${uuid}`, `${uuid}}`, uuid.replaceAll('-', '')])
      assert.match(
        await c.ok('node-a', 'vzctl', ['status', form]),
        new RegExp(`^VEID ${uuid} deleted`, 'm'),
        form,
      );
    const digits = uuid.replaceAll('-', '');
    for (const bad of [
      'abc',
      '2147483648',
      '-5',
      '30 0',
      `{{${uuid}}`,
      `${uuid}-`,
      `{${digits}}`,
      `${digits}}`,
    ]) {
      const r = await c.run('node-a', 'vzctl', ['status', bad]);
      assert.deepEqual([r.code, r.stderr.trim()], [21, `Invalid ctid is specified: ${bad}`], bad);
    }
    const stopped = await c.run('node-a', 'vzctl', ['stop', '300']);
    assert.deepEqual([stopped.code, stopped.stderr.trim()], [0, 'Container is not running']);
    assert.match(
      await c.ok('node-a', 'vzctl', ['--skipowner', '--skiplock', 'start', '300']),
      /Container start in progress/,
    );
    assert.equal((await c.run('node-a', 'vzctl', ['start', '300'])).code, 32);
    // A paused CT is unpaused by a start (libvzctl lib/env.c 974–993), not refused.
    await c.ok('node-a', 'haul-emu', ['freeze', '300']);
    assert.match(await c.ok('node-a', 'vzctl', ['status', '300']), /^VEID 300 exist mounted paused$/m);
    assert.match(await c.ok('node-a', 'vzctl', ['start', '300']), /successfully unpaused/);
    assert.match(await c.ok('node-a', 'vzctl', ['status', '300']), /^VEID 300 exist mounted running$/m);
    assert.equal((await c.run('node-a', 'vzctl', ['umount', '300'])).code, 32);
    assert.equal((await c.run('node-a', 'vzctl', ['restore', '300', '--dumpfile', '/nonexistent'])).code, 32);
    assert.match(
      await c.ok('node-a', 'vzctl', ['stop', '300']),
      /Container was stopped\nContainer is unmounted/,
    );
    assert.equal((await c.run('node-a', 'vzctl', ['umount', '300'])).code, 40);
    assert.equal((await c.run('node-a', 'vzctl', ['restore', '300', '--dumpfile', '/nonexistent'])).code, 17);
    assert.equal((await c.run('node-a', 'vzctl', ['suspend', '300'])).code, 31);
    // Suspended at the default place (<VE_PRIVATE>/dump/Dump): `suspended` while it is there (lib/vz.c 421–426); a
    // restore from there drops it (lib/env.c 1360–1361); a start of a suspended CT restores it (src/vzctl.c
    // 2134–2152), and drops it the same way.
    await c.ok('node-a', 'vzctl', ['--skipowner', '--skiplock', 'start', '300']);
    assert.match(await c.ok('node-a', 'vzctl', ['suspend', '300']), /Checkpointing completed successfully/);
    assert.match(await c.ok('node-a', 'vzctl', ['status', '300']), /^VEID 300 exist unmounted suspended$/m);
    assert.match(await c.ok('node-a', 'vzctl', ['restore', '300']), /Container was restored successfully/);
    await c.ok('node-a', 'vzctl', ['stop', '300']);
    assert.match(await c.ok('node-a', 'vzctl', ['status', '300']), /^VEID 300 exist unmounted down$/m);
    await c.ok('node-a', 'vzctl', ['--skipowner', '--skiplock', 'start', '300']);
    await c.ok('node-a', 'vzctl', ['suspend', '300']);
    assert.match(
      await c.ok('node-a', 'vzctl', ['--skipowner', '--skiplock', 'start', '300']),
      /Container was restored successfully/,
    );
    await c.ok('node-a', 'vzctl', ['stop', '300']);
    assert.match(await c.ok('node-a', 'vzctl', ['status', '300']), /^VEID 300 exist unmounted down$/m);
    assert.equal(await c.ok('node-a', 'criu', ['-V']), 'Version: 3.15\n');
    // -h/--help anywhere first (config.c pre_parse), then the options in order: -V prints and exits before a bad
    // option after it is read; a bad option or -t value before it is refused (parse_options).
    const criu = async (...argv: string[]) => {
      const r = await c.run('node-a', 'criu', argv);
      return [r.code, r.stdout.split('\n')[0], r.stdout.includes('Usage:')];
    };
    assert.deepEqual(await criu('--bogus', 'dump', '--help'), [0, '', true]);
    assert.deepEqual(await criu('-V', '--bogus'), [0, 'Version: 3.15', false]);
    assert.deepEqual(await criu('--bogus', '-V'), [1, '', true]);
    // A -t whose atoi is not positive is refused where it stands, without the usage; atoi wraps at 2^31.
    assert.deepEqual(await criu('-t', 'x', '-V'), [1, '', false]);
    assert.deepEqual(await criu('-t', 'x', '-t', '5', '-V'), [1, '', false]);
    assert.deepEqual(await criu('-t', '2147483648', '-V'), [1, '', false]);
    assert.deepEqual(await criu('-t', '5x', '-V'), [0, 'Version: 3.15', false]);
    // Named as given: -t, or --tree in full however abbreviated (bad_arg, config.c 1069–1072).
    const why = async (...argv: string[]) => (await c.run('node-a', 'criu', argv)).stderr.trim();
    assert.equal(await why('-t', 'x'), 'Error (criu/config.c:1070): invalid argument for -t: x');
    assert.equal(await why('--tre=0', 'dump'), 'Error (criu/config.c:1072): invalid argument for --tree: 0');
    // The other values parse_options refuses where it meets them (config.c 766–1058): status 1, no usage.
    const c1 = 'Error (criu/config.c:';
    for (const [argv, message] of [
      [['--port', 'x'], `${c1}1072): invalid argument for --port: x`],
      [['--veth-pair', 'eth0'], `${c1}1072): invalid argument for --veth-pair: eth0`],
      [['-M', 'x'], `${c1}1070): invalid argument for -M: x`],
      [['--ext-mount=x'], `${c1}1072): invalid argument for --ext-mount-map: x`],
      [['--ms'], `${c1}872): --ms is deprecated; see "Check options" of criu --help`],
      [['--empty-ns', 'ipc'], `${c1}974): Unsupported empty namespace: ipc`],
      [['--status-fd', 'x'], `${c1}994): Unable to parse a value of --status-fd`],
      [['--port', '65536'], `${c1}1072): invalid argument for --port: 65536`],
      [['-J', 'net'], `${c1}1070): invalid argument for -J: net`],
      [['--pre-dump-mode', 'copy'], `${c1}1024): Unable to parse value of --pre-dump-mode`],
      [['--network-lock', 'ipfw'], `${c1}1044): Invalid value for --network-lock: ipfw`],
      [['--feature', 'warp'], 'Error (criu/cr-check.c:1901): Unknown feature warp'],
    ] as const) {
      const r = await c.run('node-a', 'criu', [...argv, 'dump', '-V']);
      assert.deepEqual(
        [r.code, r.stderr.trim(), r.stdout.includes('Usage:')],
        [1, message, false],
        argv.join(' '),
      );
    }
    // These return 2 from parse_options: the message, then the usage (crtools.c 159–160).
    for (const [argv, message] of [
      [['--manage-cgroups=hard'], `${c1}535): Unknown cgroups mode \`hard' selected`],
      [['--manage-cgroups='], `${c1}535): Unknown cgroups mode \`' selected`],
      [['--file-validation', 'md5'], `${c1}592): Unknown file validation method \`md5' selected`],
      [['--cpu-cap=fpu,^cpuX'], `${c1}506): Unknown FPU mode \`X' selected`],
    ] as const) {
      const r = await c.run('node-a', 'criu', [...argv, '-V']);
      assert.deepEqual(
        [r.code, r.stderr.trim(), r.stdout.includes('Usage:')],
        [1, message, true],
        argv.join(' '),
      );
    }
    for (const ok of [
      ['--port', '12'],
      ['-M', 'auto'],
      ['-J', 'net:/proc/1/ns/net'],
      ['--manage-cgroups=full'],
      ['--manage-cgroups'],
      ['--cpu-cap'],
      ['--cpu-cap=^fpu,ins'],
      ['--network-lock', 'skip'],
      ['--feature', 'mem_dirty_track'],
    ])
      assert.deepEqual(await criu(...ok, '-V'), [0, 'Version: 3.15', false], ok.join(' '));
    assert.deepEqual(await criu('-jVt', 'x'), [0, 'Version: 3.15', false]);
    assert.deepEqual(await criu('-jht', 'x'), [0, '', true]);
    assert.equal(
      await c.ok('node-a', 'criu', ['check', '--feature', 'mem_dirty_track']),
      'mem_dirty_track is supported\n',
    );
    assert.equal((await c.run('node-a', 'criu', ['pre-dump', '-t', '1', '-D', '/nonexistent'])).code, 1);
    // --prev-images-dir as the images folder opens, before the task is looked for (criu/image.c 739–754): a folder
    // that is not there is refused; a `parent` already there is kept, not replaced.
    const images = join(c.dir, 'criu-images');
    mkdirSync(join(images, '2'), { recursive: true });
    const withParent = (prev: string) =>
      c.run('node-a', 'criu', ['pre-dump', '-t', '1', '-D', join(images, '2'), '--prev-images-dir', prev]);
    const missing = await withParent('../1');
    assert.deepEqual(
      [missing.code, missing.stderr.trim()],
      [1, 'Error (criu/image.c:742): Invalid parent image directory provided: No such file or directory'],
    );
    mkdirSync(join(images, '1'));
    mkdirSync(join(images, '0'));
    assert.match((await withParent('../0')).stderr, /Can't find task 1/);
    assert.match((await withParent('../1')).stderr, /Can't find task 1/);
    assert.equal(readlinkSync(join(images, '2', 'parent')), '../0');
    // With -o, criu's errors go to its log in the work dir, emptied first, and not to stderr (criu/log.c); from -v3
    // on each line has its time stamp. The images folder is opened before the log (crtools.c 257–276 at 2cf8f13):
    // its error goes to stderr, and the log is not touched.
    const work = join(c.dir, 'criu-work');
    mkdirSync(work, { recursive: true });
    writeFileSync(join(work, 'pre-dump.log'), 'an older run\n');
    const preDumpAt = (level: string, dir = join(images, '1'), tree: string[] = ['-t', '1']) =>
      c.run('node-a', 'criu', ['pre-dump', ...tree, '-D', dir, '-W', work, '-o', 'pre-dump.log', level]);
    const noDir = await preDumpAt('-v2', '/nonexistent');
    assert.deepEqual(
      [noDir.code, noDir.stderr.trim().split('\n')],
      [
        1,
        [
          "Error (criu/image.c:726): Can't open dir /nonexistent: No such file or directory",
          "Error (criu/crtools.c:259): Couldn't open image dir /nonexistent",
        ],
      ],
    );
    assert.equal(readFileSync(join(work, 'pre-dump.log'), 'utf8'), 'an older run\n');
    const logged = await preDumpAt('-v2', join(images, '1'), []);
    assert.deepEqual([logged.code, logged.stderr], [1, '']);
    assert.equal(
      readFileSync(join(work, 'pre-dump.log'), 'utf8'),
      'Error (criu/crtools.c:583): pid not specified\n',
    );
    await preDumpAt('-v4', join(images, '1'), []);
    assert.match(
      readFileSync(join(work, 'pre-dump.log'), 'utf8'),
      /^\(\d{2}\.\d{6}\) Error \(criu\/crtools\.c:583\): pid not specified/,
    );
  });

  /** A new CT on node-a with a shared disk and no disk writes; the shared disk's folder. */
  async function ctWithSharedDisk(ctid: string): Promise<string> {
    const dir = join(c.shared, `ct${ctid}-data`);
    await c.ok('node-a', 'haul-emu', [
      'create-ct',
      '--ctid',
      ctid,
      '--shared-disk',
      dir,
      '--disk-writes',
      '0',
    ]);
    return dir;
  }

  it('suspend --create-devmap fails with 40 when an enabled disk of the running CT is not attached', async () => {
    // Given a running CT with a shared disk, then that disk's device detached
    const dir = await ctWithSharedDisk('306');
    await c.ok('node-a', 'vzctl', ['--skipowner', '--skiplock', 'start', '306']);
    assert.equal(
      (await c.run('node-a', 'vzctl', ['--skipowner', '--skiplock', 'suspend', '306', '--create-devmap']))
        .code,
      0,
    );
    await c.ok('node-a', 'ploop', ['umount', join(dir, 'DiskDescriptor.xml')]);
    // When the device map is made, then libvzctl's update_disk_info finds no device: 40, nothing said
    const r = await c.run('node-a', 'vzctl', [
      '--skipowner',
      '--skiplock',
      'suspend',
      '306',
      '--create-devmap',
    ]);
    assert.deepEqual([r.code, r.stderr], [40, '']);
    await c.ok('node-a', 'vzctl', ['--skipowner', '--skiplock', 'stop', '306']);
  });

  it('a CT whose root disk is unmounted is not mounted for vzctl: umount exits 40 and leaves its other disk attached', async () => {
    // Given a mounted CT with a shared disk, then its root disk's device detached alone
    const dir = await ctWithSharedDisk('308');
    await c.ok('node-a', 'vzctl', ['--skipowner', '--skiplock', 'mount', '308']);
    const root = join(c.nodeRoot('node-a'), 'vz', 'private', '308', 'root.hdd', 'DiskDescriptor.xml');
    await c.ok('node-a', 'ploop', ['umount', root]);
    // ploop list: a line per device of the node, its name and its base delta (tools/ploop.c plooptool_list 1249 at
    // v7.0.280: "%-12s %s %s %s", the mount point and the cookie empty here)
    const mine = [dir, dirname(root)];
    const baseOf = (l: string) => l.split(/ +/)[1] ?? '';
    const listed = async () =>
      (await c.ok('node-a', 'ploop', ['list'])).split('\n').filter((l) => mine.includes(dirname(baseOf(l))));
    assert.deepEqual((await listed()).map(baseOf), [join(dir, 'root.hds')]);
    // Then status says unmounted (vzctl2_env_is_mounted asks the root disk), umount exits 40 and changes nothing
    assert.match(await c.ok('node-a', 'vzctl', ['status', '308']), /^VEID 308 exist unmounted down$/m);
    const before = await listed();
    const r = await c.run('node-a', 'vzctl', ['--skipowner', '--skiplock', 'umount', '308']);
    assert.deepEqual([r.code, r.stderr.trim()], [40, 'Container is not mounted']);
    assert.deepEqual(await listed(), before, 'the shared disk is still attached');
    await c.ok('node-a', 'ploop', ['umount', join(dir, 'DiskDescriptor.xml')]);
    assert.deepEqual(await listed(), []);
  });

  it("a disk the config names through a link: vzctl's mount takes its descriptor's lock by the real path, as ploop's command line does", async () => {
    // Given CT 309's shared disk named through a link, and its descriptor's lock held (by its real path)
    const dir = await ctWithSharedDisk('309');
    const link = join(c.dir, 'ct309-via-link');
    symlinkSync(dir, link);
    const conf = join(c.nodeRoot('node-a'), 'etc', 'vz', 'conf', '309.conf');
    writeFileSync(conf, readFileSync(conf, 'utf8').replace(`image=${dir},`, `image=${link},`));
    assert.ok(readFileSync(conf, 'utf8').includes(`image=${link},`));
    // When vzctl mounts the CT, then it waits for that lock and gives up (ploop's 23 said in its message)
    const r = await whileLockHeld(c, 'node-a', join(dir, 'DiskDescriptor.xml'), () =>
      c.run('node-a', 'vzctl', ['--skipowner', '--skiplock', 'mount', '309'], {
        HAUL_EMU_PLOOP_LOCK_TIMEOUT_MS: '300',
      }),
    );
    assert.notEqual(r.code, 0, r.stdout);
    assert.ok(r.stderr.includes(`${join(dir, 'DiskDescriptor.xml')}.lck is locked`), r.stderr);
    const attached = (await c.ok('node-a', 'ploop', ['list'])).split('\n').filter((l) => l.includes(dir));
    assert.deepEqual(attached, [], 'the shared disk is not attached');
    await c.run('node-a', 'vzctl', ['--skipowner', '--skiplock', 'umount', '309']);
  });

  it("a final dump held at post-dump holds the CT's tasks as criu's ptrace does: status running, and a killed criu lets them run again", async () => {
    // Given a running CT and a final dump whose action script holds it at post-dump until told
    await c.ok('node-a', 'haul-emu', [
      'create-ct',
      '--ctid',
      '307',
      '--disk-writes',
      '0',
      '--dirty-rate',
      '500',
    ]);
    await c.ok('node-a', 'vzctl', ['--skipowner', '--skiplock', 'start', '307']);
    const pid = readFileSync(join(c.nodeRoot('node-a'), 'var', 'run', 've', '307.init.pid'), 'utf8').trim();
    const hold = join(c.dir, 'hold-307.sh');
    writeFileSync(
      hold,
      `#!/bin/sh\n[ "$CRTOOLS_SCRIPT_ACTION" = post-dump ] || exit 0\necho frozen\nwhile :; do sleep 1; done\n`,
      { mode: 0o755 },
    );
    const img = join(c.dir, 'img-307');
    mkdirSync(img, { recursive: true });
    const criu = spawn('criu', ['dump', '-t', pid, '-D', img, '--action-script', hold], {
      env: c.envFor('node-a'),
      stdio: ['ignore', 'pipe', 'ignore'],
      detached: true,
    });
    try {
      await new Promise<void>((r) =>
        criu.stdout.on('data', (d: Buffer) => d.toString().includes('frozen') && r()),
      );
      const mem = async () => JSON.parse(await c.ok('node-a', 'haul-emu', ['checksum-mem', '307'])) as Mem;
      type Mem = { frozen: boolean; dirtied: number };
      // Then the tasks are held, and the freezer thawed again: vzctl says running (criu/seize.c 658–662)
      assert.equal((await mem()).frozen, true);
      assert.match(await c.ok('node-a', 'vzctl', ['status', '307']), /^VEID 307 exist mounted running$/m);
      const held = (await mem()).dirtied;
      // When criu is killed (with its action script: its whole group)
      process.kill(-criu.pid!, 'SIGKILL');
      // Then the tasks run again: the kernel lets a dead tracer's tasks go
      await until(async () => {
        const m = await mem();
        return !m.frozen && m.dirtied > held;
      }, 'the CT running again');
    } finally {
      try {
        process.kill(-criu.pid!, 'SIGKILL');
      } catch {
        /* ended */
      }
      await c.ok('node-a', 'vzctl', ['--skipowner', '--skiplock', 'stop', '307']);
    }
  });

  it('register as libvzctl does it: the ctid and UUID pair, validate_eid unless forced, VE_PRIVATE renewed', async () => {
    await c.ok('node-a', 'haul-emu', ['create-ct', '--ctid', '301', '--disk-writes', '0']);
    const root = c.nodeRoot('node-a');
    const priv = join(root, 'vz', 'private', '301');
    const conf = () => readFileSync(join(priv, 've.conf'), 'utf8');
    const param = (name: string) => new RegExp(`^${name}="([^"]*)"$`, 'm').exec(conf())?.[1];
    const etc = (id: string) => join(root, 'etc', 'vz', 'conf', `${id}.conf`);
    const refused = async (args: string[], why: string) => {
      const r = await c.run('node-a', 'vzctl', args);
      assert.deepEqual(
        [r.code, r.stderr.trim().split('\n')],
        [255, [why, `Container registration failed: ${why}`]],
        args.join(' '),
      );
    };
    // Its own link is no obstacle; VEID and a new UUID are written, VE_PRIVATE as <dir>/$VEID (lib/vz.c 848–867).
    assert.match(
      await c.ok('node-a', 'vzctl', ['register', priv, '301']),
      /^Container 301 was successfully registered$/m,
    );
    assert.deepEqual([param('VEID'), param('VE_PRIVATE')], ['301', `${root}/vz/private/$VEID`]);
    const uuid = param('UUID');
    assert.match(uuid ?? '', /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    // Then registered with that id: refused unless forced (--force, or the global --skipowner), which keeps the UUID.
    await refused(['register', priv, '301'], 'Container is already registered with id 301');
    assert.match(
      await c.ok('node-a', 'vzctl', ['--skipowner', 'register', priv, '301']),
      /successfully registered/,
    );
    assert.equal(param('UUID'), uuid);
    // Another id: its config must be a link, and not one to another CT's ve.conf; a dangling one is taken over.
    rmSync(etc('301'));
    writeFileSync(etc('302'), 'VE_PRIVATE=/nowhere\n');
    await refused(['register', priv, '302'], `Container configuration file ${etc('302')} is not a link`);
    rmSync(etc('302'));
    symlinkSync(join(root, 'vz', 'private', '300', 've.conf'), etc('302'));
    await refused(['register', priv, '302'], 'Error: Container ID 302 is used');
    rmSync(etc('302'));
    symlinkSync(join(root, 'nowhere', 've.conf'), etc('302'));
    assert.match(
      await c.ok('node-a', 'vzctl', ['register', priv, '302']),
      /Container 302 was successfully registered/,
    );
    assert.equal(readlinkSync(etc('302')), join(priv, 've.conf'));
    // The path alone: a new UUID ctid, its own UUID (lib/env.c 1842–1846); VE_PRIVATE kept as given.
    const made = /^Container (\S+) was successfully registered$/m.exec(
      await c.ok('node-a', 'vzctl', ['--skipowner', 'register', priv]),
    )?.[1];
    assert.match(made ?? '', /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    assert.ok(lstatSync(etc(made!)).isSymbolicLink());
    assert.deepEqual([param('VEID'), param('UUID'), param('VE_PRIVATE')], [made, made, priv]);
    // --uuid/--id: read as a ctid where met (20), then as a UUID (a number is none); names and --start not emulated.
    const guid = await c.run('node-a', 'vzctl', ['register', priv, '303', '--uuid', 'nope', '--bogus']);
    assert.deepEqual([guid.code, guid.stderr.trim()], [20, 'Invalid guid is specified: nope']);
    await refused(['--skipowner', 'register', priv, '303', '--id', '5'], 'Invalid uuid 5');
    for (const o of [['--name', 'web'], ['--start']]) {
      const r = await c.run('node-a', 'vzctl', ['--skipowner', 'register', priv, '303', ...o]);
      assert.deepEqual([r.code, r.stderr.trim()], [20, `Error (emulator): register ${o[0]} is not emulated`]);
    }
    // getopt names the program after the ctid as given (vzctl shifted argv to it).
    const typed = await c.run('node-a', 'vzctl', ['register', priv, '0303', '--bogus']);
    assert.deepEqual([typed.code, typed.stderr.trim()], [21, "0303: unrecognized option '--bogus'"]);
    // A CT with a name: libvzctl would link /etc/vz/names/<name>; names are not emulated, so it is refused.
    writeFileSync(join(priv, 've.conf'), `${conf()}NAME="web"\n`);
    const named = await c.run('node-a', 'vzctl', ['--skipowner', 'register', priv, '303']);
    assert.deepEqual([named.code, /CT names are not emulated/.test(named.stderr)], [255, true]);
    const optionFirst = await c.run('node-a', 'vzctl', ['register', priv, '--force']);
    assert.deepEqual(
      [optionFirst.code, optionFirst.stderr.trim()],
      [21, 'Invalid ctid is specified: --force'],
      'a ctid, then options',
    );
  });

  it("the private area's layout as libvzctl reads it: made by create-ct, checked by register and every mount", async () => {
    // Given a CT made as `vzctl create` makes a ploop one (lib/fs_vzfs.c 132–179)
    await c.ok('node-a', 'haul-emu', ['create-ct', '--ctid', '304', '--disk-writes', '0']);
    const priv = join(c.nodeRoot('node-a'), 'vz', 'private', '304');
    const layout = join(priv, '.ve.layout');
    assert.equal(readlinkSync(layout), '5');
    for (const d of ['fs', 'root.hdd', 'dump', 'scripts'])
      assert.ok(lstatSync(join(priv, d)).isDirectory(), d);
    assert.match(await c.ok('node-a', 'vzctl', ['--skipowner', 'register', priv, '304']), /successfully/);

    // When the layout link is missing, not a link, below 4 or no number, then register refuses it, forced or not
    // (lib/vz.c 906–911: before the config is read, so without "Container registration failed"), and a link that
    // holds no number is an error of its own (vzctl2_env_layout_version, lib/vz.c 550–551)
    const oldFormat = 'Warning: Container in old data format, registration skipped.';
    const register = async () => {
      const r = await c.run('node-a', 'vzctl', ['--skipowner', 'register', priv, '304']);
      return [r.code, r.stderr.trim()];
    };
    rmSync(layout);
    assert.deepEqual(await register(), [255, oldFormat], 'no link');
    writeFileSync(layout, '5');
    assert.deepEqual(await register(), [255, oldFormat], 'a file, not a link');
    rmSync(layout);
    symlinkSync('3', layout);
    assert.deepEqual(await register(), [255, oldFormat], 'layout 3');
    rmSync(layout);
    symlinkSync('vzfs', layout);
    assert.deepEqual(await register(), [255, 'Unknown VZFS version (vzfs)']);
    rmSync(layout);
    symlinkSync('4', layout);
    assert.match(await c.ok('node-a', 'vzctl', ['--skipowner', 'register', priv, '304']), /successfully/);

    // And a mount of a private area that is not layout 5 is refused with the mount error: vzctl would bind-mount
    // it as a simfs or VZFS CT's (lib/fs.c 196–202), which is not emulated; at 5 again, it mounts
    const mount = await c.run('node-a', 'vzctl', ['mount', '304']);
    assert.deepEqual(
      [mount.code, mount.stderr.trim()],
      [
        50,
        `Error (emulator): ${layout} says layout 4: vzctl would bind-mount ${priv} as a simfs or VZFS CT, which is not emulated (a ploop CT's is 5)`,
      ],
    );
    rmSync(layout);
    const start = await c.run('node-a', 'vzctl', ['start', '304']);
    assert.deepEqual([start.code, /\.ve\.layout is missing/.test(start.stderr)], [50, true]);
    symlinkSync('5', layout);
    assert.match(await c.ok('node-a', 'vzctl', ['mount', '304']), /Container is mounted/);
    await c.ok('node-a', 'vzctl', ['umount', '304']);
  });

  it('the fault plan fails the chosen call with its exit code and stderr, and counts calls', async () => {
    const plan = join(c.dir, 'faults.json');
    writeFileSync(
      plan,
      JSON.stringify([
        {
          tool: 'vzctl',
          sub: 'status',
          node: 'node-a',
          call: 2,
          action: 'fail',
          exitCode: 77,
          stderr: 'injected: boom',
        },
      ]),
    );
    const env = { HAUL_EMU_FAULTS: plan };
    assert.equal((await c.run('node-a', 'vzctl', ['status', '300'], env)).code, 0);
    const second = await c.run('node-a', 'vzctl', ['status', '300'], env);
    assert.deepEqual([second.code, second.stderr.trim()], [77, 'injected: boom']);
    assert.equal((await c.run('node-a', 'vzctl', ['status', '300'], env)).code, 0);
    writeFileSync(plan, JSON.stringify([{ tool: 'ploop', sub: 'info', action: 'kill' }]));
    const killed = await c.run(
      'node-a',
      'ploop',
      ['info', join(c.nodeRoot('node-a'), 'vz/private/300/root.hdd/DiskDescriptor.xml')],
      env,
    );
    assert.equal(killed.code, -1, 'killed by a signal');

    // A gate: the tool says who it is, then does its work only once the file exists.
    const gate = createToolGate();
    try {
      writeFileSync(
        plan,
        JSON.stringify([{ tool: 'vzctl', sub: 'status', action: 'wait', waitFor: gate.file }]),
      );
      let settled = false;
      const held = c.run('node-a', 'vzctl', ['status', '300'], env).finally(() => (settled = true));
      for (const deadline = Date.now() + 60_000; gate.pid() === undefined; await delay(20))
        assert.ok(Date.now() < deadline, 'the tool reached its gate within a minute');
      assert.ok(processRunning(gate.pid()) && !settled, 'the tool waits at the gate');
      gate.open();
      const passed = await held;
      assert.deepEqual([passed.code, passed.stdout.trim()], [0, 'VEID 300 exist unmounted down']);
    } finally {
      gate.remove();
    }
  });
});
