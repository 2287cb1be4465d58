import type { StepName } from '@haul/schemas';
import { errorCodes } from './errors.ts';

/** Who runs a step: the node agent or the image streamer, on the source or the target node. */
export type StepPlacement = { executor: 'agent' | 'streamer'; role: 'source' | 'target' };

/** How long the coordinator waits for a step's result before it records the step as failed (timed out). */
export type TimeoutClass = 'criu' | 'ploop' | 'vzctl' | 'stream' | 'quick';

export type StepKind = 'forward' | 'compensation' | 'cleanup';

export type StepSpec = StepPlacement & {
  kind: StepKind;
  timeout: TimeoutClass;
  /** What the step changes on a host; 'none' for checks. Documented in docs/protocol.md. */
  effect: string;
  /** A failed attempt may still have left a partial effect (so rollback reconciles it by inspection). */
  failureMayLeaveEffect: boolean;
  /** Failures that may have left the effect, of a step whose failures otherwise leave none (in doubt, as a timeout). */
  inDoubtCodes?: readonly string[];
};

/** The one table of host steps. The fault matrix, the compensation table and the docs are derived from it. */
export const stepTable: Record<StepName, StepSpec> = {
  preflightSource: {
    executor: 'agent',
    role: 'source',
    kind: 'forward',
    timeout: 'quick',
    effect: 'creates the image folder',
    failureMayLeaveEffect: true,
  },
  preflightTarget: {
    executor: 'agent',
    role: 'target',
    kind: 'forward',
    timeout: 'quick',
    effect: 'creates the image folder',
    failureMayLeaveEffect: true,
  },
  preDump: {
    executor: 'agent',
    role: 'source',
    kind: 'forward',
    timeout: 'criu',
    effect: 'writes image dir i',
    failureMayLeaveEffect: false,
  },
  streamImages: {
    executor: 'streamer',
    role: 'source',
    kind: 'forward',
    timeout: 'stream',
    effect: 'writes image dir i on the target',
    failureMayLeaveEffect: false,
  },
  finalDump: {
    executor: 'agent',
    role: 'source',
    kind: 'forward',
    timeout: 'criu',
    effect: 'CT frozen, dump held open',
    // criu undoes a dump that fails before the freeze. The handler goes on after it (the CT's sysctls beside the
    // images): a failure there leaves the CT frozen, and says so by its code; so does a held dump that ended after
    // the freeze without a decision (its criu killed while it held the CT, found ended by the command delivered again).
    failureMayLeaveEffect: false,
    inDoubtCodes: [errorCodes.dumpFailedFrozen, errorCodes.dumpEnded],
  },
  backupDescriptor: {
    executor: 'agent',
    role: 'source',
    kind: 'forward',
    timeout: 'quick',
    effect: 'DiskDescriptor.xml.copy',
    failureMayLeaveEffect: true,
  },
  snapshotOrigin: {
    executor: 'agent',
    role: 'source',
    kind: 'forward',
    timeout: 'ploop',
    effect: 'origin: base relabelled G1, new top delta f1',
    failureMayLeaveEffect: true,
  },
  snapshotCopy: {
    executor: 'agent',
    role: 'source',
    kind: 'forward',
    timeout: 'ploop',
    effect: 'copy: new top delta f2, source device writes f2',
    failureMayLeaveEffect: true,
  },
  copyLocalDisk: {
    executor: 'streamer',
    role: 'source',
    kind: 'forward',
    timeout: 'stream',
    effect: "a copy of a local disk in the target's private area",
    failureMayLeaveEffect: true,
  },
  restore: {
    executor: 'agent',
    role: 'target',
    kind: 'forward',
    timeout: 'vzctl',
    effect: 'CT running on the target',
    failureMayLeaveEffect: true,
  },
  releaseSource: {
    executor: 'agent',
    role: 'source',
    kind: 'forward',
    timeout: 'criu',
    effect: 'dump confirmed, source tasks killed',
    failureMayLeaveEffect: true,
  },
  stopSource: {
    executor: 'agent',
    role: 'source',
    kind: 'forward',
    timeout: 'vzctl',
    effect: 'CT stopped and unmounted on the source',
    failureMayLeaveEffect: true,
  },
  startTarget: {
    executor: 'agent',
    role: 'target',
    kind: 'forward',
    timeout: 'vzctl',
    effect: 'CT running on the target',
    failureMayLeaveEffect: true,
  },
  resumeSource: {
    executor: 'agent',
    role: 'source',
    kind: 'compensation',
    timeout: 'criu',
    effect: 'dump aborted, CT runs on the source',
    failureMayLeaveEffect: true,
  },
  restoreSharedDisk: {
    executor: 'agent',
    role: 'source',
    kind: 'compensation',
    timeout: 'ploop',
    effect: 'descriptor back to the original chain; f1, f2, copy, copy.lck gone',
    failureMayLeaveEffect: true,
  },
  stopTarget: {
    executor: 'agent',
    role: 'target',
    kind: 'compensation',
    timeout: 'vzctl',
    effect: 'CT stopped and unmounted on the target',
    failureMayLeaveEffect: true,
  },
  removeFiles: {
    executor: 'agent',
    role: 'source',
    kind: 'compensation',
    timeout: 'quick',
    effect: 'paths removed',
    failureMayLeaveEffect: true,
  },
  startSource: {
    executor: 'agent',
    role: 'source',
    kind: 'compensation',
    timeout: 'vzctl',
    effect: 'CT running on the source again',
    failureMayLeaveEffect: true,
  },
  umountSource: {
    executor: 'agent',
    role: 'source',
    kind: 'cleanup',
    timeout: 'vzctl',
    effect: 'CT disks unmounted on the source',
    failureMayLeaveEffect: true,
  },
  cleanupSharedDisk: {
    executor: 'agent',
    role: 'source',
    kind: 'cleanup',
    timeout: 'quick',
    effect: 'copy, copy.lck and f2 removed',
    failureMayLeaveEffect: true,
  },
  mergeOrigin: {
    executor: 'agent',
    role: 'target',
    kind: 'cleanup',
    timeout: 'ploop',
    effect: 'f1 merged into the base on the target',
    failureMayLeaveEffect: true,
  },
  // Ownership and the CT lock (docs/protocol.md, "Ownership and the CT lock").
  lockSource: {
    executor: 'agent',
    role: 'source',
    kind: 'forward',
    timeout: 'quick',
    effect: "the CT lock LOCKDIR/<ctid>.lck held for the migration (status 'migrating')",
    failureMayLeaveEffect: false,
  },
  takeOwnership: {
    executor: 'agent',
    role: 'target',
    kind: 'forward',
    timeout: 'vzctl',
    effect: 'HA resource moved to the target; CT registered and owned ($VE_PRIVATE/.owner) on the target',
    failureMayLeaveEffect: true,
  },
  unlockSource: {
    executor: 'agent',
    role: 'source',
    kind: 'compensation',
    timeout: 'quick',
    effect: "the migration's CT lock released",
    failureMayLeaveEffect: true,
  },
  releaseOwnership: {
    executor: 'agent',
    role: 'source',
    kind: 'cleanup',
    timeout: 'vzctl',
    effect: 'CT unregistered on the source (.owner and the registration gone, an unregistered config kept)',
    failureMayLeaveEffect: true,
  },
};

/** Forward steps whose failure a test can inject, in the order a live migration runs them. */
export const liveForwardSteps: readonly StepName[] = [
  'preflightTarget',
  'preflightSource',
  'lockSource',
  'preDump',
  'streamImages',
  'finalDump',
  'backupDescriptor',
  'snapshotOrigin',
  'snapshotCopy',
  'copyLocalDisk',
  'restore',
  'takeOwnership',
  'releaseSource',
];

export const restartForwardSteps: readonly StepName[] = [
  'preflightTarget',
  'preflightSource',
  'lockSource',
  'stopSource',
  'copyLocalDisk',
  'startTarget',
  'takeOwnership',
];

/** The steps that mark the commit point: once one succeeded, the migration only rolls forward. */
export const commitSteps: readonly StepName[] = ['restore', 'startTarget'];
