import { accessSync, closeSync, constants, fstatSync, openSync, readSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { stepTimeoutsMs } from '@haul/bus';
import { CommandFailedError, tailOf, type Runner } from './exec.ts';
import type { VzDump, VzFreeze } from './vz-checkpoint.ts';

/** vzctl's exit status for a CT that already runs (libvzctl lib/vzerror.h 63, VZCTL_E_ENV_RUN). */
export const vzctlEnvRun = 32;

/**
 * The exact command lines haul runs (host-tools.md §2–§5), one function each. The real tools in production; the
 * emulators when their folder is first on PATH.
 */
export type Tools = ReturnType<typeof createTools>;

/**
 * haul holds the CT lock itself for the migration's life (lockSource), so its own vzctl calls skip it, as vzmigrate's
 * do (VEObj::operateVE: --skiplock --skipowner --ignore-ha-cluster).
 */
const vz = ['--skipowner', '--skiplock'];

/** Freezing through the CT's freezer cgroup and the controllers to dump: pre-dumps and the final dump alike. */
const freezeArgs = (f: VzFreeze) => [
  '--freeze-cgroup',
  f.freezeCgroup,
  ...f.controllers.flatMap((c) => ['--cgroup-dump-controller', c]),
];

/** The rest of VZ's final dump: root, external mounts and devices, cgroup roots (vz-checkpoint.ts). */
const vzDumpArgs = (d: VzDump) => [
  '--root',
  d.root,
  ...freezeArgs(d),
  ...d.extMountMaps.flatMap((m) => ['--ext-mount-map', m]),
  ...d.externals.flatMap((e) => ['--external', e]),
  ...d.cgroupRoots.flatMap((r) => ['--cgroup-root', r]),
];
/** Where PATH finds `tool`: the first folder of it that has an executable file of that name; undefined for none. */
export function pathOf(tool: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  for (const dir of (env['PATH'] ?? '').split(':')) {
    if (dir === '') continue;
    try {
      accessSync(join(dir, tool), constants.X_OK);
      return join(dir, tool);
    } catch {
      // not here: the next folder of PATH
    }
  }
  return undefined;
}

/** Is `tool` on PATH? libvzctl calls shaman only where it is installed (lib/ha.c is_bin_present). */
export const toolOnPath = (tool: string, env: NodeJS.ProcessEnv = process.env): boolean =>
  pathOf(tool, env) !== undefined;

/**
 * criu's answers that depend only on its binary and the running kernel: the agent asks them at start, at every
 * preflight and every check, through a runner that keeps them while the binary is unchanged (binary-memo.ts).
 */
export const criuFactCalls = {
  version: ['criu', '-V'],
  memTrack: ['criu', 'check', '--feature', 'mem_dirty_track'],
} as const satisfies Record<string, readonly string[]>;

/**
 * What every dump passes: the task, the images dir, the work dir, and for a dump of a pre-dump chain, memory tracking
 * and the parent. Tracking only there, as P.Haul sets it (phaul/iters.py 155: `memory_tracking(use_pre_dumps)`, sent
 * with every request, criu_api.py 69): criu refuses `--track-mem` on a kernel without dirty tracking
 * (criu/config.c 1129–1132, "Tracking memory is not available"), the very host where haul dumps without pre-dumps.
 * A pre-dump always tracks (criu enforces it, cr-dump.c 1946–1948), so it always says so.
 */
const memoryArgs = (pid: number, dir: string, workDir: string, prev: string | undefined, track: boolean) => [
  '-t',
  String(pid),
  '-D',
  dir,
  '-W',
  workDir,
  ...(track ? ['--track-mem'] : []),
  ...(prev ? ['--prev-images-dir', prev] : []),
];

/** A CT as `vzctl status` reports it. `running` includes a paused CT: its tasks exist, frozen. */
export type CtStatus = { exist: boolean; mounted: boolean; running: boolean; paused: boolean };

/**
 * `VEID <ctid> exist|deleted mounted|unmounted running|paused|down|suspended` (vzctl src/vzctl.c Show, 42ab7b3
 * lines 1461–1470; VZ7's v7.0.146 prints `down` and then ` suspended`). `paused` is a running CT whose freezer
 * cgroup is FROZEN (libvzctl lib/env_nsops.c ns_env_get_cpt_state, ebbfc38 lines 1830–1845): `vzctl pause`. Not
 * criu holding a dump at post-dump: it thaws the freezer once it has seized the tasks (criu/seize.c 658–662;
 * docs/host-contract.md). Its tasks exist, so it is running, not down.
 */
export function parseVzctlStatus(stdout: string): CtStatus {
  const words = stdout.trim().split(/\s+/);
  const paused = words.includes('paused');
  return {
    exist: words.includes('exist'),
    mounted: words.includes('mounted'),
    running: paused || words.includes('running'),
    paused,
  };
}

/** The logs criu writes in its work dir (`-o`): where its errors are. */
export const criuLogs = { preDump: 'pre-dump.log', dump: 'dump.log' } as const;

/**
 * The last lines of a log a tool wrote (criu with `-o`: its errors go there, not to stderr, criu/log.c
 * vprint_on_level 360–390); '' when there is none.
 */
export function logTail(file: string): string {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return '';
  }
  try {
    // Only its end: a log can be large, and the tail is what a failure event carries.
    const size = fstatSync(fd).size;
    const buf = Buffer.alloc(Math.min(size, 64 * 1024));
    const got = readSync(fd, buf, 0, buf.length, size - buf.length);
    return tailOf(buf.subarray(0, got).toString('utf8'));
  } finally {
    closeSync(fd);
  }
}

