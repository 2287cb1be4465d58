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
  cancelTooLate: 'HAUL_CANCEL_TOO_LATE',
  downtimeBudget: 'HAUL_DOWNTIME_BUDGET',
  /** A step gave no result within its timeout (recorded by the coordinator). */
  stepTimeout: 'HAUL_STEP_TIMEOUT',
  /** A transfer moved no bytes for `stallMs` (recorded by the coordinator). */
  streamStalled: 'HAUL_STREAM_STALLED',
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
  targetRebooted: 'HAUL_TARGET_REBOOTED',
  /**
   * A node agent refused a command (CommandRejected, with the field): a path that does not resolve, after symlinks,
   * inside the node's roots (docs/protocol.md, "Paths on the host"). Nothing was touched.
   */
  pathOutsideRoots: 'HAUL_PATH_OUTSIDE_ROOTS',
  /** A node agent refused a final dump whose lease is longer than the node's cap (HAUL_MAX_LEASE_MS). */
  leaseTooLong: 'HAUL_LEASE_TOO_LONG',
  /**
   * An executor refused a command delivered to it that names another node or executor: it says nothing about the
   * command itself, which its addressee may run (packages/bus's command queue, the agents' and streamers' apps).
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
