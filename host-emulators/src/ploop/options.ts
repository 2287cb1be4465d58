import { flag, withArg, type OptTable } from '../lib/tool.ts';

/*
 * ploop's option tables, one per command, as its getopt calls declare them. Read at OpenVZ/ploop
 * d5c202bde3e33489a6462f75db704a00404c7740 (v9.0.30). Every command answers an option it does not know, or a
 * missing argument, with glibc's message, its own usage text on stderr and SYSEXIT_PARAM (38,
 * include/libploop.h); snapshot-list answers 1.
 */

const base = 'OpenVZ/ploop@d5c202b';

/** What each command's usage function prints (tools/ploop.c usage_*, tools/ploop-snapshot.c usage_snapshot_list). */
const usages = {
  init: [
    'Usage: ploop init -s SIZE [-f FORMAT] [-v VERSION] [-t FSTYPE] [-T IMAGEFMT]',
    '                 [-b BLOCKSIZE] [-B FSBLOCKSIZE] [-L LABEL] [-n|--nolazy] [-k KEY] DELTA | DEVICE',
  ],
  mount: [
    'Usage: ploop mount [-a] [-r] [-n] [-f FORMAT] [-b BLOCKSIZE] [-d DEVICE]',
    '             [-m MOUNT_POINT] [-t FSTYPE] [-o MOUNT_OPTS] [--sparse]',
    '             BASE_DELTA [ ... TOP_DELTA ]',
    '       ploop mount [-r] [-m MOUNT_POINT] [-u UUID] DiskDescriptor.xml',
  ],
  umount: [
    'Usage: ploop umount -d DEVICE',
    '       ploop umount -m DIR',
    '       ploop umount DiskDescriptor.xml',
  ],
  snapshot: [
    'Usage: ploop snapshot [-u UUID] DiskDescriptor.xml',
    '       ploop snapshot [-F] [-o] -d DEVICE DELTA',
    '       -F     - synchronize file system before taking snapshot',
    '       -o     - create an offline snapshot',
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

export type PloopCommand = keyof typeof usages;

export const isPloopCommand = (c: string | undefined): c is PloopCommand => c !== undefined && c in usages;

export const commandUsage = (c: PloopCommand): string => usages[c].join('\n');

/** The exit status of a refused argv: snapshot-list returns 1 (tools/ploop-snapshot.c), the rest SYSEXIT_PARAM. */
export const paramExit = (c: PloopCommand): number => (c === 'snapshot-list' ? 1 : 38);

export const ploopOptions: Record<PloopCommand, OptTable> = {
  // tools/ploop.c plooptool_init: getopt_long "s:b:B:f:t:L:v:nSk:PT:", long nolazy, sparse
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
      withArg('T'),
    ],
  },
  // tools/ploop.c plooptool_mount: getopt "anrFf:d:m:t:u:o:b:c:q"
  mount: {
    source: `${base}:tools/ploop.c plooptool_mount`,
    specs: [
      flag('a'),
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
      flag('q'),
    ],
  },
  // tools/ploop.c plooptool_umount: getopt "d:m:c:"
  umount: {
    source: `${base}:tools/ploop.c plooptool_umount`,
    specs: [withArg('d'), withArg('m'), withArg('c')],
  },
  // tools/ploop.c plooptool_snapshot: getopt "Fd:u:b:o"
  snapshot: {
    source: `${base}:tools/ploop.c plooptool_snapshot`,
    specs: [flag('F'), withArg('d'), withArg('u'), withArg('b'), flag('o')],
  },
  // tools/ploop.c plooptool_snapshot_delete: getopt "u:"
  'snapshot-delete': {
    source: `${base}:tools/ploop.c plooptool_snapshot_delete`,
    specs: [withArg('u')],
  },
  // tools/ploop.c plooptool_snapshot_merge: getopt "u:n:A"
  'snapshot-merge': {
    source: `${base}:tools/ploop.c plooptool_snapshot_merge`,
    specs: [withArg('u'), withArg('n'), flag('A')],
  },
  // tools/ploop.c plooptool_snapshot_switch: getopt "u:D" (-D is for tests)
  'snapshot-switch': {
    source: `${base}:tools/ploop.c plooptool_snapshot_switch`,
    specs: [withArg('u'), flag('D')],
  },
  // tools/ploop-snapshot.c plooptool_snapshot_list: getopt_long "Hho:u:s", long no-header, output, help, uuid, id,
  // snapshot (declared required_argument upstream although -s is a flag: kept as upstream has it)
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
  // tools/ploop.c plooptool_info: getopt "sdb"
  info: {
    source: `${base}:tools/ploop.c plooptool_info`,
    specs: [flag('s'), flag('d'), flag('b')],
  },
  // tools/ploop.c plooptool_list: getopt "af" (-a is read and ignored since ploop 9)
  list: {
    source: `${base}:tools/ploop.c plooptool_list`,
    specs: [flag('a'), flag('f')],
  },
};