/**
 * The values of calls made at once, once every one has ended; the first failure when one failed. Promise.all would
 * fail at the first and leave the others running past the step's outcome.
 */
export async function allEnded<T extends readonly unknown[] | []>(
  calls: T,
): Promise<{ -readonly [K in keyof T]: Awaited<T[K]> }> {
  const ended = await Promise.allSettled(calls);
  const failed = ended.find((r) => r.status === 'rejected');
  if (failed?.status === 'rejected') throw failed.reason;
  return ended.map((r) => (r as PromiseFulfilledResult<unknown>).value) as {
    -readonly [K in keyof T]: Awaited<T[K]>;
  };
}

/**
 * `ploop list`'s lines: the device's name and its base delta. ploop 9 prints `name\tbase[\tcomponent]` (lib/dm.c
 * display_entry), read by tabs, so a path with a space stays whole; ploop 7 `%-12s %s %s %s` (tools/ploop.c
 * plooptool_list at v7.0.280), read by blanks. A line that starts with a blank is a further delta of the device above
 * (-f), not a device.
 */
export function parsePloopList(stdout: string): { device: string; base: string }[] {
  return stdout.split('\n').flatMap((line) => {
    const [device, base] = line.split(line.includes('\t') ? '\t' : / +/);
    return device && base ? [{ device, base }] : [];
  });
}

