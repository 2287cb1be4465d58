import { flag, withArg, type OptTable } from '../lib/tool.ts';

/*
 * The emulated ploop follows ONE upstream version: ploop 7, OpenVZ/ploop tag v7.0.280
 * (e49c878211d39ea5ee6c905fb2600709d847fd38), the ploop of VZ7 / OpenVZ 7 that haul's shared-disk steps need
 * (docs/host-contract.md, "Shared ploop disks need ploop 7"). Every refusal, exit code and message of the command
 * line (tools/ploop.c, tools/ploop-snapshot.c, tools/common.c) is that version's, cited with its line numbers, and so
 * are the library's where a comment cites them (lib/di.c, lib/lock.c, lib/merge.c, lib/xml.c).
 *
 * This file: the option tables, one per command, as their getopt calls declare them, and the usage texts. Every
 * command answers an option it does not know, or a missing argument, with glibc's message, its own usage text on
 * stderr and SYSEXIT_PARAM (38, include/libploop.h 437); snapshot-list answers 1 (tools/ploop-snapshot.c 243–245).
 */

const base = 'OpenVZ/ploop@e49c878 (v7.0.280)';

/**
 * What each command's usage function prints, whole (tools/ploop.c: usage_init 75–93, usage_mount 229–246,
 * usage_umount 491–500, usage_snapshot 633–641, usage_snapshot_switch 757–761, usage_snapshot_delete 806–810,
 * usage_snapshot_merge 850–855, usage_info 1079–1082, usage_list 1185–1188; tools/ploop-snapshot.c
 * usage_snapshot_list 193–197).
 */
const usages = {
  init: [
    'Usage: ploop init -s SIZE [-f FORMAT] [-v VERSION] [-t FSTYPE]',
    '                 [-b BLOCKSIZE] [-B FSBLOCKSIZE] [-L LABEL] [-n|--nolazy] [-k KEY] DELTA | DEVICE',
    '',
    '       SIZE        := NUMBER[KMGT]',
    '       FORMAT      := { raw | ploop1 | expanded | preallocated }',
    '       VERSION     := { 1 | 2 } (default 2, if supported)',
    '       FSTYPE      := { none | ext3 | ext4 } (create filesystem, default ext4)',
    '       BLOCKSIZE   := cluster block size, sectors',
    '       FSBLOCKSIZE := file system block size, bytes',
    '       LABEL       := label for the filesystem',
    '       -n, --nolazy - do not use lazy initialization during mkfs',
    '       KEY         := encryption keyid',
    '       DELTA       := path to a new image file',
    '       DEVICE      := path to a block device',
  ],
  mount: [
    'Usage: ploop mount [-r] [-n] [-f FORMAT] [-b BLOCKSIZE] [-d DEVICE]',
    '             [-m MOUNT_POINT] [-t FSTYPE] [-o MOUNT_OPTS] [--sparse]',
    '             BASE_DELTA [ ... TOP_DELTA ]',
    '       ploop mount [-r] [-m MOUNT_POINT] [-u UUID] DiskDescriptor.xml',
    '       FORMAT := { raw | ploop1 }',
    '       BLOCKSIZE := block size (for raw image format)',
    '       DEVICE := ploop device, e.g. /dev/ploop0',
    '       MOUNT_POINT := directory to mount in-image filesystem to',
    '       FSTYPE := in-image filesystem type (ext4 by default)',
    '       MOUNT_OPTS := additional mount options, comma-separated',
    '       *DELTA := path to image file',
    '       -r     - mount images read-only',
    '       -F     - run fsck on inner filesystem before mounting it',
    '       -n     - do not run partprobe during mount',
  ],
  umount: [
    'Usage: ploop umount -d DEVICE',
    '       ploop umount -m DIR',
    '       ploop umount DiskDescriptor.xml',
    '       ploop umount DELTA',
    '       DEVICE := ploop device, e.g. /dev/ploop0',
    '       DIR := mount point',
    '       DELTA := path to (mounted) image file',
  ],
  snapshot: [
    'Usage: ploop snapshot [-u UUID] DiskDescriptor.xml',
    '       ploop snapshot [-F] -d DEVICE DELTA',
    '       DEVICE := ploop device, e.g. /dev/ploop0',
    '       DELTA := path to new image file',
    '       -F     - synchronize file system before taking snapshot',
  ],
  'snapshot-delete': [
    'Usage: ploop snapshot-delete -u UUID DiskDescriptor.xml',
    '       UUID := snapshot id',
  ],
  'snapshot-merge': [
    'Usage: ploop snapshot-merge [-u UUID | -A] [-n DELTA] DiskDescriptor.xml',
    '       -u UUID       snapshot to merge (top delta if not specified)',
    '       -n DELTA      new delta file to merge to',
  ],
  'snapshot-switch': [
    'Usage: ploop snapshot-switch -u UUID DiskDescriptor.xml',
    '       UUID := snapshot UUID',
  ],
  'snapshot-list': [
    'Usage: ploop snapshot-list [-H] [-o field[,field...]] [-s] [-u <UUID>] \\',
    '                           DiskDescriptor.xml',
  ],
  info: ['Usage: ploop info [-s [-b]] [-d] DiskDescriptor.xml'],
  list: ['Usage: ploop list [-a]'],
} as const;

