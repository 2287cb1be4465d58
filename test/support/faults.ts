import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MigrationEvent, StepName } from '@haul/schemas';
import type { CtWorld, FaultRule } from './world.ts';

/**
 * How to make each host step of a live migration fail. Steps that run a host tool fail through the emulators'
 * fault plan; the others through a fault of the host itself. The matrix is generated from the core's list of
 * forward steps, so a new step without an entry here fails this test.
 */
export type Injection = {
  rules?: FaultRule[];
  /** Prepare the world before the migration; undo what was planted after it. */
  plant?: (w: CtWorld) => () => void;
  streamerEnv?: Record<string, Record<string, string>>;
  /** For one run: an observer of the migration's events that injects the fault when its moment comes. */
  watch?: (w: CtWorld) => (e: MigrationEvent) => void;
  /** Rolled back before the commit point; completed after it. */
  expect: 'MigrationRolledBack' | 'MigrationCompleted';
  /** Other steps the same fault fails as well, one of which may fail first (they run at the same time). */
  alsoFails?: StepName[];
  /** The first failure's error code, when the case is about it. */
  code?: string;
};

export const injections: Record<string, Injection> = {
  preflightTarget: {
    rules: [
      {
        tool: 'vzctl',
        sub: 'status',
        node: 'node-b',
        call: 1,
        action: 'fail',
        exitCode: 3,
        stderr: 'injected',
      },
    ],
    expect: 'MigrationRolledBack',
  },
  preflightSource: {
    rules: [
      {
        tool: 'vzctl',
        sub: 'status',
        node: 'node-a',
        call: 1,
        action: 'fail',
        exitCode: 3,
        stderr: 'injected',
      },
    ],
    expect: 'MigrationRolledBack',
  },
  // Someone else holds the CT's vzctl lock (a live process: this test): the migration must not touch the CT.
  lockSource: {
    plant: (w) => {
      const lock = join(w.cluster.nodeRoot('node-a'), 'vz', 'lock', `${w.ctid}.lck`);
      writeFileSync(lock, `${process.pid}\nstopping\n`);
      return () => rmSync(lock, { force: true });
    },
    expect: 'MigrationRolledBack',
  },
  preDump: {
    rules: [
      {
        tool: 'criu',
        sub: 'pre-dump',
        call: 2,
        action: 'fail',
        exitCode: 1,
        stderr: 'Error (criu/cr-dump.c): injected',
      },
    ],
    expect: 'MigrationRolledBack',
  },
  // The target streamer may only write below a folder that does not hold the image root: every offer is refused.
  streamImages: {
    streamerEnv: { 'node-b': { HAUL_STREAM_ROOTS: '/nonexistent-haul-root' } },
    expect: 'MigrationRolledBack',
    // The local disk's first live pass goes through the same streamer, beside the first image transfer.
    alsoFails: ['copyLocalDisk'],
  },
  finalDump: {
    rules: [
      {
        tool: 'criu',
        sub: 'dump',
        call: 1,
        action: 'fail',
        exitCode: 1,
        stderr: 'Error (criu/cr-dump.c): injected',
      },
    ],
    expect: 'MigrationRolledBack',
  },
  // A directory where the backup's temporary file must go: the copy fails (EISDIR), as on a broken disk.
  backupDescriptor: {
    plant: (w) => {
      const p = join(w.shared[0]!, 'DiskDescriptor.xml.copy.tmp');
      mkdirSync(p);
      return () => rmSync(p, { recursive: true, force: true });
    },
    expect: 'MigrationRolledBack',
  },
  snapshotOrigin: {
    rules: [
      {
        tool: 'ploop',
        sub: 'snapshot',
        match: '(^| )-o( |$)',
        call: 1,
        action: 'fail',
        exitCode: 156,
        stderr: 'injected',
      },
    ],
    expect: 'MigrationRolledBack',
  },
  snapshotCopy: {
    rules: [
      {
        tool: 'ploop',
        sub: 'snapshot',
        match: 'DiskDescriptor\\.copy\\.xml',
        call: 1,
        action: 'fail',
        exitCode: 156,
        stderr: 'injected',
      },
    ],
    expect: 'MigrationRolledBack',
  },
  // A file where the local disk's folder must be created on the target.
  copyLocalDisk: {
    plant: (w) => {
      const p = join(w.cluster.nodeRoot('node-b'), 'vz', 'private', w.ctid, 'root.hdd');
      mkdirSync(join(p, '..'), { recursive: true });
      writeFileSync(p, 'in the way');
      return () => rmSync(p, { force: true });
    },
    expect: 'MigrationRolledBack',
  },
  restore: {
    rules: [
      {
        tool: 'vzctl',
        sub: 'restore',
        call: 1,
        action: 'fail',
        exitCode: 17,
        stderr: 'Failed to restore the Container',
      },
    ],
    expect: 'MigrationRolledBack',
  },
  // After the commit point the target's registration fails once: retried, never undone; the CT ends owned there.
  takeOwnership: {
    rules: [
      {
        tool: 'vzctl',
        sub: 'register',
        node: 'node-b',
        call: 1,
        action: 'fail',
        exitCode: 255,
        stderr: 'injected',
      },
    ],
    expect: 'MigrationCompleted',
  },
  // After the commit point nothing is undone: the source agent dies as it commits, and the step is reconciled.
  releaseSource: {
    rules: [],
    watch: (w) => {
      let killed = false;
      return (e) => {
        if (killed || e.type !== 'StepIntended' || e.data.step !== 'releaseSource') return;
        killed = true;
        void w.services
          .get('agent-node-a')!
          .kill('SIGKILL')
          .then(() => w.startAgent('node-a'));
      };
    },
    expect: 'MigrationCompleted',
  },
};