export function createTools(run: Runner, signal?: AbortSignal) {
  const o = (timeoutMs: number, okCodes: number[] = []) =>
    signal ? { timeoutMs, okCodes, signal } : { timeoutMs, okCodes };
  /**
   * A call that must not be cut off half done, so it runs to its end (RunOptions.toItsEnd): a ploop that changes a
   * device and then its descriptor; a vzctl that restores or starts the CT, whose tasks outlive a vzctl killed
   * half-way (they leave its process group as it makes them), after which vzctl says the CT runs (32) where it is
   * only half made.
   */
  const toItsEnd = (timeoutMs: number, okCodes: number[] = []) => ({
    ...o(timeoutMs, okCodes),
    toItsEnd: true,
  });
  return {
    async vzctlStatus(ctid: string): Promise<CtStatus> {
      const r = await run('vzctl', ['status', ctid], o(stepTimeoutsMs.quick));
      return parseVzctlStatus(r.stdout);
    },
    vzctlStart: (ctid: string) =>
      run('vzctl', [...vz, 'start', ctid], toItsEnd(stepTimeoutsMs.vzctl, [vzctlEnvRun])),
    vzctlStop: (ctid: string) => run('vzctl', [...vz, 'stop', ctid], o(stepTimeoutsMs.vzctl)),
    /**
     * The CT's tasks killed at once, with no halt inside it (vzctl's M_KILL: src/vzctl.c 2162, libvzctl
     * lib/env_nsops.c ns_env_stop 1506–1509): for a source CT that must not run beside the target's.
     */
    vzctlStopFast: (ctid: string) => run('vzctl', [...vz, 'stop', ctid, '--fast'], o(stepTimeoutsMs.vzctl)),
    /** exit 40 = not mounted: already the wanted state. */
    vzctlUmount: (ctid: string) => run('vzctl', [...vz, 'umount', ctid], o(stepTimeoutsMs.vzctl, [40])),
    /** Register the CT here, forced (its owner rewritten), the HA resource left to haul (vzmigrate's flags). */
    vzctlRegister: (vePrivate: string, ctid: string) =>
      run('vzctl', ['--ignore-ha-cluster', 'register', vePrivate, ctid, '--force'], o(stepTimeoutsMs.vzctl)),
    vzctlUnregister: (ctid: string) =>
      run('vzctl', ['--skipowner', '--ignore-ha-cluster', 'unregister', ctid], o(stepTimeoutsMs.vzctl)),
    /** The HA resource to this node, as libvzctl registers a CT there (lib/ha.c shaman_add_resource). */
    shamanAdd: (ctid: string, prio: string, vePrivate: string) =>
      run(
        'shaman',
        ['-i', 'add', `ct-${ctid}`, '--prio', prio, '--path', vePrivate, '--force'],
        o(stepTimeoutsMs.quick),
      ),
    /**
     * vcmmd forgets the CT: what libvzctl's vcmm_unregister asks over D-Bus after a dump (lib/cr_criu.c chkpnt
     * 254–256, lib/vcmm.c 205–218), by vcmmd's own client (OpenVZ/vcmmd vcmmd/cli.py _handle_unregister 179–191).
     */
    vcmmdctlUnregister: (ctid: string) => run('vcmmdctl', ['unregister', ctid], o(stepTimeoutsMs.quick)),
    /**
     * exit 32 (vzctlEnvRun) = the CT already runs here: nothing was restored. A failed restore's criu errors reach
     * vzctl's stdout, not its stderr: libvzctl greps " Error " out of criu's log (lib/cr_criu.c restore_fin
     * 311–322), then says on stderr where the log is; the failure carries those lines before the stderr.
     */
    vzctlRestore: (ctid: string, dir: string) =>
      run(
        'vzctl',
        [...vz, 'restore', ctid, '--skip_arpdetect', '--dumpfile', dir],
        toItsEnd(stepTimeoutsMs.vzctl, [vzctlEnvRun]),
      ).catch((e: unknown) => {
        if (!(e instanceof CommandFailedError) || e.why !== 'exit') throw e;
        throw e.withLog(
          e.stdout
            .split('\n')
            .filter((l) => l.includes(' Error '))
            .join('\n'),
        );
      }),
    async criuVersion(): Promise<string> {
      const r = await run('criu', criuFactCalls.version.slice(1), o(stepTimeoutsMs.quick));
      return /Version:\s+(\S+)/.exec(r.stdout)?.[1] ?? 'unknown';
    },
    async criuMemTrack(): Promise<boolean> {
      const r = await run('criu', criuFactCalls.memTrack.slice(1), o(stepTimeoutsMs.quick, [1]));
      return r.exitCode === 0;
    },
    /** Only the `/dev/<uuid>` map of the CT's disks, which its dump needs (libvzctl lib/cr_criu.c criu_cmd). */
    vzctlCreateDevmap: (ctid: string) =>
      run('vzctl', [...vz, 'suspend', ctid, '--create-devmap'], o(stepTimeoutsMs.vzctl)),
    /**
     * The CT's own sysctls (virtualized per VE, `/proc/sys/...`): read in its ve cgroup, as VZ's post-dump action
     * does (libvzctl scripts/vz-cpt-action.in 115–124; vz-checkpoint.ts vzSideFiles), all by one cat, which prints
     * them one after the other (each one line ending in a newline).
     */
    cgexecCatAll: (ctid: string, veProcs: string[]) =>
      run('cgexec', ['-g', `ve:${ctid}`, 'cat', ...veProcs], o(stepTimeoutsMs.quick)),
    /**
     * The device and partition a disk is attached as on this node ('' when not attached): ploop prints both, empty
     * when there is none (`device:\t\t%s\n`, tools/ploop.c plooptool_info, at d5c202b). Blanks within the line only: an
     * empty field is not the next line's name.
     */
    async ploopDevice(ddXml: string): Promise<{ device: string; partition: string }> {
      const r = await run('ploop', ['info', '-d', ddXml], o(stepTimeoutsMs.quick));
      const field = (k: string) => new RegExp(`^${k}:[ \\t]*(\\S*)`, 'm').exec(r.stdout)?.[1] ?? '';
      return { device: field('device'), partition: field('partition') };
    },
    /**
     * Every ploop device of this node and its base delta (`ploop list`: no descriptor read or locked, so an
     * unreadable descriptor cannot hide a device, where `ploop info -d` prints an empty device and exits 0 when it
     * cannot lock the descriptor: tools/ploop.c plooptool_info → lib/ploop.c ploop_get_dev, at d5c202b).
     */
    async ploopList(): Promise<{ device: string; base: string }[]> {
      const r = await run('ploop', ['list'], o(stepTimeoutsMs.quick));
      return parsePloopList(r.stdout);
    },
    criuPreDump: (pid: number, dir: string, workDir: string, prev: string | undefined, f: VzFreeze) => {
      // A log an earlier pre-dump left would pass for this one's if this criu failed before opening its own.
      rmSync(join(workDir, criuLogs.preDump), { force: true });
      return run(
        'criu',
        [
          'pre-dump',
          ...memoryArgs(pid, dir, workDir, prev, true),
          ...freezeArgs(f),
          '--skip-in-flight',
          '--timeout',
          '180',
          '-o',
          criuLogs.preDump,
          '-v2',
        ],
        o(stepTimeoutsMs.criu),
      ).catch((e: unknown) => {
        throw e instanceof CommandFailedError ? e.withLog(logTail(join(workDir, criuLogs.preDump))) : e;
      });
    },
    /** Argv of the final dump, held open at post-dump by the action script (spawned detached, not through run). */
    criuDumpArgs: (
      pid: number,
      dir: string,
      workDir: string,
      prev: string | undefined,
      script: string,
      d: VzDump,
    ) => [
      'dump',
      ...memoryArgs(pid, dir, workDir, prev, prev !== undefined),
      '--tcp-established',
      '--file-locks',
      '--link-remap',
      '--evasive-devices',
      '--manage-cgroups',
      ...(d.cgroupPropsFile ? ['--cgroup-props-file', d.cgroupPropsFile] : []),
      '--ghost-limit',
      '50M',
      ...vzDumpArgs(d),
      '--action-script',
      script,
      '--timeout',
      '180',
      '-o',
      criuLogs.dump,
      '-v2',
    ],
    ploopSnapshot: (ddXml: string, guid: string, offline: boolean) =>
      run(
        'ploop',
        ['snapshot', '-u', guid, ...(offline ? ['-o'] : []), ddXml],
        toItsEnd(stepTimeoutsMs.ploop),
      ),
    ploopSnapshotDelete: (ddXml: string, guid: string) =>
      run('ploop', ['snapshot-delete', '-u', guid, ddXml], toItsEnd(stepTimeoutsMs.ploop)),
  };
}