/** The summary usage (tools/ploop.c usage_summary 49–73): a refused leading option, an unknown command. */
export const summaryUsage = (): string =>
  [
    'Usage: ploop init -s SIZE [-f FORMAT | -L LABEL] NEW_DELTA | DEVICE',
    '       ploop mount [-r] [-m DIR] DiskDescriptor.xml',
    '       ploop umount { -d DEVICE | -m DIR | DELTA | DiskDescriptor.xml }',
    '       ploop check [-fFcrsdS] [-R -b BLOCKSIZE] { DELTA | DiskDescriptor.xml }',
    '       ploop convert [-f FORMAT] [-v VERSION] DiskDescriptor.xml',
    '       ploop resize -s SIZE DiskDescriptor.xml | DEVICE',
    '       ploop balloon { show | status | clear | change | complete | check |',
    '                       repair | discard } ... DiskDescriptor.xml',
    '       ploop snapshot DiskDescriptor.xml',
    '       ploop snapshot-delete -u UUID DiskDescriptor.xml',
    '       ploop snapshot-merge [-u UUID] DiskDescriptor.xml',
    '       ploop snapshot-switch -u UUID DiskDescriptor.xml',
    '       ploop snapshot-list [-o field[,field...]] [-u UUID] DiskDescriptor.xml',
    '       ploop tsnapshot -u UUID -c COMPONENT DiskDescriptor.xml',
    '       ploop restore-descriptor [-f FORMAT] [-b BLOCKSIZE] IMAGE_DIR BASE_DELTA',
    '       ploop replace -i DELTA DiskDescriptor.xml',
    '       ploop encrypt [-k KEY] [-w] DiskDescriptor.xml',
    'Also:  ploop { start | stop | delete | clear | merge | grow | copy |',
    '               stat | info | list} ...',
    '',
    '       ploop <command> -- to get detailed syntax for a specific command',
  ].join('\n');

export type PloopCommand = keyof typeof usages;

export const isPloopCommand = (c: string | undefined): c is PloopCommand => c !== undefined && c in usages;

export const commandUsage = (c: PloopCommand): string => usages[c].join('\n');

/** The exit status of a refused argv: snapshot-list returns 1 (tools/ploop-snapshot.c 243–254), the rest 38. */
export const paramExit = (c: PloopCommand): number => (c === 'snapshot-list' ? 1 : 38);

/**
 * tools/common.c parse_uuid (101–122): a GUID in braces, or its 36 characters without them (the braces added), kept
 * in the case given; undefined for anything else (the caller prints "Incorrect uuid specified: X", exit 38).
 */