/**
 * More ways for one step to fail, beyond its case in `injections`: the final dump fails after criu froze the CT and
 * holds its dump (the CT's sysctls, read beside the images at post-dump, cannot be read): the CT must not stay frozen.
 */
/** The first `ploop snapshot` of the copy (snapshotCopy's) killed at `at`. */
const copySnapshotKilled = (at: 'kill-before-store' | 'kill-after-delta'): FaultRule => ({
  tool: 'ploop',
  sub: 'snapshot',
  match: 'DiskDescriptor\\.copy\\.xml',
  call: 1,
  action: at,
});

export const moreInjections: { step: StepName; what: string; injection: Injection }[] = [
  {
    step: 'finalDump',
    what: 'after the freeze',
    injection: {
      rules: [
        {
          tool: 'cgexec',
          node: 'node-a',
          match: ' cat /proc/sys/',
          call: 1,
          action: 'fail',
          exitCode: 1,
          stderr: 'cat: /proc/sys/kernel/injected: No such file or directory',
        },
      ],
      expect: 'MigrationRolledBack',
      code: 'HAUL_DUMP_FAILED_FROZEN',
    },
  },
  {
    // ploop dies after it made the origin's new delta and stored DiskDescriptor.xml.tmp naming it, before the rename:
    // the rollback finds its snapshot's store cut short and removes it with the delta (shared-disk.ts).
    step: 'snapshotOrigin',
    what: 'killed before its descriptor is stored',
    injection: {
      rules: [
        { tool: 'ploop', sub: 'snapshot', match: '(^| )-o( |$)', call: 1, action: 'kill-before-store' },
      ],
      expect: 'MigrationRolledBack',
    },
  },
  {
    // ploop dies after it switched the source's device to the copy's new delta, before the rename: only
    // DiskDescriptor.xml.copy.tmp names the delta the CT writes once it runs again. The rollback finishes that
    // snapshot (the device's sysfs shows it writes the delta) and merges it; the invariants find every block the CT
    // wrote, and its device opening the chain its descriptor names.
    step: 'snapshotCopy',
    what: 'killed before its descriptor is stored',
    injection: {
      rules: [copySnapshotKilled('kill-before-store')],
      expect: 'MigrationRolledBack',
    },
  },
  {
    // ploop dies after it made the copy's new delta, before it switched the device: the rollback undoes that
    // snapshot (its .tmp and its delta), as ploop's own failure would have.
    step: 'snapshotCopy',
    what: 'killed before its device is switched',
    injection: {
      rules: [copySnapshotKilled('kill-after-delta')],
      expect: 'MigrationRolledBack',
    },
  },
];
