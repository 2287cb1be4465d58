/**
 * The error codes the migration core decides, defined once (docs/api.md lists them). They go on the wire: as the
 * code of a refused API request or of a StepFailed the coordinator records.
 */
export const errorCodes = {
  migrationExists: 'HAUL_MIGRATION_EXISTS',
  sameNode: 'HAUL_SAME_NODE',
  badRequest: 'HAUL_BAD_REQUEST',
  unknownMigration: 'HAUL_UNKNOWN_MIGRATION',
  migrationFinished: 'HAUL_MIGRATION_FINISHED',
  /** A cancel past the commit point, or while it is under way (RestoreStarted, or restart mode's start intended). */
  cancelTooLate: 'HAUL_CANCEL_TOO_LATE',
  downtimeBudget: 'HAUL_DOWNTIME_BUDGET',
  /** A step gave no result within its timeout (recorded by the coordinator). */
  stepTimeout: 'HAUL_STEP_TIMEOUT',
  /** A transfer moved no bytes for `stallMs` (recorded by the coordinator). */
  streamStalled: 'HAUL_STREAM_STALLED',
  /**
   * An agent's word that a command the coordinator gave up never ran on its host (fencing.ts neverRanHere): its
   * executor has ended it (StepRecord.executorEnded).
   */
  notRun: 'HAUL_NOT_RUN',
  /** retry or resolve of a migration that is not waiting for an operator. */
  notStuck: 'HAUL_NOT_STUCK',
  /** resolve names another action than the one the migration is stuck on. */
  resolveWrongAction: 'HAUL_RESOLVE_WRONG_ACTION',
  /** resolve of a forward step: only compensations and cleanup actions can be done by hand. */
  resolveForwardStep: 'HAUL_RESOLVE_FORWARD_STEP',
  /** retry of an action that reached the highest attempt number a command may carry. */
  attemptsExhausted: 'HAUL_ATTEMPTS_EXHAUSTED',
  /** A fence refuses: the CT may run on the target (also the agents' fence verdicts). */
  fenced: 'HAUL_FENCED',
  /**
   * The migration's log does not start with its MigrationRequested: the stream dropped its oldest events. Both fences
   * refuse it (fencing.ts, wholeLog): no restore starts on the target, a CT frozen on the source stays frozen, and one
   * whose held dump ended is stopped there (a RestoreStarted may be among the dropped events).
   */
  logIncomplete: 'HAUL_LOG_INCOMPLETE',
  targetRebooted: 'HAUL_TARGET_REBOOTED',
  /**
   * A node agent refused a command (CommandRejected, with the field): a path that does not resolve, after symlinks,
   * inside the node's roots (docs/protocol.md, "Paths on the host"). Nothing was touched.
   */
  pathOutsideRoots: 'HAUL_PATH_OUTSIDE_ROOTS',
  /** A node agent refused a final dump whose lease is longer than the node's cap (HAUL_MAX_LEASE_MS). */
  leaseTooLong: 'HAUL_LEASE_TOO_LONG',
  /**
   * An executor refused a command delivered to it that names another node or executor, which says nothing about the
   * command itself (its addressee may run it); or, from the addressee, one of a step it has no handler for (an older
   * version than the coordinator's), which fails the step like any refusal by the addressee (evolve.ts; the agents'
   * and streamers' apps).
   */
  wrongExecutor: 'HAUL_WRONG_EXECUTOR',
  /** An executor's handler threw something that is not a bus failure: parked; what it did before is in doubt. */
  commandUnhandled: 'HAUL_COMMAND_UNHANDLED',
  /** A cancel of a migration that is already rolling back (also one stuck in its rollback): nothing to cancel. */
  alreadyRollingBack: 'HAUL_ALREADY_ROLLING_BACK',
  /** The preflight found the CT's disks unmigratable, or not the shared disks the request declared. */
  preflightSharedDisk: 'HAUL_PREFLIGHT_SHARED_DISK',
  /** The target has less free space than the CT's memory images or its local disks' copies need. */
  preflightNoRoom: 'HAUL_PREFLIGHT_NO_ROOM',
  /**
   * The CT's private area is not a ploop CT's (its .ve.layout is not 5) on the source, or the target has one of another
   * layout where the CT's would go.
   */
  preflightNotPloop: 'HAUL_PREFLIGHT_NOT_PLOOP',
  /**
   * The CT's action scripts ($VE_PRIVATE/scripts) on the source and on the target differ: haul does not move them, and
   * vzctl on the target would run what is there.
   */
  preflightActionScripts: 'HAUL_PREFLIGHT_ACTION_SCRIPTS',
  /** A request signed with a key the registry does not know, or a signature that does not match it. */
  badSignature: 'HAUL_BAD_SIGNATURE',
  /** In a secure cluster, an unsigned request that changes a migration (migrate, cancel, retry, resolve). */
  unsignedRequest: 'HAUL_UNSIGNED_REQUEST',
  /** A request that changes a migration, signed by a registered identity that may not ask it (only the scheduler). */
  signerNotAllowed: 'HAUL_SIGNER_NOT_ALLOWED',
  /** A check could not ask a node agent what it sees of the CT (no agent answered on haul.inspect.<node>). */
  nodeNoAnswer: 'HAUL_NODE_NO_ANSWER',
  /** A stream offer whose manifest or target folder would write outside the receiver's roots (the field is named). */
  unsafeManifest: 'HAUL_UNSAFE_MANIFEST',
  /** A stream offer from a node with no streamer registration, or naming another data address than it registered. */
  unregisteredPeer: 'HAUL_UNREGISTERED_PEER',
  /**
   * A stream offer no open intent of its migration's log asks for: no StepIntended of a transfer with its id, from its
   * node to this one, into its folder (or that transfer ended). Nothing was created.
   */
  offerNotIntended: 'HAUL_OFFER_NOT_INTENDED',
  /** A stream offer from a node that already has as many transfers running into this streamer as one peer may. */
  streamerBusy: 'HAUL_STREAMER_BUSY',
  /** lockSource: another process (a vzctl, another migration tool) holds the CT's lock; nothing was changed. */
  ctLocked: 'HAUL_CT_LOCKED',
  /** A shared disk's descriptor lock (ploop's DiskDescriptor.xml.lck) was not had within ploop's own timeout. */
  descriptorLocked: 'HAUL_DESCRIPTOR_LOCKED',
  /** takeOwnership: the target has no config of the CT to register. */
  noConfig: 'HAUL_NO_CONFIG',
  /**
   * A live local-disk copy cannot go on: the host's write tracker on the mounted disk is gone (the disk was unmounted,
   * or tracking stopped) or its helper failed. The extents written since the last pass are unknown: the copy is
   * given up (the migration rolls back; the CT keeps running on the source).
   */
  diskTracking: 'HAUL_DISK_TRACKING',

  // Admission (the coordinator's migrate, check and evacuate answers; docs/api.md "Admission").
  /** Another migration of this CT is admitted and not finished. */
  ctBusy: 'HAUL_CT_BUSY',
  /** The source or the target already takes part in as many migrations as a node may. */
  nodeBusy: 'HAUL_NODE_BUSY',
  /** The source or the target has no heartbeat, or one that is not a heartbeat. */
  nodeUnknown: 'HAUL_NODE_UNKNOWN',
  /** The source or the target has a stale heartbeat. */
  nodeDown: 'HAUL_NODE_DOWN',
  /** The request id hashes to the migration id of another request id (never seen; refused, not merged). */
  requestIdCollision: 'HAUL_REQUEST_ID_COLLISION',
  /**
   * The request id is admitted for another CT or other nodes, and that request's MigrationRequested is not in the log
   * yet (its append under way, or its coordinator died): one request id is one migration.
   */
  requestIdReused: 'HAUL_REQUEST_ID_REUSED',
  /** The admission ledger could not be written: too many other writers at once (retryable). */
  ledgerContended: 'HAUL_LEDGER_CONTENDED',
  /** A bug or an unreachable store behind an API answer; retryable (the same request id is then safe). */
  internal: 'HAUL_INTERNAL',

  // The preflight's checks of the CT on both nodes (with the field).
  preflightNoConfig: 'HAUL_PREFLIGHT_NO_CONFIG',
  preflightNotRunning: 'HAUL_PREFLIGHT_NOT_RUNNING',
  preflightTargetRunning: 'HAUL_PREFLIGHT_TARGET_RUNNING',
  preflightCpu: 'HAUL_PREFLIGHT_CPU',
  preflightCriuVersion: 'HAUL_PREFLIGHT_CRIU_VERSION',
  /** A shared disk has a DiskDescriptor.xml.copy beside it that no step of this migration made (live mode). */
  preflightBackupLeft: 'HAUL_PREFLIGHT_BACKUP_LEFT',
  /** The target holds files where a local disk's copy goes, that no step of this migration made (restart mode). */
  preflightLocalDiskLeft: 'HAUL_PREFLIGHT_LOCAL_DISK_LEFT',

  // What the executors report in a StepFailed (the agents' host steps, the streamers' transfers).
  /** A host tool exited with a status the step does not accept (`command`, `exitCode`, `stderrTail`). */
  toolFailed: 'HAUL_TOOL_FAILED',
  /** A host tool ran past its step's timeout and was killed. */
  toolTimeout: 'HAUL_TOOL_TIMEOUT',
  /** A host tool was killed because its agent is stopping. */
  toolCancelled: 'HAUL_TOOL_CANCELLED',
  /** A failure of the agent itself, outside any tool. */
  agentError: 'HAUL_AGENT_ERROR',
  /** A fenced append that neither won nor lost its compare-and-set in its tries (retryable). */
  fenceContended: 'HAUL_FENCE_CONTENDED',
  /** A shared-disk preparation step while no dump of its migration holds the CT frozen. */
  notHeld: 'HAUL_NOT_HELD',
  /** A shared-disk step without the descriptor's backup copy (DiskDescriptor.xml.copy). */
  noBackup: 'HAUL_NO_BACKUP',
  /** snapshotCopy before the origin's snapshot is in the descriptor. */
  noOriginSnapshot: 'HAUL_NO_ORIGIN_SNAPSHOT',
  /**
   * A shared disk whose descriptor could not be brought back to its state before the migration (a snapshot of the
   * migration left in it, or a backup copy that does not read as a whole descriptor, left as it is).
   */
  diskNotRestored: 'HAUL_DISK_NOT_RESTORED',
  /**
   * A snapshot of the copy cut short after it made its delta, on a host that does not show which deltas a device
   * opens (no ploop 7 `pdelta` in sysfs): whether the source's device writes that delta is not known, so the disk is
   * left as it is, for an operator.
   */
  snapshotInDoubt: 'HAUL_SNAPSHOT_IN_DOUBT',
  /**
   * A restore run again found the CT running on the target, and no sign that vzctl finished restoring it (no
   * `<dump dir>.restore`): it may run from a restore cut short. Nothing is committed on it; the rollback stops it.
   */
  restoreInDoubt: 'HAUL_RESTORE_IN_DOUBT',
  /** The CT does not run where a step needs it running. */
  ctNotRunning: 'HAUL_CT_NOT_RUNNING',
  /** The CT runs where a step needs it stopped. */
  ctRunning: 'HAUL_CT_RUNNING',
  /** The source's unmount left a disk of the CT attached (its root disk unmounted, another one not). */
  diskAttached: 'HAUL_DISK_ATTACHED',
  /** A resume found the CT's tasks paused (frozen) after criu let go of them. */
  ctPaused: 'HAUL_CT_PAUSED',
  /** The held final dump ended after the freeze, before its decision (criu exited, or its hold was lost): in doubt. */
  dumpEnded: 'HAUL_DUMP_ENDED',
  /** The final dump failed after criu froze the CT and held its dump: the CT may still be frozen (in doubt). */
  dumpFailedFrozen: 'HAUL_DUMP_FAILED_FROZEN',
  /** The held dump's criu ended otherwise after the commit decision, and the CT still runs after vzctl stop --fast. */
  releaseFailed: 'HAUL_RELEASE_FAILED',
  /** A transfer failed (the connection, the receiver's answer, a chunk's checksum). */
  streamFailed: 'HAUL_STREAM_FAILED',
  /** A failure of the streamer itself, outside any transfer. */
  streamerError: 'HAUL_STREAMER_ERROR',
  /** Every data port of the streamer's range is taken. */
  streamPortsExhausted: 'HAUL_STREAM_PORTS_EXHAUSTED',
} as const;

export type ErrorCode = (typeof errorCodes)[keyof typeof errorCodes];

/** Failures the coordinator records when it gives up waiting: the step's effect is in doubt, not known absent. */
export const givenUpCodes: readonly string[] = [errorCodes.stepTimeout, errorCodes.streamStalled];

/** A command the migration core refuses in the current state; the code is stable and goes on the wire. */
export class CommandRejectedError extends Error {
  readonly code: string;
  readonly field: string | undefined;
  constructor(code: ErrorCode, message: string, field?: string) {
    super(message);
    this.name = 'CommandRejectedError';
    this.code = code;
    this.field = field;
  }
}