export function parseUuid(g: string): string | undefined {
  const v = !g.startsWith('{') && g.length === 36 ? `{${g}}` : g;
  return /^\{[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\}$/.test(v)
    ? v
    : undefined;
}

/** tools/common.c is_xml_fname (124–132): the name's last `.` begins `.xml` (ploop 9 also takes `.qcow2`). */
export function isXmlFname(name: string): boolean {
  const dot = name.lastIndexOf('.');
  return dot >= 0 && name.slice(dot) === '.xml';
}

/** strtoul(s, &end, 0) with *end == '\0' after it: what `-b`/`-B` take (tools/ploop.c 134–146, 292–300). */
export const isWholeUl = (s: string): boolean =>
  s === '' || /^[ \t\n\v\f\r]*[+-]?(?:0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/.test(s);

/** tools/common.c parse_format_opt (87–99): the image formats `-f` takes; else "Bad -f argument: X". */
export const imageFormats = ['raw', 'ploop1', 'expanded', 'preallocated'] as const;

const ULONG_MAX = (1n << 64n) - 1n;

/**
 * tools/common.c parse_size (28–85): `-s` in sectors, a number (strtoul base 0) with one optional suffix K, M, G or
 * T (any case) for KiB … TiB; a message (with "ERROR: …") for anything else, or for a size of 2^32 × 512 sectors
 * or more.
 */
export function parseSize(opt: string, name = '-s'): { sectors: bigint } | { error: string } {
  const invalid = { error: `ERROR: Invalid argument for option ${name}: ${opt}` };
  const large = { error: `ERROR: Too large value for option ${name}: ${opt}` };
  const m = /^[ \t\n\v\f\r]*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)(.*)$/s.exec(opt);
  if (!m) return invalid;
  const [, sign, digits, suffix] = m as unknown as [string, string, string, string];
  let val = /^0[0-7]+$/.test(digits) ? BigInt(`0o${digits.slice(1)}`) : BigInt(digits);
  if (val > ULONG_MAX)
    val = ULONG_MAX; // ERANGE: ULONG_MAX
  else if (sign === '-' && val !== 0n) val = (1n << 64n) - val;
  if (suffix.length > 1) return invalid;
  const factor = { t: 1n << 31n, g: 1n << 21n, m: 1n << 11n, k: 2n, '': 1n }[suffix.toLowerCase()];
  if (factor === undefined) return invalid;
  if (factor !== 1n) {
    if (val >= ULONG_MAX / factor) return large;
    val *= factor;
  }
  if (val >= 0xffffffffn << 9n) return large;
  return { sectors: val };
}

export const ploopOptions: Record<PloopCommand, OptTable> = {
  // tools/ploop.c plooptool_init 106–227: getopt_long "s:b:B:f:t:L:v:nSk:P" (124), long nolazy, sparse (117–121).
  // No -T: ploop 9 added it (image format ploop or qcow2).
  init: {
    source: `${base}:tools/ploop.c plooptool_init`,
    specs: [
      withArg('s'),
      withArg('b'),
      withArg('B'),
      withArg('f'),
      withArg('t'),
      withArg('L'),
      withArg('v'),
      flag('n', 'nolazy'),
      flag('S', 'sparse'),
      withArg('k'),
      flag('P'),
    ],
  },
  // tools/ploop.c plooptool_mount 248–337: getopt "nrFf:d:m:t:u:o:b:c:" (255). No -a, -q: ploop 9's.
  mount: {
    source: `${base}:tools/ploop.c plooptool_mount`,
    specs: [
      flag('n'),
      flag('r'),
      flag('F'),
      withArg('f'),
      withArg('d'),
      withArg('m'),
      withArg('t'),
      withArg('u'),
      withArg('o'),
      withArg('b'),
      withArg('c'),
    ],
  },
  // tools/ploop.c plooptool_umount 502–574: getopt "d:m:c:" (512)
  umount: {
    source: `${base}:tools/ploop.c plooptool_umount`,
    specs: [withArg('d'), withArg('m'), withArg('c')],
  },
  // tools/ploop.c plooptool_snapshot 643–702: getopt "Fd:u:b:o" (650)
  snapshot: {
    source: `${base}:tools/ploop.c plooptool_snapshot`,
    specs: [flag('F'), withArg('d'), withArg('u'), withArg('b'), flag('o')],
  },
  // tools/ploop.c plooptool_snapshot_delete 812–848: getopt "u:" (818)
  'snapshot-delete': {
    source: `${base}:tools/ploop.c plooptool_snapshot_delete`,
    specs: [withArg('u')],
  },
  // tools/ploop.c plooptool_snapshot_merge 857–905: getopt "u:n:A" (862)
  'snapshot-merge': {
    source: `${base}:tools/ploop.c plooptool_snapshot_merge`,
    specs: [withArg('u'), withArg('n'), flag('A')],
  },
  // tools/ploop.c plooptool_snapshot_switch 763–804: getopt "u:D" (770; -D is for tests)
  'snapshot-switch': {
    source: `${base}:tools/ploop.c plooptool_snapshot_switch`,
    specs: [withArg('u'), flag('D')],
  },
  // tools/ploop-snapshot.c plooptool_snapshot_list 199–287: getopt_long "Hho:u:s" (220), long no-header, output,
  // help, uuid, id, snapshot (207–216; "snapshot" is declared required_argument although -s is a flag: `--snapshot X`
  // takes X and sets the same mode as -s, as upstream has it)
  'snapshot-list': {
    source: `${base}:tools/ploop-snapshot.c plooptool_snapshot_list`,
    specs: [
      flag('H', 'no-header'),
      flag('h', 'help'),
      withArg('o', 'output'),
      withArg('u', 'uuid', 'id'),
      flag('s'),
      withArg(undefined, 'snapshot'),
    ],
  },
  // tools/ploop.c plooptool_info 1098–1183: getopt "sdb" (1106)
  info: {
    source: `${base}:tools/ploop.c plooptool_info`,
    specs: [flag('s'), flag('d'), flag('b')],
  },
  // tools/ploop.c plooptool_list 1190–1254: getopt "a" (1202). No -f: ploop 9's.
  list: {
    source: `${base}:tools/ploop.c plooptool_list`,
    specs: [flag('a')],
  },
};
