/**
 * The host contract: every command line haul runs on a host, with placeholders for the values, the exit codes haul
 * takes as success, the function that builds it, and the upstream source that accepts each of its options.
 * docs/host-contract.md mirrors this list; services/node-agent/test/host-contract.int.test.ts checks that tools.ts
 * builds exactly these argv, that the doc lists exactly these, and runs each against the strict emulators.
 *
 * Upstream revisions read: OpenVZ/ploop d5c202b (v9.0.30), OpenVZ/vzctl 42ab7b3 (v9.0.1), OpenVZ/libvzctl
 * ebbfc38 (v8.0.90), checkpoint-restore/criu 2cf8f13 (v4.2-22).
 */
export interface ContractEntry {
  tool: 'vzctl' | 'criu' | 'ploop' | 'haul-hold-frozen';
  /** The argv after the program name; `<name>` marks a value. */
  argv: string[];
  /** Exit codes haul treats as success (0 always). */
  okCodes: number[];
  /** The function in haul that builds this argv. */
  builtBy: string;
  /** Where upstream each option (or group of options) is accepted. */
  upstream: { words: string; source: string }[];
}

const vzctlMain = 'OpenVZ/vzctl@42ab7b3:src/vzctl.c main (global options loop)';
const criuTable = 'checkpoint-restore/criu@2cf8f13:criu/config.c parse_options (long_opts)';
const criuShort =
  'checkpoint-restore/criu@2cf8f13:criu/config.c parse_options (short_opts "dSsRt:hD:o:v::x::Vr:jJ:lW:L:M:")';
const ploopSnap = 'OpenVZ/ploop@d5c202b:tools/ploop.c plooptool_snapshot (getopt "Fd:u:b:o")';

const memory = [
  { words: '-t <pid>, -D <dir>, -W <workdir>, -v2', source: criuShort },
  { words: '--track-mem, --prev-images-dir <prev>, --timeout 180, -o <log>', source: criuTable },
];
const dumpExtras = [
  {
    words:
      '--tcp-established, --file-locks, --link-remap, --evasive-devices, --manage-cgroups, --ghost-limit 50M',
    source: criuTable,
  },
  { words: '--action-script <script>', source: criuTable },
  {
    words: 'dump (final state kill after post-dump)',
    source: 'checkpoint-restore/criu@2cf8f13:criu/cr-dump.c cr_dump_tasks',
  },
];
const preDump = (prev: string[]) => [
  'pre-dump',
  '-t',
  '<pid>',
  '-D',
  '<dir>',
  '-W',
  '<workdir>',
  '--track-mem',
  ...prev,
  '--skip-in-flight',
  '--timeout',
  '180',
  '-o',
  'pre-dump.log',
  '-v2',
];
const dump = (prev: string[], root: string[]) => [
  'dump',
  '-t',
  '<pid>',
  '-D',
  '<dir>',
  '-W',
  '<workdir>',
  '--track-mem',
  ...prev,
  '--tcp-established',
  '--file-locks',
  '--link-remap',
  '--evasive-devices',
  '--manage-cgroups',
  '--ghost-limit',
  '50M',
  ...root,
  '--action-script',
  '<script>',
  '--timeout',
  '180',
  '-o',
  'dump.log',
  '-v2',
];
const prevArgs = ['--prev-images-dir', '<prev>'];

