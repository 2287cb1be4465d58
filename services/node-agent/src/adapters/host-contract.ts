import { vzControllers, vzSideFiles } from './vz-checkpoint.ts';
import { vzctlEnvRun } from './tools.ts';

/**
 * The host contract: every command line haul runs on a host, with placeholders for the values, the exit codes haul
 * takes as success, the function that builds it, and the upstream source that accepts each of its options.
 * docs/host-contract.md mirrors this list; services/node-agent/test/host-contract.int.test.ts checks that tools.ts
 * (every one of its builders), held-dumps.ts, descriptor-lock.ts, ct-lock.ts and the image streamer's disk-pass.ts
 * build exactly these argv, that the doc lists exactly these, and runs each against the strict emulators.
 *
 * Upstream revisions read: OpenVZ/ploop e49c878 (v7.0.280, the ploop the emulator follows: docs/host-contract.md,
 * "Which ploop") and d5c202b (v9.0.30), OpenVZ/vzctl 42ab7b3 (v9.0.1), OpenVZ/libvzctl
 * ebbfc38 (v8.0.90), checkpoint-restore/criu 2cf8f13 (v4.2-22), OpenVZ/vzmigrate 67a5a95 (v7.0.152),
 * util-linux/util-linux 39465c7, checkpoint-restore/p.haul 02199d8. cgexec is libcgroup's, run as VZ's scripts run it;
 * shaman's own sources were not available: its argv is libvzctl's.
 */
