import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ensureBuilt } from '@haul/test';
import { commandUsage, summaryUsage } from '../src/ploop/options.ts';

/*
 * The emulated ploop's command line against ploop 7 at OpenVZ/ploop v7.0.280 (e49c878): each case runs the emulator
 * (host-emulators/bin/ploop, its bundle) as haul runs the real tool, and checks its exit status, stderr and stdout.
 * Line numbers are at v7.0.280.
 */

const repo = join(import.meta.dirname, '..', '..');
const bin = join(repo, 'host-emulators', 'bin', 'ploop');
const dir = mkdtempSync(join(tmpdir(), 'haul-ploop-cli-'));
const node = join(dir, 'node-a');
const disk = join(dir, 'disk');
const dd = join(disk, 'DiskDescriptor.xml');
const TOP = '{5fbaabe3-6958-40ff-92a7-860e329aab41}';
const G1 = '{0f4c9a7e-1b2d-4c3e-8f5a-6d7e8f9a0b1c}';
const G2 = '{1a2b3c4d-5e6f-4a0b-8c1d-2e3f4a5b6c7d}';

type Ran = { code: number | null; stdout: string; stderr: string };
const ploop = (...argv: string[]): Ran => {
  const r = spawnSync(process.execPath, [bin, ...argv], {
    cwd: repo,
    env: { ...process.env, HAUL_EMU_ROOT: node },
    encoding: 'utf8',
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
};
const ok = (...argv: string[]): string => {
  const r = ploop(...argv);
  assert.equal(r.code, 0, `ploop ${argv.join(' ')}: ${r.stderr}`);
  return r.stdout;
};
/** Exit status and stderr, for a refusal (nothing on stdout). */
const refused = (...argv: string[]): [number | null, string] => {
  const r = ploop(...argv);
  assert.equal(r.stdout, '', `ploop ${argv.join(' ')} printed on stdout`);
  return [r.code, r.stderr];
};

describe('the emulated ploop follows ploop 7 (v7.0.280) on its command line', () => {
  before(() => {
    ensureBuilt();
    mkdirSync(join(node, 'etc'), { recursive: true });
    mkdirSync(disk);
    writeFileSync(
      join(node, 'etc', 'haul-emu.json'),
      JSON.stringify({ node: 'node-a', clusterDir: join(dir, 'cluster') }),
    );
    ok('init', '-s', '64M', join(disk, 'root.hds'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("runs haul's own command lines (services/node-agent/src/adapters/tools.ts) and ploop 7's umount of a descriptor", () => {
    // Given the disk, not mounted; when haul's offline snapshot and its delete run: then each exits 0
    ok('snapshot', '-u', G1, '-o', dd);
    ok('snapshot-delete', '-u', G1, dd);
    // Given the disk mounted on this node; when haul's other command lines run: then each exits 0
    const dev = /\/dev\/ploop\d+/.exec(ok('mount', dd))![0];
    assert.match(ok('info', '-d', dd), new RegExp(`^device:\\t\\t${dev}\\n`));
    // ploop 7's list line, "%-12s %s %s %s" (tools/ploop.c 1249): the device, its base, no mount point without -a, no
    // cookie
    assert.ok(
      ok('list')
        .split('\n')
        .includes(`${dev.slice(5).padEnd(12)} ${join(disk, 'root.hds')}  `),
    );
    ok('snapshot', '-u', G2, dd);
    ok('snapshot-delete', '-u', G2, dd);
    // And `ploop umount DiskDescriptor.xml` is taken, as ploop 7 takes it (tools/ploop.c 532–535, 553–564; ploop 9
    // refuses one operand without -d or -m: d5c202b tools/ploop.c 608)
    ok('umount', dd);
    assert.equal(ok('list'), '');
  });

  it('a descriptor that is not there: "Can\'t resolve", SYSEXIT_DISKDESCR 39 (lib/di.c ploop_open_dd 363–367; ploop 9: 4)', () => {
    // Given no descriptor at a path; when a command opens it; then 39 and the library's message
    const none = join(dir, 'nope', 'DiskDescriptor.xml');
    assert.deepEqual(refused('snapshot', '-u', G1, none), [
      39,
      `Can't resolve ${none}: No such file or directory\n`,
    ]);
  });

  it('init refuses -T (ploop 9 added it): getopt "s:b:B:f:t:L:v:nSk:P" (tools/ploop.c 124), usage_init, 38', () => {
    // Given a new image path; when init is given -T; then glibc's message, ploop 7's usage_init, 38, no image
    const img = join(dir, 'init-T', 'root.hds');
    mkdirSync(join(dir, 'init-T'));
    assert.deepEqual(refused('init', '-T', 'ploop', '-s', '1G', img), [
      38,
      `ploop: invalid option -- 'T'\n${commandUsage('init')}\n`,
    ]);
    assert.ok(!existsSync(img));
    // And the usage is ploop 7's: no [-T IMAGEFMT], ext4 the default file system
    assert.match(
      commandUsage('init'),
      /^Usage: ploop init -s SIZE \[-f FORMAT\] \[-v VERSION\] \[-t FSTYPE\]$/m,
    );
    assert.match(
      commandUsage('init'),
      /FSTYPE {6}:= \{ none \| ext3 \| ext4 \} \(create filesystem, default ext4\)/,
    );
  });

  it("init refuses the values ploop 7's getopt loop refuses, each with its message", () => {
    // Given a new image path
    mkdirSync(join(dir, 'init-values'));
    const img = join(dir, 'init-values', 'root.hds');
    const usage = commandUsage('init');
    // When -f, -v, -t, -b, -B or -s is one ploop 7 does not take; then 38 and its message, no image made
    // parse_format_opt (tools/common.c 87–99), 147–154
    assert.deepEqual(refused('init', '-f', 'qcow2', '-s', '1G', img), [
      38,
      `Bad -f argument: qcow2\n${usage}\n`,
    ]);
    // parse_version_opt 95–104, 170–177
    assert.deepEqual(refused('init', '-v', '3', '-s', '1G', img), [38, `Invalid -v argument: 3\n${usage}\n`]);
    // -t: none, ext3, ext4 (155–166), no usage; ploop 9 also takes xfs
    assert.deepEqual(refused('init', '-t', 'xfs', '-s', '1G', img), [
      38,
      'Incorrect file system type specified: xfs\n',
    ]);
    // -b, -B: strtoul over the whole text (133–146)
    assert.deepEqual(refused('init', '-b', '2k', '-s', '1G', img), [38, `${usage}\n`]);
    assert.deepEqual(refused('init', '-B', '4k', '-s', '1G', img), [38, `${usage}\n`]);
    // parse_size (tools/common.c 28–85), 127–131
    assert.deepEqual(refused('init', '-s', '1GB', img), [
      38,
      `ERROR: Invalid argument for option -s: 1GB\n${usage}\n`,
    ]);
    assert.deepEqual(refused('init', '-s', '4096T', img), [
      38,
      `ERROR: Too large value for option -s: 4096T\n${usage}\n`,
    ]);
    // A size of 0, and two operands: the usage (199–202, 216–219)
    assert.deepEqual(refused('init', '-s', '0', img), [38, `${usage}\n`]);
    assert.deepEqual(refused('init', '-s', '1G', img, join(dir, 'init-values', 'b.hds')), [38, `${usage}\n`]);
    // The first refused value ends the loop: a later unknown option is not read
    assert.deepEqual(refused('init', '-v', '9', '-T', 'ploop', img), [
      38,
      `Invalid -v argument: 9\n${usage}\n`,
    ]);
    assert.ok(!existsSync(img));
    // And what it takes: a format, version, file system and a size in hexadecimal sectors with a suffix
    ok('init', '-f', 'ploop1', '-v', '2', '-t', 'ext3', '-b', '0x800', '-s', '0x40m', img);
    assert.ok(existsSync(img));
  });

  it('mount refuses -a and -q (ploop 9 added them): getopt "nrFf:d:m:t:u:o:b:c:" (tools/ploop.c 255), usage_mount, 38', () => {
    // Given the disk; when mount is given -a or -q; then glibc's message, ploop 7's usage_mount (no [-a]), 38
    for (const o of ['a', 'q'])
      assert.deepEqual(refused('mount', `-${o}`, dd), [
        38,
        `ploop: invalid option -- '${o}'\n${commandUsage('mount')}\n`,
      ]);
    assert.match(commandUsage('mount'), /^Usage: ploop mount \[-r\] \[-n\] \[-f FORMAT\]/);
    // And a -f it does not know: parse_format_opt's message and the usage (269–274)
    assert.deepEqual(refused('mount', '-f', 'qcow2', dd), [
      38,
      `Bad -f argument: qcow2\n${commandUsage('mount')}\n`,
    ]);
  });

  it('list refuses -f (ploop 9 added it): getopt "a" (tools/ploop.c 1202), usage_list, 38', () => {
    // Given this node; when list is given -f; then glibc's message, the usage, 38
    assert.deepEqual(refused('list', '-f'), [38, "ploop: invalid option -- 'f'\nUsage: ploop list [-a]\n"]);
  });

  it('snapshot-list -h / --help: the usage on stderr and exit 0, nothing listed (tools/ploop-snapshot.c 240–242)', () => {
    // Given the disk; when snapshot-list is asked for help, with or without a descriptor; then 0, the usage, no list
    for (const argv of [['-h', dd], ['--help'], ['-H', '--help', '-x', dd]])
      assert.deepEqual(refused('snapshot-list', ...argv), [0, `${commandUsage('snapshot-list')}\n`]);
    // And an unknown option met before -h is still refused with 1 (243–245)
    assert.equal(refused('snapshot-list', '-x', '-h', dd)[0], 1);
  });

  it('snapshot-list -u: parse_uuid, SYSEXIT_PARAM 38 for no GUID (tools/ploop-snapshot.c 232–236); braces added', () => {
    // Given the disk with one snapshot
    ok('snapshot', '-u', G1, dd);
    try {
      // When -u is no GUID; then "Incorrect uuid specified" and 38, not 1
      assert.deepEqual(refused('snapshot-list', '-u', 'nope', dd), [38, 'Incorrect uuid specified: nope\n']);
      assert.deepEqual(refused('snapshot-list', '--uuid=', dd), [38, 'Incorrect uuid specified: \n']);
      // When it is a GUID without its braces: then parse_uuid adds them and the listing starts there
      assert.equal(ok('snapshot-list', '-H', '-o', 'uuid', '-u', G1.slice(1, -1), dd), `${G1}\n`);
      // When it is a GUID the descriptor does not have: build_uuid_list's message (162), with the braces, and 1
      assert.deepEqual(refused('snapshot-list', '-u', G2.slice(1, -1), dd), [
        1,
        `Can't find snapshot by uuid ${G2}\n`,
      ]);
    } finally {
      ok('snapshot-delete', '-u', G1, dd);
    }
  });

  it('snapshot-list --snapshot X: the mode of -s, X taken as its argument (tools/ploop-snapshot.c 214, 237–239)', () => {
    // Given the disk with one snapshot below the top
    ok('snapshot', '-u', G1, dd);
    try {
      const withS = ok('snapshot-list', '-H', '-o', 'uuid,current', '-s', dd);
      assert.equal(withS, `${G1} *\n`);
      // When --snapshot is given a word (in either form); then the listing is -s's: the top hidden, its parent current
      assert.equal(ok('snapshot-list', '-H', '-o', 'uuid,current', '--snapshot', 'yes', dd), withS);
      assert.equal(ok('snapshot-list', '-H', '-o', 'uuid,current', '--snap=1', dd), withS);
      // And without its word it is refused as a missing argument: 1
      assert.deepEqual(refused('snapshot-list', dd, '--snapshot'), [
        1,
        `ploop: option '--snapshot' requires an argument\n${commandUsage('snapshot-list')}\n`,
      ]);
    } finally {
      ok('snapshot-delete', '-u', G1, dd);
    }
  });

  it('snapshot-list reads a descriptor under any name (no is_xml_fname), and fails one it cannot read with 1', () => {
    // Given a copy of the descriptor whose name does not end in .xml (P.Haul's DiskDescriptor.xml.copy)
    const copy = `${dd}.copy`;
    copyFileSync(dd, copy);
    try {
      // When snapshot-list reads it; then it lists it (tools/ploop-snapshot.c 255: ploop_read_disk_descr)
      assert.equal(ok('snapshot-list', '-H', '-o', 'uuid', copy), `${TOP}\n`);
    } finally {
      rmSync(copy);
    }
    // When the descriptor is not there; then the library's message, "failed to read" (255–259) and 1, not 39
    const none = join(dir, 'none.xml');
    const why = `Can't resolve ${none}: No such file or directory`;
    assert.deepEqual(refused('snapshot-list', none), [1, `${why}\nfailed to read ${none}: ${why}\n`]);
  });

  it('snapshot-list -o: field names without regard to case, a comma at the end ends the list (ploop-snapshot.c 91–144)', () => {
    // Given the disk; when -o names a field in capitals, or ends in a comma; then the listing, not "Unknown field"
    assert.equal(ok('snapshot-list', '-H', '-o', 'UUID', dd), `${TOP}\n`);
    assert.equal(ok('snapshot-list', '-H', '-o', 'uuid,', dd), `${TOP}\n`);
    // And an empty name elsewhere is unknown: 1
    assert.deepEqual(refused('snapshot-list', '-o', 'uuid,,fname', dd), [1, 'Unknown field: \n']);
  });

  it("a name not ending in .xml (tools/common.c is_xml_fname 124–132) is refused with the command's own usage, 38", () => {
    // Given a copy of the descriptor whose name does not end in .xml
    const copy = `${dd}.copy`;
    copyFileSync(dd, copy);
    try {
      // When a command that asks is_xml_fname is given it; then its usage (not the summary) and 38
      const cases: [string[], Parameters<typeof commandUsage>[0]][] = [
        [['snapshot', '-u', G1, copy], 'snapshot'], // 683, 693–697
        [['snapshot-delete', '-u', G1, copy], 'snapshot-delete'], // 834–837
        [['snapshot-switch', '-u', G1, copy], 'snapshot-switch'], // 790–793
        [['snapshot-merge', copy], 'snapshot-merge'], // 890–902
        [['info', '-d', copy], 'info'], // 1126–1129
      ];
      for (const [argv, cmd] of cases) assert.deepEqual(refused(...argv), [38, `${commandUsage(cmd)}\n`]);
    } finally {
      rmSync(copy);
    }
  });

  it("snapshot's usage is ploop 7's usage_snapshot (tools/ploop.c 633–641): no -o line", () => {
    // Given the disk; when snapshot is given an unknown option; then glibc's message and ploop 7's usage
    assert.deepEqual(refused('snapshot', '-x', dd), [
      38,
      "ploop: invalid option -- 'x'\n" +
        'Usage: ploop snapshot [-u UUID] DiskDescriptor.xml\n' +
        '       ploop snapshot [-F] -d DEVICE DELTA\n' +
        '       DEVICE := ploop device, e.g. /dev/ploop0\n' +
        '       DELTA := path to new image file\n' +
        '       -F     - synchronize file system before taking snapshot\n',
    ]);
  });

  it('a leading option other than -v…: "Bad option" and the summary usage of ploop 7 (tools/ploop.c 49–73, 1565–1570)', () => {
    // Given nothing; when ploop is given --bogus before its command; then the summary usage, 38
    assert.deepEqual(refused('--bogus', 'list'), [38, `Bad option --bogus\n${summaryUsage()}\n`]);
    assert.match(
      summaryUsage(),
      /^Usage: ploop init -s SIZE \[-f FORMAT \| -L LABEL\] NEW_DELTA \| DEVICE\n/,
    );
    assert.match(summaryUsage(), /\n {7}ploop <command> -- to get detailed syntax for a specific command$/);
  });

  it('snapshot-merge refuses -u with -A before it opens the descriptor: its message and usage, 38 (tools/ploop.c 884–888)', () => {
    // Given no descriptor at a path; when snapshot-merge is given -u and -A; then 38 and the message, not 39
    const none = join(dir, 'nope', 'DiskDescriptor.xml');
    assert.deepEqual(refused('snapshot-merge', '-A', '-u', G1, none), [
      38,
      `Options -u and -A can't be used together\n${commandUsage('snapshot-merge')}\n`,
    ]);
  });

  it('umount -d before -m, and -d of a partition names its device (tools/ploop.c 537–552)', () => {
    // Given the disk mounted
    const dev = /\/dev\/ploop\d+/.exec(ok('mount', dd))![0];
    // When umount is given -m of no mount point and -d of the device's partition; then -d is taken and the device goes
    ok('umount', '-m', '/nowhere', '-d', `${dev}p1`);
    assert.doesNotMatch(ok('list'), new RegExp(`^${dev.slice(5)}\\t`, 'm'));
    // And two operands without -d or -m are the usage (532–535)
    assert.deepEqual(refused('umount', dd, dd), [38, `${commandUsage('umount')}\n`]);
    // And an empty -m is a mount point all the same: no device found by it, 38 (546–551), not the usage
    assert.deepEqual(refused('umount', '-m', ''), [38, 'Unable to find ploop device by \n']);
  });
});