export const hostContract: ContractEntry[] = [
  {
    tool: 'vzctl',
    argv: ['status', '<ctid>'],
    okCodes: [],
    builtBy: 'tools.ts vzctlStatus',
    upstream: [
      {
        words: 'status (reads nothing after the ctid)',
        source: 'OpenVZ/vzctl@42ab7b3:src/vzctl.c main (case ACTION_STATUS)',
      },
    ],
  },
  {
    tool: 'vzctl',
    argv: ['--skipowner', '--skiplock', 'start', '<ctid>'],
    okCodes: [32],
    builtBy: 'tools.ts vzctlStart',
    upstream: [
      { words: '--skipowner, --skiplock', source: vzctlMain },
      { words: 'start', source: 'OpenVZ/vzctl@42ab7b3:src/vzctl.c start_options / ParseStartOptions' },
    ],
  },
  {
    tool: 'vzctl',
    argv: ['--skipowner', '--skiplock', 'stop', '<ctid>'],
    okCodes: [],
    builtBy: 'tools.ts vzctlStop',
    upstream: [
      { words: '--skipowner, --skiplock', source: vzctlMain },
      { words: 'stop', source: 'OpenVZ/vzctl@42ab7b3:src/vzctl.c stop_options / ParseStopOptions' },
    ],
  },
  {
    tool: 'vzctl',
    argv: ['--skipowner', '--skiplock', 'umount', '<ctid>'],
    okCodes: [40],
    builtBy: 'tools.ts vzctlUmount',
    upstream: [
      { words: '--skipowner, --skiplock', source: vzctlMain },
      {
        words: 'umount (no options: any word after the ctid is refused)',
        source: 'OpenVZ/vzctl@42ab7b3:src/vzctl.c main (switch default)',
      },
    ],
  },
  {
    tool: 'vzctl',
    argv: ['--skipowner', '--skiplock', 'restore', '<ctid>', '--skip_arpdetect', '--dumpfile', '<dir>'],
    okCodes: [],
    builtBy: 'tools.ts vzctlRestore',
    upstream: [
      { words: '--skipowner, --skiplock', source: vzctlMain },
      {
        words: '--skip_arpdetect, --dumpfile <dir>',
        source: 'OpenVZ/vzctl@42ab7b3:src/vzctl.c restore_options / ParseMigrationOptions',
      },
      { words: 'restore runs vz-rst (criu restore)', source: 'OpenVZ/libvzctl@ebbfc38:scripts/vz-rst.in' },
    ],
  },
  {
    tool: 'criu',
    argv: ['-V'],
    okCodes: [],
    builtBy: 'tools.ts criuVersion',
    upstream: [{ words: '-V', source: criuShort }],
  },
  {
    tool: 'criu',
    argv: ['check', '--feature', 'mem_dirty_track'],
    okCodes: [1],
    builtBy: 'tools.ts criuMemTrack',
    upstream: [
      { words: '--feature <name>', source: criuTable },
      { words: 'mem_dirty_track', source: 'checkpoint-restore/criu@2cf8f13:criu/cr-check.c feature_list' },
    ],
  },
  {
    tool: 'criu',
    argv: preDump([]),
    okCodes: [],
    builtBy: 'tools.ts criuPreDump (first iteration)',
    upstream: [...memory, { words: '--skip-in-flight', source: criuTable }],
  },
  {
    tool: 'criu',
    argv: preDump(prevArgs),
    okCodes: [],
    builtBy: 'tools.ts criuPreDump (later iterations)',
    upstream: [...memory, { words: '--skip-in-flight', source: criuTable }],
  },
  {
    tool: 'criu',
    argv: dump(prevArgs, []),
    okCodes: [],
    builtBy: 'tools.ts criuDumpArgs (run by held-dumps.ts through sh -c)',
    upstream: [...memory, ...dumpExtras],
  },
  {
    tool: 'criu',
    argv: dump([], []),
    okCodes: [],
    builtBy: 'tools.ts criuDumpArgs (no pre-dump before it)',
    upstream: [...memory, ...dumpExtras],
  },
  {
    tool: 'criu',
    argv: dump(prevArgs, ['--root', '<root>']),
    okCodes: [],
    builtBy: 'tools.ts criuDumpArgs (with a root; no caller passes one yet: issue 13 item 1)',
    upstream: [...memory, ...dumpExtras, { words: '--root <root>', source: criuShort }],
  },
  {
    tool: 'haul-hold-frozen',
    argv: [],
    okCodes: [],
    builtBy: "held-dumps.ts holdScript, exec'd by criu with CRTOOLS_SCRIPT_ACTION set",
    upstream: [
      {
        words: 'no arguments; the action in CRTOOLS_SCRIPT_ACTION',
        source: 'checkpoint-restore/criu@2cf8f13:criu/action-scripts.c run_shell_scripts',
      },
    ],
  },
  {
    tool: 'ploop',
    argv: ['snapshot', '-u', '<guid>', '-o', '<dd.xml>'],
    okCodes: [],
    builtBy: 'tools.ts ploopSnapshot (offline; shared-disk.ts prepare)',
    upstream: [
      { words: '-u <guid>, -o', source: ploopSnap },
      { words: '<dd.xml> must end in .xml', source: 'OpenVZ/ploop@d5c202b:tools/common.c is_xml_fname' },
    ],
  },
  {
    tool: 'ploop',
    argv: ['snapshot', '-u', '<guid>', '<dd.xml>'],
    okCodes: [],
    builtBy: 'tools.ts ploopSnapshot (online, on the backup copy; shared-disk.ts prepare)',
    upstream: [{ words: '-u <guid>', source: ploopSnap }],
  },
  {
    tool: 'ploop',
    argv: ['snapshot-delete', '-u', '<guid>', '<dd.xml>'],
    okCodes: [],
    builtBy: 'tools.ts ploopSnapshotDelete',
    upstream: [
      {
        words: '-u <guid>',
        source: 'OpenVZ/ploop@d5c202b:tools/ploop.c plooptool_snapshot_delete (getopt "u:")',
      },
    ],
  },
];

/** One line per argv, as docs/host-contract.md lists them. */
export const contractLine = (e: ContractEntry): string => [e.tool, ...e.argv].join(' ');