export interface ContractEntry {
  tool:
    | 'vzctl'
    | 'criu'
    | 'ploop'
    | 'haul-hold-frozen'
    | 'shaman'
    | 'cgexec'
    | 'flock'
    | 'haul-hold-ct-lock'
    | 'haul-ploop-track'
    | 'vcmmdctl';
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
const ploopSnap =
  'OpenVZ/ploop@e49c878 (v7.0.280):tools/ploop.c plooptool_snapshot (getopt "Fd:u:b:o", 650); the same at d5c202b';

const memory = [
  { words: '-t <pid>, -D <dir>, -W <workdir>, -v2', source: criuShort },
  { words: '--track-mem, --prev-images-dir <prev>, --timeout 180, -o <log>', source: criuTable },
];
const libvzctl = 'OpenVZ/libvzctl@ebbfc38';
const phaul = 'checkpoint-restore/p.haul@02199d8:phaul/p_haul_vz.py';

/** Where VZ's action scripts save (post-dump) and write back (post-restore) each per-VE sysctl, by its /proc file. */
const sysctlSources: Record<string, { cpt: string; rst: string; also?: string }> = {
  '/proc/sys/kernel/core_pattern': {
    cpt: '115–116',
    rst: '167–169',
    also: `; ${phaul} __post_final_dump 240–245, __create_cgexec_extra_image 258–267`,
  },
  '/proc/sys/fs/fsync-enable': { cpt: '117–120', rst: '170–173' },
  '/proc/sys/fs/odirect_enable': { cpt: '121–122', rst: '174–176' },
  '/proc/sys/kernel/randomize_va_space': { cpt: '123–124', rst: '177–179' },
};

/**
 * The one `cgexec … cat` read of every post-dump side file (vz-checkpoint.ts vzSideFiles, in that order), with the
 * sources of each: vz-cpt-action runs one cgexec per file, haul one cat of them all.
 */
function cgexecSysctlEntry(): ContractEntry {
  const files = vzSideFiles.flatMap((f) => (f.at === 'post-dump' ? [f] : []));
  const sources = files.map((f) => {
    const src = sysctlSources[f.veProc];
    if (!src) throw new Error(`no upstream source recorded for the side file ${f.image}`);
    return { f, src };
  });
  const only = sources.flatMap(({ f, src }) =>
    f.onlyIfHost
      ? [`; a host without ${f.onlyIfHost} leaves ${f.veProc} out, vz-cpt-action.in ${src.cpt.split('–')[0]}`]
      : [],
  );
  return {
    tool: 'cgexec',
    argv: ['-g', 've:<ctid>', 'cat', ...files.map((f) => f.veProc)],
    okCodes: [],
    builtBy: `tools.ts cgexecCatAll (dumps.ts finalDump, the CT held frozen at post-dump, only the files not saved yet; line i of stdout into file i's image; vz-checkpoint.ts vzSideFiles${only.join('')})`,
    upstream: [
      ...sources.map(({ f, src }) => ({
        words: `-g ve:<ctid> cat ${f.veProc} (the same argv, one run per file), into ${f.image}`,
        source: `${libvzctl}:scripts/vz-cpt-action.in ${src.cpt} (post-dump)${src.also ?? ''}`,
      })),
      {
        words: 'written back at post-restore when the file exists',
        source: `${libvzctl}:scripts/vz-rst-action.in ${sources.map(({ src }) => src.rst).join(', ')}`,
      },
    ],
  };
}

/** The words VZ's checkpoint adds to pre-dumps and dumps alike (tools.ts freezeArgs). */
const freezeWords = [
  '--freeze-cgroup',
  '<freezer-cgroup>',
  ...vzControllers.flatMap((c) => ['--cgroup-dump-controller', c]),
];
const freezeSources = [
  {
    words: '--freeze-cgroup <freezer-cgroup>, --cgroup-dump-controller <controller> (repeated)',
    source: `${criuTable} 667, 680`,
  },
  {
    words:
      'why: the CT is frozen through its freezer cgroup (<mount>/machine.slice/<ctid>/), these controllers dumped',
    source: `${phaul} adjust_criu_req 176–187, cgroup_controllers 40–55; ${libvzctl}:scripts/vz-cpt.in 99–113, 126; lib/cr_criu.c dump 193–196 (VE_FREEZE_CG)`,
  },
];
/** The words only the final dump has (tools.ts vzDumpArgs); the two lists are repeated per mount and per disk. */
const vzDumpWords = [
  '--root',
  '<root>',
  ...freezeWords,
  '--ext-mount-map',
  '<mount>:<key>',
  '--external',
  'dev[<major>/<minor>]:<uuid>',
  '--cgroup-root',
  '/machine.slice/<ctid>',
  '--cgroup-root',
  've:/<ctid>',
  '--cgroup-root',
  'beancounter:/<ctid>',
  '--cgroup-root',
  'name=systemd:/<ctid>',
];
const vzDumpSources = [
  ...freezeSources,
  { words: '--root <root>', source: `${criuShort}; ${criuTable} 633` },
  {
    words: '--root is VE_ROOT',
    source: `${libvzctl}:scripts/vz-cpt.in 125; ${phaul} 158`,
  },
  {
    words:
      '--ext-mount-map <mount>:<key> (-M; one per CT-visible cgroup mount, then one <dst>:<src> per bind mount)',
    source: `${criuShort} ('M:'), ${criuTable} 657, case 'M' 945–963`,
  },
  {
    words: 'which mounts: cgroup mounts without a cgroup namespace; BINDMOUNT entries with a source',
    source: `${libvzctl}:scripts/vz-cpt.in 45–53, lib/cgroup.c cg_get_cgroup_env_param 722–751, lib/cr_criu.c make_ext_mount_args 83–108; ${phaul} vz_cgroup_mount_map 25–38, __fill_vz_cgroup_ext_mount_map 189–208`,
  },
  {
    words: '--external dev[<major>/<minor>]:<uuid> (one per secondary ploop disk, its partition)',
    source: `${criuTable} 672, case 1073 964–969; use: criu/mount.c try_resolve_ext_mount 500–523`,
  },
  {
    words: 'which devices: the ploop partitions, after the /dev/<uuid> map',
    source: `${libvzctl}:scripts/vz-cpt.in 55–68, lib/cr_criu.c make_ploop_dev_args_no_envvar 121–159, create_ploop_dev_map 49–81; ${phaul} 166–170 (--vz-secondary-disks)`,
  },
  {
    words: '--cgroup-root <root> (four)',
    source: `${criuTable} 660, case 1061 884–899; ${libvzctl}:scripts/vz-cpt.in 41–42, 136`,
  },
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
  ...freezeWords,
  '--skip-in-flight',
  '--timeout',
  '180',
  '-o',
  'pre-dump.log',
  '-v2',
];
/** `--cgroup-props-file`, passed when the host has libvzctl's file (vz-checkpoint.ts vzCgroupPropsConf). */
const propsArgs = ['--cgroup-props-file', '<props-file>'];
const dump = (prev: string[], props: string[]) => [
  'dump',
  '-t',
  '<pid>',
  '-D',
  '<dir>',
  '-W',
  '<workdir>',
  ...(prev.length > 0 ? ['--track-mem'] : []),
  ...prev,
  '--tcp-established',
  '--file-locks',
  '--link-remap',
  '--evasive-devices',
  '--manage-cgroups',
  ...props,
  '--ghost-limit',
  '50M',
  ...vzDumpWords,
  '--action-script',
  '<script>',
  '--timeout',
  '180',
  '-o',
  'dump.log',
  '-v2',
];
const prevArgs = ['--prev-images-dir', '<prev>'];
const propsSources = [
  {
    words: '--cgroup-props-file <scriptdir>/cgroup-props.conf (file and option added together, f8a5a16)',
    source: `${libvzctl}:scripts/vz-cpt.in 39, 123 (vz-rst.in 81, 127 on restore)`,
  },
  {
    words: '--cgroup-props-file FILE; a file that cannot be opened fails the dump',
    source:
      'checkpoint-restore/criu@2cf8f13:criu/config.c 679, 986; criu/cgroup-props.c cgp_parse_file 370–378',
  },
];

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
    okCodes: [vzctlEnvRun],
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
    argv: ['--skipowner', '--skiplock', 'stop', '<ctid>', '--fast'],
    okCodes: [],
    builtBy: 'tools.ts vzctlStopFast',
    upstream: [
      { words: '--skipowner, --skiplock', source: vzctlMain },
      {
        words: 'stop --fast (M_KILL: no halt inside the CT)',
        source: 'OpenVZ/vzctl@42ab7b3:src/vzctl.c stop_options / ParseStopOptions, main 2162',
      },
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
    okCodes: [vzctlEnvRun],
    builtBy: 'tools.ts vzctlRestore',
    upstream: [
      { words: '--skipowner, --skiplock', source: vzctlMain },
      {
        words: '--skip_arpdetect, --dumpfile <dir>',
        source: 'OpenVZ/vzctl@42ab7b3:src/vzctl.c restore_options / ParseMigrationOptions',
      },
      { words: 'restore runs vz-rst (criu restore)', source: 'OpenVZ/libvzctl@ebbfc38:scripts/vz-rst.in' },
      {
        words: 'exit 32: the CT already runs, nothing restored',
        source: 'OpenVZ/libvzctl@ebbfc38:lib/env.c vzctl_env_restore 1274–1276, lib/vzerror.h 63',
      },
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
    upstream: [...memory, ...freezeSources, { words: '--skip-in-flight', source: criuTable }],
  },
  {
    tool: 'criu',
    argv: preDump(prevArgs),
    okCodes: [],
    builtBy: 'tools.ts criuPreDump (later iterations)',
    upstream: [...memory, ...freezeSources, { words: '--skip-in-flight', source: criuTable }],
  },
  {
    tool: 'criu',
    argv: dump(prevArgs, propsArgs),
    okCodes: [],
    builtBy: "tools.ts criuDumpArgs (run by held-dumps.ts through sh -c, with the host's cgroup-props.conf)",
    upstream: [...memory, ...dumpExtras, ...vzDumpSources, ...propsSources],
  },
  {
    tool: 'criu',
    argv: dump(prevArgs, []),
    okCodes: [],
    builtBy: 'tools.ts criuDumpArgs (run by held-dumps.ts through sh -c, the host without cgroup-props.conf)',
    upstream: [...memory, ...dumpExtras, ...vzDumpSources],
  },
  {
    tool: 'criu',
    argv: dump([], propsArgs),
    okCodes: [],
    builtBy: "tools.ts criuDumpArgs (no pre-dump before it, with the host's cgroup-props.conf)",
    upstream: [...memory, ...dumpExtras, ...vzDumpSources, ...propsSources],
  },
  {
    tool: 'criu',
    argv: dump([], []),
    okCodes: [],
    builtBy: 'tools.ts criuDumpArgs (no pre-dump before it, the host without cgroup-props.conf)',
    upstream: [...memory, ...dumpExtras, ...vzDumpSources],
  },
  {
    tool: 'vzctl',
    argv: ['--skipowner', '--skiplock', 'suspend', '<ctid>', '--create-devmap'],
    okCodes: [],
    builtBy: 'tools.ts vzctlCreateDevmap (dumps.ts prepareDumpDevices: before the first dump)',
    upstream: [
      { words: '--skipowner, --skiplock', source: vzctlMain },
      {
        words: 'suspend <ctid> --create-devmap',
        source:
          'OpenVZ/vzctl@42ab7b3:src/vzctl.c chkpnt_options 330, ParseMigrationOptions 675–677, main 1893–1899',
      },
      {
        words: 'makes only the /dev/<uuid> links of the running CT',
        source: `${libvzctl}:lib/env.c vzctl_env_chkpnt 1176–1177, lib/cr_criu.c criu_cmd 462–472, create_ploop_dev_map 49–81`,
      },
    ],
  },
  {
    tool: 'ploop',
    argv: ['info', '-d', '<dd.xml>'],
    okCodes: [],
    builtBy:
      'tools.ts ploopDevice (dumps.ts prepareDumpDevices: the partition of each secondary disk, before the first dump)',
    upstream: [
      {
        words: '-d: prints device:\t\t<dev> and partition:\t<part>',
        source:
          'OpenVZ/ploop@e49c878 (v7.0.280):tools/ploop.c plooptool_info (getopt "sdb") 1098–1180, -d 1156–1171; d5c202b 1139–1222',
      },
    ],
  },
  {
    tool: 'ploop',
    argv: ['list'],
    okCodes: [],
    builtBy:
      "tools.ts ploopList (lifecycle.ts requireDetached: after the CT's unmount, no device of the node holds a disk of it; shared-disk.ts deviceTopOf: the device of a disk whose snapshot was cut short, its deltas then read from /sys/block/<dev>/pdelta/<level>/image, device-chain.ts)",
    upstream: [
      {
        words: 'list (no operand): a line per device, its name and its base delta',
        source:
          'OpenVZ/ploop@e49c878 (v7.0.280):tools/ploop.c plooptool_list 1190–1254 ("%-12s %s %s %s", 1249, from /sys/block/ploopN/pdelta/0/image); d5c202b: (getopt "af") → lib/dm.c ploop_list, display_entry, "name\\tbase"',
      },
    ],
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
  cgexecSysctlEntry(),
  {
    tool: 'ploop',
    argv: ['snapshot', '-u', '<guid>', '-o', '<dd.xml>'],
    okCodes: [],
    builtBy: 'tools.ts ploopSnapshot (offline; shared-disk.ts prepare)',
    upstream: [
      { words: '-u <guid>, -o', source: ploopSnap },
      {
        words: '<dd.xml> must end in .xml',
        source:
          'OpenVZ/ploop@e49c878 (v7.0.280):tools/common.c is_xml_fname 124–132, called by plooptool_snapshot',
      },
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
        source:
          'OpenVZ/ploop@e49c878 (v7.0.280):tools/ploop.c plooptool_snapshot_delete (getopt "u:", 818); the same at d5c202b',
      },
    ],
  },
];

const libvzctlVz = 'OpenVZ/libvzctl@ebbfc38:lib/vz.c';

/** Ownership and the CT lock (docs/protocol.md, "Ownership and the CT lock"). */
hostContract.push(
  {
    tool: 'vzctl',
    argv: ['--ignore-ha-cluster', 'register', '<private>', '<ctid>', '--force'],
    okCodes: [],
    builtBy: 'tools.ts vzctlRegister (ownership.ts takeOwnership)',
    upstream: [
      { words: '--ignore-ha-cluster (VZ_REG_SKIP_HA_CLUSTER)', source: vzctlMain },
      {
        words: 'register <path> <ctid> (the path before the ctid)',
        source: 'OpenVZ/vzctl@42ab7b3:src/vzctl.c main (action "register")',
      },
      {
        words: '--force (VZ_REG_FORCE)',
        source: 'OpenVZ/vzctl@42ab7b3:src/vzctl.c register_options / ParseRegisterOptions',
      },
      { words: '.owner, the /etc/vz/conf link', source: `${libvzctlVz} vzctl2_env_register` },
      {
        words: 'forced, HA left to the caller, as vzmigrate registers a CT it moved',
        source: 'OpenVZ/vzmigrate@67a5a95:bin/veentry.cpp VEObj::registration',
      },
    ],
  },
  {
    tool: 'vzctl',
    argv: ['--skipowner', '--ignore-ha-cluster', 'unregister', '<ctid>'],
    okCodes: [],
    builtBy: 'tools.ts vzctlUnregister (ownership.ts releaseOwnership)',
    upstream: [
      { words: '--skipowner, --ignore-ha-cluster', source: vzctlMain },
      {
        words: 'unregister (no options: switch default; not locked)',
        source: 'OpenVZ/vzctl@42ab7b3:src/vzctl.c main (case ACTION_UNREGISTER)',
      },
      {
        words: 'refuses a running CT (32); removes .owner and the link',
        source: `${libvzctlVz} vzctl2_env_unreg`,
      },
    ],
  },
  {
    tool: 'shaman',
    argv: ['-i', 'add', 'ct-<ctid>', '--prio', '<prio>', '--path', '<private>', '--force'],
    okCodes: [],
    builtBy: 'tools.ts shamanAdd (ownership.ts takeOwnership)',
    upstream: [
      {
        words: '-i add ct-<ctid> --prio --path --force (the same argv)',
        source: 'OpenVZ/libvzctl@ebbfc38:lib/ha.c shaman_add_resource',
      },
      {
        words: 'the HA resource moved to the target before it registers the CT',
        source: 'OpenVZ/vzmigrate@67a5a95:bin/migratedst.cpp registerOnHaCluster (runHaman "add")',
      },
    ],
  },
  {
    tool: 'vcmmdctl',
    argv: ['unregister', '<ctid>'],
    okCodes: [],
    builtBy:
      'tools.ts vcmmdctlUnregister (dumps.ts releaseSource after the commit, only where vz-checkpoint.ts managedByVcmmd; a failure is ignored)',
    upstream: [
      {
        words: 'unregister <VE name> (D-Bus UnregisterVE)',
        source: 'OpenVZ/vcmmd@4dec0d4:vcmmd/cli.py _handle_unregister 179–191',
      },
      {
        words:
          'vcmmd_unregister_ve after the dump, result ignored; only when /usr/sbin/vcmmdctl exists, not on cgroup v2',
        source: `${libvzctl}:lib/cr_criu.c chkpnt 254–256, lib/vcmm.c 196–218`,
      },
    ],
  },
  {
    tool: 'flock',
    argv: ['--exclusive', '--timeout', '60', '<dd.xml>.lck', 'sh', '-c', '<holder>'],
    okCodes: [],
    builtBy:
      'descriptor-lock.ts descriptorLockArgv (shared-disk.ts locked: the rollback rename, sweepOrphans)',
    upstream: [
      {
        words: '--exclusive, --timeout <secs>, FILE COMMAND ARGS',
        source:
          'util-linux/util-linux@39465c7:sys-utils/flock.c main (long_options, getopt "+:sexnoFuw:E:hV?")',
      },
      {
        words: '<dd.xml>.lck, 60 s: the lock and timeout ploop uses',
        source: 'OpenVZ/ploop@d5c202b:lib/lock.c ploop_lock_di / do_lock (LOCK_TIMEOUT)',
      },
    ],
  },
  {
    tool: 'haul-hold-ct-lock',
    argv: ['<lockfile>', '<migration>'],
    okCodes: [],
    builtBy: 'ct-lock.ts takeCtLock (run through sh, detached)',
    upstream: [
      {
        words: 'LOCKDIR/<ctid>.lck: "<pid>\\n<status>\\n" made by link(2), stale when its pid is gone',
        source: 'OpenVZ/libvzctl@ebbfc38:lib/lock.c _lock_file',
      },
      {
        words: 'status "migrating", held for the whole migration',
        source: 'OpenVZ/vzmigrate@67a5a95:bin/veentry.cpp VEObj::lock (vzctl2_env_lock_prvt)',
      },
    ],
  },
);

const ploopCopy = 'OpenVZ/ploop@d5c202b:lib/ploop-copy.c';
const ploopCopy7 = 'OpenVZ/ploop@e49c878 (v7.0.280):lib/ploop-copy.c';
const trackHelperSource = {
  words: "haul's own helper, not an upstream tool: its emulator (no real-host implementation yet)",
  source:
    'haul:host-emulators/src/track/cli.ts trackMain; haul:services/image-streamer/src/disk-pass.ts trackHelper',
};

/**
 * The image streamer's write tracker for the passes of a live local-disk copy (docs/protocol.md, "Local disks, in
 * passes"): what libploop does inside `ploop copy`, one step per call. Exit 3: no tracker runs; 40: not mounted here.
 */
hostContract.push(
  {
    tool: 'haul-ploop-track',
    argv: ['start', '<dd.xml>'],
    okCodes: [],
    builtBy: 'image-streamer disk-pass.ts planPass (pass 0)',
    upstream: [
      trackHelperSource,
      {
        words: 'start tracking the writes to the top delta of the mounted disk (one already running goes on)',
        source: `${ploopCopy} ploop_copy_start 1169 → process_start 1084–1097 (dm_tracking_start: lib/dm.c 323, dm-ploop message "tracking_start"); ploop ≤ 7: ${ploopCopy7} ploop_copy_start 919–950 (PLOOP_IOC_TRACK_INIT, PLOOP_IOC_TRACK_SETPOS)`,
      },
    ],
  },
  {
    tool: 'haul-ploop-track',
    argv: ['take', '--sync', '<dd.xml>'],
    okCodes: [],
    builtBy: 'image-streamer disk-pass.ts planPass (every later pass, the final one too)',
    upstream: [
      trackHelperSource,
      {
        words: 'take: the extents written since the last take, with those taken and not acknowledged',
        source: `${ploopCopy} ploop_copy_next_iteration 1199 → process_next 1134–1160 (dm_tracking_get_next: lib/dm.c 361, "tracking_get_next"); ploop ≤ 7: ${ploopCopy7} ploop_copy_next_iteration 978–1019 (PLOOP_IOC_TRACK_READ, PLOOP_IOC_TRACK_SETPOS)`,
      },
      {
        words: '--sync: the file system written back first (syncfs on the mount)',
        source: `${ploopCopy7} freeze_fs 1057–1064 (sys_syncfs before FIFREEZE); OpenVZ/ploop@d5c202b:lib/ploop.c sys_syncfs 116`,
      },
    ],
  },
  {
    tool: 'haul-ploop-track',
    argv: ['ack', '<dd.xml>'],
    okCodes: [],
    builtBy: 'image-streamer disk-pass.ts planPass (done, after a pass that is not the final one)',
    upstream: [
      trackHelperSource,
      {
        words:
          "ack: forget the extents taken last (haul's own step, none in libploop: until it, a pass run again takes them again)",
        source: `nearest libploop call: ${ploopCopy} process_start 1118 (dm_tracking_clear: lib/dm.c 347, "tracking_clear")`,
      },
    ],
  },
);

/** One line per argv, as docs/host-contract.md lists them. */
export const contractLine = (e: ContractEntry): string => [e.tool, ...e.argv].join(' ');
