/* Generated from schemas/json/*.schema.json by `npm run gen:types`. Do not edit: change the schema and regenerate. */

/**
 * Migration id: a token safe for a NATS subject.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "MigrationId".
 */
export type MigrationId = string;
/**
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "AbsolutePath".
 */
export type AbsolutePath = string;
/**
 * Container id: a numeric veid from 1 to 2147483647 (INT_MAX, the largest vzctl takes: libvzctl vzctl2_parse_ctid), without leading zeros (vzctl would read 0101 as CT 101), or a VZ7 UUID-like id.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "Ctid".
 */
export type Ctid = string;
/**
 * A host's name as used in NATS subjects: lowercase letters, digits and dashes.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "NodeName".
 */
export type NodeName = string;
/**
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "Timestamp".
 */
export type Timestamp = string;
/**
 * The reply to haul.api.check (a MigrateRequest, checked and never started): whether the migration would be admitted and pass its preflight now, what it would copy, and the downtime predicted from what the source inspected now and what earlier migrations measured (the CT's dirty rate, the dump, link and restore speeds), or assumed where none did; or the request's own refusal.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "CheckReply".
 */
export type CheckReply = CheckAnswered | ApiRejected;
/**
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "Mode".
 */
export type Mode = 'live' | 'restart';
/**
 * A command to a node agent or image streamer (subject haul.cmd.<node>.<executor>). The same object is recorded in the StepIntended event before it is sent.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "StepCommand".
 */
export type StepCommand = StepCommand1 & StepCommand2;
export type StepCommand1 =
  | PreflightSourceCommand
  | PreflightTargetCommand
  | PreDumpCommand
  | StreamImagesCommand
  | FinalDumpCommand
  | BackupDescriptorCommand
  | SnapshotOriginCommand
  | SnapshotCopyCommand
  | CopyLocalDiskCommand
  | RestoreCommand
  | ReleaseSourceCommand
  | StopSourceCommand
  | StartTargetCommand
  | ResumeSourceCommand
  | RestoreSharedDiskCommand
  | StopTargetCommand
  | RemoveFilesCommand
  | StartSourceCommand
  | UmountSourceCommand
  | CleanupSharedDiskCommand
  | MergeOriginCommand
  | LockSourceCommand
  | TakeOwnershipCommand
  | UnlockSourceCommand
  | ReleaseOwnershipCommand;
/**
 * This migration's image folder on the node, decided by the core.
 */
export type AbsolutePath1 = string;
/**
 * A ploop snapshot GUID with braces.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "Guid".
 */
export type Guid = string;
/**
 * <migrationId>:<step>:<subject>:<attempt>, decided by the migration core. It becomes a NATS msg-id header and part of event ids: bounded, no whitespace or control characters.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "CommandId".
 */
export type CommandId = string;
/**
 * A host's name as used in NATS subjects: lowercase letters, digits and dashes.
 */
export type NodeName1 = string;
/**
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "StepName".
 */
export type StepName =
  | 'preflightSource'
  | 'preflightTarget'
  | 'preDump'
  | 'streamImages'
  | 'finalDump'
  | 'backupDescriptor'
  | 'snapshotOrigin'
  | 'snapshotCopy'
  | 'copyLocalDisk'
  | 'restore'
  | 'releaseSource'
  | 'stopSource'
  | 'startTarget'
  | 'resumeSource'
  | 'restoreSharedDisk'
  | 'stopTarget'
  | 'removeFiles'
  | 'startSource'
  | 'umountSource'
  | 'cleanupSharedDisk'
  | 'mergeOrigin'
  | 'lockSource'
  | 'takeOwnership'
  | 'unlockSource'
  | 'releaseOwnership';
/**
 * A registered identity of the cluster (identities.json): a role, or <role>@<node> for agents and streamers.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "IdentityName".
 */
export type IdentityName = string;
/**
 * An event's id, also its NATS msg-id (deduplication): a command id or migration id with a suffix such as ':result'; also an event's causationId (the command or event that caused it). Bounded, no whitespace or control characters.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "EventId".
 */
export type EventId = string;
/**
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "PreDumpSetting".
 */
export type PreDumpSetting = 'on' | 'off' | 'auto';
/**
 * What to do when the predicted downtime never fits the budget.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "DowntimePolicy".
 */
export type DowntimePolicy = 'abort' | 'proceed';
/**
 * This service's identity: the nkey seed file haul init-cluster wrote (<identity>.nk). Logs in to NATS and signs what the service publishes. Set this or credsFile.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "NkeySeedFile".
 */
export type NkeySeedFile = string;
/**
 * This service's identity as a NATS .creds file (user JWT and nkey seed; haul init-cluster --auth jwt writes <identity>.creds) for a nats-server in operator mode. Logs in and signs as nkeySeedFile does. Set this or nkeySeedFile.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "CredsFile".
 */
export type CredsFile = string;
/**
 * The cluster's public registry (identities.json): whom to believe for what.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "IdentitiesFile".
 */
export type IdentitiesFile = string;
/**
 * Debugging only: no NATS identity, no TLS, nothing signed or verified, plaintext data connections (a warning at every start).
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "Insecure".
 */
export type Insecure = boolean;
/**
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "EventType".
 */
export type EventType =
  | 'MigrationRequested'
  | 'StepIntended'
  | 'StepSucceeded'
  | 'StepFailed'
  | 'CommandRejected'
  | 'IterationDecided'
  | 'RestoreStarted'
  | 'ResumedOnSource'
  | 'CancelRequested'
  | 'RollbackStarted'
  | 'StreamProgress'
  | 'MigrationStuck'
  | 'RetryRequested'
  | 'ActionResolved'
  | 'MigrationCompleted'
  | 'MigrationRolledBack'
  | 'MigrationSealed';
export type Mode1 = 'live' | 'restart';
export type PreDumpSetting1 = 'on' | 'off' | 'auto';
/**
 * What to do when the predicted downtime never fits the budget.
 */
export type DowntimePolicy1 = 'abort' | 'proceed';
/**
 * Who asked: the registered identity whose signature over the request the coordinator verified (absent when the request was unsigned or the cluster runs with HAUL_INSECURE=1). Why is the request's reason.
 */
export type IdentityName1 = string;
/**
 * The core decided a host step and recorded its command before sending it.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "StepIntendedData".
 */
export type StepIntendedData = StepIntendedData1 & StepIntendedData2;
export type StepIntendedData1 =
  | PreflightSourceCommand
  | PreflightTargetCommand
  | PreDumpCommand
  | StreamImagesCommand
  | FinalDumpCommand
  | BackupDescriptorCommand
  | SnapshotOriginCommand
  | SnapshotCopyCommand
  | CopyLocalDiskCommand
  | RestoreCommand
  | ReleaseSourceCommand
  | StopSourceCommand
  | StartTargetCommand
  | ResumeSourceCommand
  | RestoreSharedDiskCommand
  | StopTargetCommand
  | RemoveFilesCommand
  | StartSourceCommand
  | UmountSourceCommand
  | CleanupSharedDiskCommand
  | MergeOriginCommand
  | LockSourceCommand
  | TakeOwnershipCommand
  | UnlockSourceCommand
  | ReleaseOwnershipCommand;
/**
 * A node agent or streamer finished a step.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "StepSucceededData".
 */
export type StepSucceededData = StepSucceededData1 & StepSucceededData2;
export type StepSucceededData1 =
  | PreflightSourceSucceeded
  | PreflightTargetSucceeded
  | PreDumpSucceeded
  | StreamImagesSucceeded
  | FinalDumpSucceeded
  | BackupDescriptorSucceeded
  | SnapshotOriginSucceeded
  | SnapshotCopySucceeded
  | CopyLocalDiskSucceeded
  | RestoreSucceeded
  | ReleaseSourceSucceeded
  | StopSourceSucceeded
  | StartTargetSucceeded
  | ResumeSourceSucceeded
  | RestoreSharedDiskSucceeded
  | StopTargetSucceeded
  | RemoveFilesSucceeded
  | StartSourceSucceeded
  | UmountSourceSucceeded
  | CleanupSharedDiskSucceeded
  | MergeOriginSucceeded
  | LockSourceSucceeded
  | TakeOwnershipSucceeded
  | UnlockSourceSucceeded
  | ReleaseOwnershipSucceeded;
/**
 * This migration's image folder on this node.
 */
export type AbsolutePath2 = string;
/**
 * The shared-storage root the descriptor lives below (location shared).
 */
export type AbsolutePath3 = string;
/**
 * Where a local disk lives on the target.
 */
export type AbsolutePath4 = string;
/**
 * Wall time (ms) of the host tool processes the step ran, summed (vzctl, criu, ploop; a held final dump until the CT is frozen, a release or resume until criu ended). The rest of the step is the agent's own work: the downtime window's control overhead is derived from it.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "ToolMs".
 */
export type ToolMs = number;
/**
 * Who asked for the cancel: the registered identity whose signature over the request the coordinator verified (absent when the request was unsigned or the cluster runs with HAUL_INSECURE=1). Why is the reason.
 */
export type IdentityName2 = string;
/**
 * A step of one migration: <step>:<subject>, e.g. mergeOrigin:1 or resumeSource:-.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "ActionKey".
 */
export type ActionKey = string;
/**
 * Who asked for the retry: the registered identity whose signature over the request the coordinator verified (absent when the request was unsigned or the cluster runs with HAUL_INSECURE=1). Why is the reason.
 */
export type IdentityName3 = string;
/**
 * Who asked for the resolution: the registered identity whose signature over the request the coordinator verified (absent when the request was unsigned or the cluster runs with HAUL_INSECURE=1). Why is the reason.
 */
export type IdentityName4 = string;
/**
 * Who asked for it (MigrationRequested.requestedBy).
 */
export type IdentityName5 = string;
/**
 * A step of one migration: <step>:<subject>, e.g. mergeOrigin:1 or resumeSource:-.
 */
export type ActionKey1 = string;
/**
 * Who asked (the event's requestedBy; absent when the request was unsigned).
 */
export type IdentityName6 = string;
/**
 * One event of a migration's log (stream HAUL_EVENTS, subject haul.events.<migrationId>): the common envelope and a typed payload per type.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "MigrationEvent".
 */
export type MigrationEvent = MigrationEvent1 & MigrationEvent2;
export type MigrationEvent1 =
  | MigrationRequestedEvent
  | StepIntendedEvent
  | StepSucceededEvent
  | StepFailedEvent
  | CommandRejectedEvent
  | IterationDecidedEvent
  | RestoreStartedEvent
  | ResumedOnSourceEvent
  | CancelRequestedEvent
  | RollbackStartedEvent
  | StreamProgressEvent
  | MigrationStuckEvent
  | RetryRequestedEvent
  | ActionResolvedEvent
  | MigrationCompletedEvent
  | MigrationRolledBackEvent
  | MigrationSealedEvent;
/**
 * How long to wait at start for a coordinator to create the streams and buckets (ms); this service never creates them.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "TopologyWaitMs".
 */
export type TopologyWaitMs = number;
/**
 * The node's image root (HAUL_IMAGE_ROOT): where a migration's image folder would be made; freeBytes is its file system's.
 */
export type AbsolutePath5 = string;
/**
 * What a node agent sees of a CT: the same findings as its preflight (without an image folder: an inspection creates nothing), or why it did not look.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "InspectReply".
 */
export type InspectReply = InspectAnswered | InspectRefused;
/**
 * The reply to a migrate request: accepted with the migration id, or rejected with a code and the failing field.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "MigrateReply".
 */
export type MigrateReply = MigrateAccepted | ApiRejected1;
/**
 * A step of one migration: <step>:<subject>, e.g. mergeOrigin:1 or resumeSource:-.
 */
export type ActionKey2 = string;
/**
 * Reply to status, cancel and list requests.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "StatusReply".
 */
export type StatusReply = StatusOk | ApiRejected1;
/**
 * Target streamer's answer: how much of each file is already verified (the sender resumes from there); on acceptance the target connects to the offer's listener.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "StreamOfferReply".
 */
export type StreamOfferReply = StreamOfferAccepted | StreamOfferReadingBack | ApiRejected1;
/**
 * A host's name as used in NATS subjects: lowercase letters, digits and dashes.
 */
export type NodeName2 = string;
/**
 * When the streamer made this report (its clock).
 */
export type Timestamp1 = string;
/**
 * When bytes last moved; absent before the first byte.
 */
export type Timestamp2 = string;
/**
 * When its last wait on purpose ended.
 */
export type Timestamp3 = string;

/**
 * Ask to cancel a migration (subject haul.api.cancel). Before the commit point it rolls back; after it, it is refused.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "CancelRequest".
 */
export interface CancelRequest {
  migrationId: MigrationId;
  reason?: string;
}
/**
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "CheckedDisk".
 */
export interface CheckedDisk {
  ddxml: AbsolutePath;
  location?: 'shared' | 'private' | 'elsewhere';
  sharedRoot?: AbsolutePath;
  /**
   * shared: the shared-disk steps (nothing copied); copied: streamed to the target's private area; refused: the preflight would fail on it.
   */
  action: 'shared' | 'copied' | 'refused';
  /**
   * Why it is not shared with the target (when it is not).
   */
  why?: string;
  bytes?: number;
}
/**
 * How long the CT would be frozen (live mode; packages/domain downtime-prediction.ts, predictDowntime): the final dump written at the dump speed and streamed at the link's rate (the decider's model, finalDumpMs), the local disks' frozen pass streamed too, the memory loaded by the restore, plus a fixed overhead. Every input named with where it came from; none in restart mode, or without the CT's resident memory.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "DowntimePrediction".
 */
export interface DowntimePrediction {
  predictedMs?: number;
  /**
   * history: every input was measured by earlier migrations or inspected now; estimate: at least one was assumed (its `from` says so).
   */
  basis?: 'history' | 'estimate';
  inputs?: PredictionInputs;
  /**
   * How the prediction was made, or why there is none.
   */
  note: string;
}
/**
 * The numbers a downtime prediction used. memoryBytes: the CT's resident memory (inspected), what the restore loads. dumpedBytes: what the final dump writes — what the CT dirties in one pre-dump window at its measured dirty rate (measured), the whole resident memory without pre-dumps (inspected), or the whole resident memory as a ceiling when no migration of the CT measured its dirty rate (assumed). dirtyPagesPerSec, iterationMs: the CT's dirty rate between the last two pre-dumps of its latest migration that had two, and that last pre-dump's duration. dumpBytesPerSec: the dump speed (the dump of a migration closest in size to dumpedBytes). linkBytesPerSec: the rate between the two nodes (the largest transfer of a migration between them, either way), capped by the request's bandwidth limit. restoreBytesPerSec: the memory a migration's first dump wrote ÷ its restore's duration. frozenDiskBytes: what the local disks' frozen pass streams — measured by the CT's last migration, assumed as one converged live pass (4 MiB) per local disk, or 0 (inspected) without local disks.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "PredictionInputs".
 */
export interface PredictionInputs {
  memoryBytes: PredictionInput;
  dumpedBytes: PredictionInput;
  dirtyPagesPerSec?: PredictionInput;
  iterationMs?: PredictionInput;
  dumpBytesPerSec: PredictionInput;
  linkBytesPerSec: PredictionInput;
  restoreBytesPerSec: PredictionInput;
  frozenDiskBytes: PredictionInput;
}
/**
 * One number of a downtime prediction and where it came from: inspected now (the source agent's inspection), measured by an earlier migration (named), or assumed (a documented default, or a ceiling).
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "PredictionInput".
 */
export interface PredictionInput {
  value: number;
  from: 'inspected' | 'measured' | 'assumed';
  migrationId?: MigrationId;
  ctid?: Ctid;
  source?: NodeName;
  target?: NodeName;
  endedAt?: Timestamp;
  /**
   * linkBytesPerSec: the request's bandwidth limit, below the rate measured or assumed (value is the limit).
   */
  cappedByRequest?: boolean;
}
export interface CheckAnswered {
  ok: true;
  wouldWork: boolean;
  problem?: ErrorInfo;
  ctid: Ctid;
  source: NodeName;
  target: NodeName;
  mode: Mode;
  /**
   * Every disk of the CT as the source found it, and what the migration would do with it.
   *
   * @maxItems 64
   */
  disks: CheckedDisk[];
  /**
   * What would cross the link: the CT's memory (live mode: at most once in full, then what it dirties) and its local disks.
   */
  copy: {
    memoryBytes?: number;
    localDiskBytes: number;
    /**
     * Free space of the target's image root file system.
     */
    targetFreeBytes?: number;
  };
  downtime: DowntimePrediction;
}
/**
 * Why it would not work: the code admission or the preflight would answer (HAUL_CT_BUSY, HAUL_NODE_DOWN, HAUL_PREFLIGHT_…), with the field.
 */
export interface ErrorInfo {
  code: string;
  message: string;
  field?: string;
  rule?: string;
  command?: string[];
  exitCode?: number;
  stderrTail?: string;
  retryable?: boolean;
}
export interface ApiRejected {
  ok: false;
  error: ErrorInfo1;
}
/**
 * An error as data: a stable code, a human message and, for validation, the failing field.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "ErrorInfo".
 */
export interface ErrorInfo1 {
  code: string;
  message: string;
  field?: string;
  rule?: string;
  command?: string[];
  exitCode?: number;
  stderrTail?: string;
  retryable?: boolean;
}
export interface PreflightSourceCommand {
  step: 'preflightSource';
  args: PreflightArgs;
}
/**
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "PreflightArgs".
 */
export interface PreflightArgs {
  ctid: Ctid;
  mode: Mode;
  /**
   * Only in commands of older coordinators (the request's declared shared disks). The agents now find the shared disks themselves; the core checks a declared list against what they found.
   */
  sharedDisks?: AbsolutePath[];
  imageDir: AbsolutePath1;
}
export interface PreflightTargetCommand {
  step: 'preflightTarget';
  args: PreflightArgs;
}
export interface PreDumpCommand {
  step: 'preDump';
  args: DumpArgs;
}
/**
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "DumpArgs".
 */
export interface DumpArgs {
  ctid: Ctid;
  /**
   * Pre-dump index (0-8), or the number of pre-dumps for the final dump (0-9).
   */
  iteration: number;
  imageDir: AbsolutePath;
  /**
   * Previous images, relative to imageDir (criu --prev-images-dir).
   */
  prevImageDir?: string;
  workDir: AbsolutePath;
  /**
   * finalDump only: how long to hold the CT frozen without a decision (1 s to 15 min).
   */
  leaseMs?: number;
}
export interface StreamImagesCommand {
  step: 'streamImages';
  args: StreamArgs;
}
/**
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "StreamArgs".
 */
export interface StreamArgs {
  toNode: NodeName;
  sourceDir: AbsolutePath;
  targetDir: AbsolutePath;
  priority: 'final' | 'iteration';
  /**
   * Cap for this transfer, in MB/s (10^6 bytes): 1 to 100000.
   */
  bandwidthLimitMBps?: number;
  /**
   * A pass of a live local-disk copy (copyLocalDisk in live mode; absent: one plain copy of a disk that is not in use). Pass 0 starts the host's write tracker on the mounted disk and sends the whole image folder while the CT runs; each later pass syncs the file system and sends the extents of the top delta written since the pass before; the final one runs in the frozen window. docs/protocol.md, "Local disks".
   */
  pass?: {
    index: number;
    final: boolean;
  };
}
export interface FinalDumpCommand {
  step: 'finalDump';
  args: DumpArgs;
}
export interface BackupDescriptorCommand {
  step: 'backupDescriptor';
  args: DescriptorArgs;
}
/**
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "DescriptorArgs".
 */
export interface DescriptorArgs {
  ddxml: AbsolutePath;
}
export interface SnapshotOriginCommand {
  step: 'snapshotOrigin';
  args: SnapshotArgs;
}
/**
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "SnapshotArgs".
 */
export interface SnapshotArgs {
  ddxml: AbsolutePath;
  guid: Guid;
}
export interface SnapshotCopyCommand {
  step: 'snapshotCopy';
  args: SnapshotArgs;
}
export interface CopyLocalDiskCommand {
  step: 'copyLocalDisk';
  args: StreamArgs;
}
export interface RestoreCommand {
  step: 'restore';
  args: RestoreArgs;
}
/**
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "RestoreArgs".
 */
export interface RestoreArgs {
  ctid: Ctid;
  imageDir: AbsolutePath;
  workDir: AbsolutePath;
}
export interface ReleaseSourceCommand {
  step: 'releaseSource';
  args: CtArgs;
}
/**
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "CtArgs".
 */
export interface CtArgs {
  ctid: Ctid;
}
export interface StopSourceCommand {
  step: 'stopSource';
  args: CtArgs;
}
export interface StartTargetCommand {
  step: 'startTarget';
  args: CtArgs;
}
export interface ResumeSourceCommand {
  step: 'resumeSource';
  args: CtArgs;
}
export interface RestoreSharedDiskCommand {
  step: 'restoreSharedDisk';
  args: SharedDiskArgs;
}
/**
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "SharedDiskArgs".
 */
export interface SharedDiskArgs {
  ddxml: AbsolutePath;
  originGuid: Guid;
  copyGuid: Guid;
}
export interface StopTargetCommand {
  step: 'stopTarget';
  args: CtArgs;
}
export interface RemoveFilesCommand {
  step: 'removeFiles';
  args: RemoveFilesArgs;
}
/**
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "RemoveFilesArgs".
 */
export interface RemoveFilesArgs {
  paths: AbsolutePath[];
}
export interface StartSourceCommand {
  step: 'startSource';
  args: CtArgs;
}
export interface UmountSourceCommand {
  step: 'umountSource';
  args: CtArgs;
}
export interface CleanupSharedDiskCommand {
  step: 'cleanupSharedDisk';
  args: SharedDiskArgs;
}
export interface MergeOriginCommand {
  step: 'mergeOrigin';
  args: SharedDiskArgs;
}
export interface LockSourceCommand {
  step: 'lockSource';
  args: CtArgs;
}
export interface TakeOwnershipCommand {
  step: 'takeOwnership';
  args: CtArgs;
}
export interface UnlockSourceCommand {
  step: 'unlockSource';
  args: CtArgs;
}
export interface ReleaseOwnershipCommand {
  step: 'releaseOwnership';
  args: CtArgs;
}
export interface StepCommand2 {
  commandId: CommandId;
  migrationId: MigrationId;
  node: NodeName1;
  executor: 'agent' | 'streamer';
  /**
   * 1 for the first attempt; an operator's retry continues the count.
   */
  attempt: number;
  step: StepName;
  /**
   * How long the coordinator waits for the outcome: 1 s to 1 h.
   */
  timeoutMs: number;
  /**
   * Typed by the variant (see oneOf).
   */
  args: unknown;
}
/**
 * The coordinator's effective settings (/etc/haul/coordinator.json, environment, defaults).
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "CoordinatorConfig".
 */
export interface CoordinatorConfig {
  nats: NatsSettings;
  nkeySeedFile?: NkeySeedFile;
  credsFile?: CredsFile;
  identitiesFile?: IdentitiesFile;
  insecure: Insecure;
  log: LogSettings;
  metrics: MetricsSettings;
  /**
   * This instance's name in its events and logs (each of the N coordinators its own).
   */
  name: string;
  /**
   * Migrations a node may take part in at once.
   */
  maxPerNode: number;
  /**
   * The frozen lease of a final dump unless a request asks for another (ms).
   */
  frozenLeaseMs: number;
  /**
   * A transfer whose bytes have not moved, and whose streamer has reported no wait, for this long is given up (HAUL_STREAM_STALLED) and the migration rolls back (ms). Streamers report once a second: at least ten reports; at most half the time a silent report stays in the progress bucket (10 min).
   */
  streamStallMs: number;
  /**
   * Replicas of every stream and bucket (3 on a 3-server NATS cluster). Set: missing ones are created with it and existing ones changed to it. Unset: missing ones get the replicas of the existing ones (else 1); existing ones are never changed.
   */
  replicas?: number;
}
/**
 * How to reach NATS.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "NatsSettings".
 */
export interface NatsSettings {
  /**
   * NATS server URLs (every server of the cluster: the client fails over), e.g. tls://nats-1.example:4222. In the environment: comma-separated.
   *
   * @minItems 1
   */
  servers: [string, ...string[]];
  tls?: NatsTlsSettings;
  /**
   * A NATS user name (only for a server set up with users and passwords, not haul init-cluster's nkeys).
   */
  user?: string;
  /**
   * That user's password.
   */
  password?: string;
  /**
   * A NATS token (a server set up with a token).
   */
  token?: string;
}
/**
 * TLS to nats-server.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "NatsTlsSettings".
 */
export interface NatsTlsSettings {
  /**
   * The cluster CA (ca.pem): nats-server's certificate must be signed by it; TLS is then required. The image streamer checks its peers with it too, unless data.tls.caFile is set.
   */
  caFile?: string;
  /**
   * A client certificate (PEM) for a nats-server that verifies its clients (tls { verify: true }); with keyFile.
   */
  certFile?: string;
  /**
   * The key of that client certificate (PEM).
   */
  keyFile?: string;
}
/**
 * Logs: JSON lines (pino) on stderr.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "LogSettings".
 */
export interface LogSettings {
  /**
   * The lowest level logged.
   */
  level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /**
   * Human-readable lines instead of JSON.
   */
  pretty: boolean;
}
/**
 * Prometheus metrics on http://HOST:PORT/metrics (docs/observability.md).
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "MetricsSettings".
 */
export interface MetricsSettings {
  /**
   * The port; 0: no metrics (off by default: one more port to firewall).
   */
  port: number;
  /**
   * The address the metrics listener binds to (0.0.0.0: every address).
   */
  host: string;
}
/**
 * A message a service parked instead of handling it (stream HAUL_DEAD_LETTERS, subject haul.dead.<service>.<node>): what it was, where it came from and why it was refused. Parked messages are never redelivered.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "DeadLetter".
 */
export interface DeadLetter {
  /**
   * The service that parked it: coordinator, node-agent or image-streamer.
   */
  service: string;
  /**
   * The node of the agent or streamer that parked it, or the coordinator's name.
   */
  node: string;
  /**
   * The subject the message arrived on.
   */
  subject: string;
  /**
   * Its stream sequence, when it came from a stream.
   */
  seq?: number;
  /**
   * Why it could not be handled.
   */
  reason: string;
  /**
   * The payload as text (UTF-8, invalid bytes replaced), cut at 32 KiB (limits.deadLetterPayloadBytes).
   */
  payload: string;
  /**
   * The payload's whole length in bytes.
   */
  payloadBytes: number;
  /**
   * Whether the payload was cut.
   */
  truncated: boolean;
  parkedAt: Timestamp;
}
/**
 * What each coordinator, node agent and image streamer answers to a request on haul.discovery (ask with a multi-reply request): who it is and how it is doing. Each service adds its own counters.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "DiscoveryInfo".
 */
export interface DiscoveryInfo {
  /**
   * coordinator, node-agent or image-streamer.
   */
  service: string;
  /**
   * The node of an agent or streamer, or the coordinator's name.
   */
  node: string;
  pid: number;
  startedAt: Timestamp;
  /**
   * Coordinator: migrations it drives.
   */
  active?: number;
  /**
   * Coordinator: the API subjects it answers.
   */
  endpoints?: string[];
  /**
   * Node agent: final dumps it holds frozen.
   */
  heldDumps?: number;
  /**
   * Node agent, image streamer: commands this process parked.
   */
  parkedCommands?: number;
  /**
   * Whether this process signs what it publishes and checks signatures (false only under HAUL_INSECURE=1).
   */
  signed?: boolean;
  /**
   * Commands and events this process refused to believe (unsigned, wrongly signed, or signed by an identity that may not say them).
   */
  rejectedMessages?: number;
  [k: string]: unknown | undefined;
}
/**
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "Actor".
 */
export interface Actor {
  service: 'coordinator' | 'node-agent' | 'image-streamer' | 'cli';
  node: string;
}
/**
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "ConvergenceNumbers".
 */
export interface ConvergenceNumbers {
  pagesWritten: number;
  prevPagesWritten?: number;
  growthPercent?: number;
  dirtyPagesPerSec?: number;
  bandwidthBytesPerSec?: number;
  dumpBytesPerSec?: number;
  predictedFrozenMs?: number;
  maxDowntimeMs?: number;
  maxIterations?: number;
}
/**
 * One dump's numbers; pagesSkipped and frozenUs are left out when criu did not report them (a final dump that was never released).
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "IterationStats".
 */
export interface IterationStats {
  iteration: number;
  pagesWritten: number;
  pagesSkipped?: number;
  bytes: number;
  durationMs: number;
  frozenUs?: number;
  streamMs?: number;
  final?: boolean;
}
/**
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "MigrationStats".
 */
export interface MigrationStats {
  totalMs: number;
  /**
   * From the freeze to the CT running on the target (or back on the source).
   */
  downtimeMs?: number;
  /**
   * Sum of criu frozen_time over all dumps, as P.Haul prints it.
   */
  frozenMs?: number;
  restoreMs?: number;
  imageSyncMs?: number;
  bytesStreamed?: number;
  iterations: IterationStats[];
  downtimeWindow?: DowntimeWindowStats;
}
/**
 * Where the downtime went, step by step: from the freeze's intent (finalDump; stopSource in restart mode) to the CT running on the target (restore; startTarget) or back on the source. Derived from the event times and the host times the executors report.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "DowntimeWindowStats".
 */
export interface DowntimeWindowStats {
  /**
   * From the freeze's intent to the last step's outcome (the downtime, once the CT runs again).
   */
  windowMs: number;
  /**
   * @maxItems 1000
   */
  steps: WindowStepStats[];
  /**
   * The median of the overheadMs of the steps that succeeded (a failure reports no host time: all of its span counts as overhead).
   */
  overheadMedianMs: number;
  /**
   * The steps that set the window's length, each the one its successor waited for last; windowMs = hostMs + overheadMs.
   */
  criticalPath: {
    /**
     * @maxItems 1000
     */
    steps: string[];
    hostMs: number;
    overheadMs: number;
  };
}
/**
 * One step of the downtime window. overheadMs = dispatchMs + intent→outcome − queuedMs − hostMs: the time haul's control plane spent around the host work.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "WindowStepStats".
 */
export interface WindowStepStats {
  /**
   * The step and its subject, e.g. snapshotOrigin:1.
   */
  key: string;
  step: StepName;
  node: NodeName;
  ok: boolean;
  /**
   * From the outcome the coordinator decided on to this step's intent (0 when the step waited for its executor instead).
   */
  dispatchMs: number;
  /**
   * From the step's intent to its outcome.
   */
  spanMs: number;
  /**
   * Part of the span spent waiting for the agent to finish its previous step (an agent runs one host action of a migration at a time).
   */
  queuedMs: number;
  /**
   * The host tools' time (toolMs) or the transfer's (durationMs), as the executor reported it.
   */
  hostMs: number;
  overheadMs: number;
}
/**
 * A scheduler request was accepted; the migration exists from here on.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "MigrationRequestedData".
 */
export interface MigrationRequestedData {
  request: MigrateRequest;
  requestedBy?: IdentityName1;
  /**
   * Each node's image root (from its heartbeat): the migration's image folders are decided from it.
   */
  imageRoots: {
    source: AbsolutePath;
    target: AbsolutePath;
  };
}
/**
 * A scheduler asks haul to move a container from one node to another (subject haul.api.migrate).
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "MigrateRequest".
 */
export interface MigrateRequest {
  /**
   * Idempotency key: the same requestId always yields the same migration.
   */
  requestId: string;
  ctid: Ctid;
  source: NodeName;
  target: NodeName;
  mode?: Mode1;
  /**
   * Paths of the CT's disks on shared storage: a DiskDescriptor.xml, its directory, or a delta in it.
   *
   * @maxItems 16
   */
  sharedDisks?: AbsolutePath[];
  preDump?: PreDumpSetting1;
  /**
   * Upper bound on pre-dump iterations: 1 to 9 (P.Haul: 9).
   */
  maxIterations?: number;
  /**
   * Downtime budget: iterate until the predicted frozen time fits. At least 100 ms (the fixed cost of a freeze in the prediction), at most 15 min (the longest frozen lease).
   */
  maxDowntimeMs?: number;
  downtimePolicy?: DowntimePolicy1;
  /**
   * Cap for image streaming, in MB/s (10^6 bytes): 1 to 100000.
   */
  bandwidthLimitMBps?: number;
  skipCpuCheck?: boolean;
  /**
   * How long the source keeps the CT frozen without a decision before it may resume it: 1 s to 15 min.
   */
  frozenLeaseMs?: number;
  /**
   * Why it was asked (haul migrate --reason, haul evacuate --reason): kept in MigrationRequested and shown by haul status. At most 500 characters: a line for people, not a document.
   */
  reason?: string;
}
export interface StepIntendedData2 {
  commandId: CommandId;
  migrationId: MigrationId;
  node: NodeName1;
  executor: 'agent' | 'streamer';
  /**
   * 1 for the first attempt; an operator's retry continues the count.
   */
  attempt: number;
  step: StepName;
  /**
   * How long the coordinator waits for the outcome: 1 s to 1 h.
   */
  timeoutMs: number;
  /**
   * Typed by the variant (see oneOf).
   */
  args: unknown;
}
export interface PreflightSourceSucceeded {
  step: 'preflightSource';
  result: PreflightResult;
}
/**
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "PreflightResult".
 */
export interface PreflightResult {
  configPresent: boolean;
  running: boolean;
  mounted?: boolean;
  rootPid?: number;
  criuVersion: string;
  memTrack: boolean;
  cpuFlags: string[];
  imageDir: AbsolutePath2;
  vePrivate?: AbsolutePath;
  /**
   * The layout version of the CT's private area, as libvzctl reads it from the link $VE_PRIVATE/.ve.layout: 5 for a ploop CT, 0 without it, -1 for a .ve.layout that is no link or whose link holds no number. With vePrivate.
   */
  layout?: number;
  /**
   * The CT's own action scripts that vzctl runs around its mount and start, $VE_PRIVATE/scripts/<name> (libvzctl lib/util.c get_action_script_path and run_action_scripts; the names of lib/vztypes.h), each that is there. With vePrivate.
   *
   * @maxItems 6
   */
  actionScripts?: ActionScript[];
  disks: DiskInfo[];
  freeBytes: number;
  /**
   * The node's boot id (/proc/sys/kernel/random/boot_id) at the check. The target refuses to restore after it changed: files received before a reboot may have been lost with the page cache.
   */
  bootId?: string;
  /**
   * Free space of the file system that holds (or would hold) the CT's private area: where copied local disks land.
   */
  privateFreeBytes?: number;
  /**
   * Resident memory of the CT's processes (VmRSS of its init and every descendant, from /proc): what a full dump writes at most.
   */
  memoryBytes?: number;
  toolMs?: ToolMs;
}
/**
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "ActionScript".
 */
export interface ActionScript {
  name: 'premount' | 'mount' | 'umount' | 'postumount' | 'start' | 'stop';
  /**
   * SHA-256 of its bytes; none when it is no regular file, or stat failed on it (vzctl would still try to run it).
   */
  sha256?: string;
  /**
   * Whether it may be executed (a mode bit x): vzctl execv's the mount scripts. With sha256.
   */
  executable?: boolean;
}
/**
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "DiskInfo".
 */
export interface DiskInfo {
  ddxml: AbsolutePath;
  /**
   * The disk lives below one of this node's shared-storage roots (location shared). Before agents found shared disks themselves: the request declared it shared.
   */
  shared: boolean;
  /**
   * Where the descriptor lives on this node, by its real path: below a shared-storage root (HAUL_SHARED_ROOTS), below the CT's private area (VE_PRIVATE), or elsewhere (neither: haul can migrate such a disk in no way).
   */
  location?: 'shared' | 'private' | 'elsewhere';
  sharedRoot?: AbsolutePath3;
  /**
   * SHA-256 of the descriptor's bytes as this node read them (location shared). A disk is shared with the target when the target's preflight finds the same path below its own shared roots with the same digest.
   */
  descriptorSha256?: string;
  /**
   * DiskDescriptor.xml.copy is beside the descriptor (location shared): a backup of it that an earlier migration left. A live migration refuses the disk in its preflight: its preparation would take that file for its own backup, and a rollback would put it back over the descriptor.
   */
  backupLeft?: boolean;
  targetDdxml?: AbsolutePath4;
  images?: number;
  /**
   * The bytes of the disk's files in its descriptor's folder as this node found them (what a copy of a local disk moves).
   */
  bytes?: number;
}
export interface PreflightTargetSucceeded {
  step: 'preflightTarget';
  result: PreflightResult;
}
export interface PreDumpSucceeded {
  step: 'preDump';
  result: DumpResult;
}
/**
 * A dump's numbers. pagesSkipped, frozenUs and memdumpUs are criu's stats-dump counters: a held final dump reports none of them (criu writes stats-dump only when it ends; releaseSource reports the final frozen time).
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "DumpResult".
 */
export interface DumpResult {
  pagesWritten: number;
  pagesSkipped?: number;
  frozenUs?: number;
  memdumpUs?: number;
  bytes: number;
  durationMs: number;
  toolMs?: ToolMs;
}
export interface StreamImagesSucceeded {
  step: 'streamImages';
  result: StreamResult;
}
/**
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "StreamResult".
 */
export interface StreamResult {
  bytes: number;
  files: number;
  durationMs: number;
  mbPerSec: number;
  /**
   * A pass of a disk copy: the time in the host's write tracker (its start or take --sync before the transfer, its ack after it), outside durationMs, which is the transfer's alone.
   */
  toolMs?: number;
  resumedBytes?: number;
  retries?: number;
}
export interface FinalDumpSucceeded {
  step: 'finalDump';
  result: DumpResult;
}
export interface BackupDescriptorSucceeded {
  step: 'backupDescriptor';
  result: HostResult;
}
/**
 * Result of a step whose outcome is what it did on the host.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "HostResult".
 */
export interface HostResult {
  /**
   * What the step did, in order (or found already done).
   */
  actions: string[];
  path?: AbsolutePath;
  restoreUs?: number;
  durationMs?: number;
  /**
   * releaseSource: criu's frozen_time of the final dump (µs), read from stats-dump once the held dump ended.
   */
  frozenUs?: number;
  toolMs?: ToolMs;
}
export interface SnapshotOriginSucceeded {
  step: 'snapshotOrigin';
  result: HostResult;
}
export interface SnapshotCopySucceeded {
  step: 'snapshotCopy';
  result: HostResult;
}
export interface CopyLocalDiskSucceeded {
  step: 'copyLocalDisk';
  result: StreamResult;
}
export interface RestoreSucceeded {
  step: 'restore';
  result: HostResult;
}
export interface ReleaseSourceSucceeded {
  step: 'releaseSource';
  result: HostResult;
}
export interface StopSourceSucceeded {
  step: 'stopSource';
  result: HostResult;
}
export interface StartTargetSucceeded {
  step: 'startTarget';
  result: HostResult;
}
export interface ResumeSourceSucceeded {
  step: 'resumeSource';
  result: HostResult;
}
export interface RestoreSharedDiskSucceeded {
  step: 'restoreSharedDisk';
  result: HostResult;
}
export interface StopTargetSucceeded {
  step: 'stopTarget';
  result: HostResult;
}
export interface RemoveFilesSucceeded {
  step: 'removeFiles';
  result: HostResult;
}
export interface StartSourceSucceeded {
  step: 'startSource';
  result: HostResult;
}
export interface UmountSourceSucceeded {
  step: 'umountSource';
  result: HostResult;
}
export interface CleanupSharedDiskSucceeded {
  step: 'cleanupSharedDisk';
  result: HostResult;
}
export interface MergeOriginSucceeded {
  step: 'mergeOrigin';
  result: HostResult;
}
export interface LockSourceSucceeded {
  step: 'lockSource';
  result: HostResult;
}
export interface TakeOwnershipSucceeded {
  step: 'takeOwnership';
  result: HostResult;
}
export interface UnlockSourceSucceeded {
  step: 'unlockSource';
  result: HostResult;
}
export interface ReleaseOwnershipSucceeded {
  step: 'releaseOwnership';
  result: HostResult;
}
export interface StepSucceededData2 {
  commandId: CommandId;
  step: StepName;
  node: NodeName;
  attempt: number;
  /**
   * True when found done by inspecting the host after a restart.
   */
  reconciled?: boolean;
  /**
   * Typed by the variant (see oneOf).
   */
  result: unknown;
}
/**
 * A step failed; the error says how, as data.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "StepFailedData".
 */
export interface StepFailedData {
  commandId: CommandId;
  step: StepName;
  node: NodeName;
  attempt: number;
  error: ErrorInfo1;
  reconciled?: boolean;
}
/**
 * A malformed command was refused by the agent; nothing ran.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "CommandRejectedData".
 */
export interface CommandRejectedData {
  commandId?: CommandId;
  error: ErrorInfo1;
}
/**
 * The convergence policy decided after a pre-dump, with its reason and numbers.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "IterationDecidedData".
 */
export interface IterationDecidedData {
  iteration: number;
  decision: 'continue' | 'final-dump' | 'abort';
  reason:
    | 'small-dump'
    | 'iteration-grows'
    | 'too-many-iterations'
    | 'fits-budget'
    | 'budget-never-fits'
    | 'continue';
  numbers: ConvergenceNumbers;
}
/**
 * The target agent won the fence: from here the source must not resume unless the restore is known failed and the target CT stopped. Appended with an expected-sequence check.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "RestoreStartedData".
 */
export interface RestoreStartedData {
  commandId: CommandId;
}
/**
 * The source CT was resumed (dump aborted). Appended with an expected-sequence check before resuming.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "ResumedOnSourceData".
 */
export interface ResumedOnSourceData {
  reason: 'lease-expired' | 'rollback';
  commandId?: CommandId;
}
/**
 * An operator or scheduler asked to cancel.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "CancelRequestedData".
 */
export interface CancelRequestedData {
  reason: string;
  requestedBy?: IdentityName2;
}
/**
 * The migration will be undone; the plan is derived from the log.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "RollbackStartedData".
 */
export interface RollbackStartedData {
  reason: string;
  cause?: ErrorInfo1;
}
/**
 * Bytes moved so far by a streaming step (rate-limited).
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "StreamProgressData".
 */
export interface StreamProgressData {
  commandId: CommandId;
  bytesDone: number;
  bytesTotal: number;
  mbPerSec: number;
  etaMs: number;
}
/**
 * An action of the rollback, the release or the cleanup failed on every attempt: nothing more happens until an operator retries it or resolves it (appended once per stall).
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "MigrationStuckData".
 */
export interface MigrationStuckData {
  action: ActionKey;
  step: StepName;
  /**
   * What the action belongs to: the rollback, the release of the source after the commit point, or the cleanup.
   */
  plan: 'rollback' | 'release' | 'cleanup';
  /**
   * Attempts made since the action was last started afresh.
   */
  attempts: number;
  reason: string;
  lastError?: ErrorInfo1;
}
/**
 * An operator fixed what made the stuck action fail: it gets a fresh set of attempts.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "RetryRequestedData".
 */
export interface RetryRequestedData {
  action: ActionKey;
  reason: string;
  requestedBy?: IdentityName3;
}
/**
 * An operator asserts they did the stuck compensation or cleanup action by hand: it counts as done and the plan moves on.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "ActionResolvedData".
 */
export interface ActionResolvedData {
  action: ActionKey;
  step: StepName;
  reason: string;
  requestedBy?: IdentityName4;
  /**
   * A stopTarget resolved while the target's restore (or start) had been given up without its agent reporting its end: the operator said they checked that nothing of the migration runs on the target any more.
   */
  targetIdle?: true;
}
/**
 * Terminal: the CT runs on the target and cleanup is done.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "MigrationCompletedData".
 */
export interface MigrationCompletedData {
  stats: MigrationStats;
}
/**
 * Terminal: the CT runs on the source and every effect was undone.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "MigrationRolledBackData".
 */
export interface MigrationRolledBackData {
  reason: string;
  cause?: ErrorInfo1;
  stats: MigrationStats;
}
/**
 * After the terminal event, by the coordinator: it vouches for every message of the migration's subject up to upToSeq, which it judged authentic (signature and authority) itself. digest is the chain defined in packages/bus/src/trust/seal.ts over those messages; a reader whose own chain over the same messages is equal believes them on this one signature, else it checks each one. Appended only right after upToSeq (compare-and-set), so there is at most one, and it changes no state. status, when present, is a snapshot: the migration's status as the coordinator projected it from the messages vouched for (its lastSeq is upToSeq), so that a reader of many finished migrations need not decode and fold their events; a reader uses it only when it believes the seal, its own chain equals the digest and it projects statuses the same way (statusVersion), else it folds the events.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "MigrationSealedData".
 */
export interface MigrationSealedData {
  /**
   * Stream sequence of the last message vouched for (the terminal event).
   */
  upToSeq: number;
  /**
   * How many messages of the subject the digest covers.
   */
  events: number;
  digest: string;
  status?: MigrationStatus;
  /**
   * The version of the status projection that made status (packages/domain/src/status.ts).
   */
  statusVersion?: number;
  /**
   * Stream sequence of the first message vouched for (MigrationRequested). Written with signers; a reader that takes status without reading the messages requires the stream to still hold it (its first sequence at most this).
   */
  fromSeq?: number;
  /**
   * The public keys that signed the messages vouched for (their Haul-Signer headers), sorted. A reader that takes status from the seal without reading those messages (EventLog.replaySeals) asks its own registry about each; a reader that reads them requires exactly these. Seals written before it was added lack it.
   *
   * @minItems 1
   * @maxItems 256
   */
  signers?: [string, ...string[]];
}
/**
 * The current-status projection of one migration (KV bucket and status replies).
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "MigrationStatus".
 */
export interface MigrationStatus {
  migrationId: MigrationId;
  ctid: Ctid;
  source: NodeName;
  target: NodeName;
  mode: Mode;
  phase:
    | 'preflight'
    | 'iterating'
    | 'frozen'
    | 'restoring'
    | 'committed'
    | 'cleanup'
    | 'rollback'
    | 'stuck'
    | 'completed'
    | 'rolled-back'
    | 'failed';
  iteration: number;
  runningSteps?: string[];
  lastEvent?: string;
  /**
   * Why it rolled back or is stuck.
   */
  reason?: string;
  requestedBy?: IdentityName5;
  /**
   * Why it was asked (the request's reason).
   */
  requestReason?: string;
  /**
   * What was asked of the migration after its request, in log order: each cancel (CancelRequested), retry (RetryRequested) and resolve (ActionResolved), with who asked and why.
   */
  operatorActions?: {
    kind: 'cancel' | 'retry' | 'resolve';
    action?: ActionKey1;
    requestedBy?: IdentityName6;
    reason: string;
    at: Timestamp;
  }[];
  /**
   * Set while the phase is stuck: the action that failed on every attempt and what an operator can do.
   */
  stuck?: {
    action: ActionKey;
    step: StepName;
    plan: 'rollback' | 'release' | 'cleanup';
    attempts: number;
    since: Timestamp;
    lastError?: ErrorInfo1;
    /**
     * Whether haul resolve may mark this action done (compensations and cleanup only); haul retry always may.
     */
    resolvable: boolean;
  };
  updatedAt: Timestamp;
  lastSeq: number;
  stats?: MigrationStats;
}
export interface MigrationRequestedEvent {
  type: 'MigrationRequested';
  data: MigrationRequestedData;
}
export interface StepIntendedEvent {
  type: 'StepIntended';
  data: StepIntendedData;
}
export interface StepSucceededEvent {
  type: 'StepSucceeded';
  data: StepSucceededData;
}
export interface StepFailedEvent {
  type: 'StepFailed';
  data: StepFailedData;
}
export interface CommandRejectedEvent {
  type: 'CommandRejected';
  data: CommandRejectedData;
}
export interface IterationDecidedEvent {
  type: 'IterationDecided';
  data: IterationDecidedData;
}
export interface RestoreStartedEvent {
  type: 'RestoreStarted';
  data: RestoreStartedData;
}
export interface ResumedOnSourceEvent {
  type: 'ResumedOnSource';
  data: ResumedOnSourceData;
}
export interface CancelRequestedEvent {
  type: 'CancelRequested';
  data: CancelRequestedData;
}
export interface RollbackStartedEvent {
  type: 'RollbackStarted';
  data: RollbackStartedData;
}
export interface StreamProgressEvent {
  type: 'StreamProgress';
  data: StreamProgressData;
}
export interface MigrationStuckEvent {
  type: 'MigrationStuck';
  data: MigrationStuckData;
}
export interface RetryRequestedEvent {
  type: 'RetryRequested';
  data: RetryRequestedData;
}
export interface ActionResolvedEvent {
  type: 'ActionResolved';
  data: ActionResolvedData;
}
export interface MigrationCompletedEvent {
  type: 'MigrationCompleted';
  data: MigrationCompletedData;
}
export interface MigrationRolledBackEvent {
  type: 'MigrationRolledBack';
  data: MigrationRolledBackData;
}
export interface MigrationSealedEvent {
  type: 'MigrationSealed';
  data: MigrationSealedData;
}
export interface MigrationEvent2 {
  eventId: EventId;
  migrationId: MigrationId;
  type: EventType;
  actor: Actor;
  time: Timestamp;
  causationId?: EventId;
  schemaVersion: 1;
  /**
   * Typed by the variant (see oneOf).
   */
  data: unknown;
}
/**
 * The data connections: the sending streamer listens, the receiving one connects (mutual TLS).
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "DataSettings".
 */
export interface DataSettings {
  /**
   * The address the data listener binds to (0.0.0.0: every address).
   */
  listenHost: string;
  /**
   * The ports the data listener may bind, FROM-TO or one port: the first free one is taken and registered in haul-streamers; open this range between the nodes. Unset: a port the system picks.
   */
  ports?: string;
  /**
   * The address other streamers connect to (default: listenHost; set it when listening on 0.0.0.0).
   */
  advertise?: string;
  tls?: DataTlsSettings;
  /**
   * Plaintext data connections with signatures kept (test worlds without certificates).
   */
  plaintext: boolean;
  /**
   * Node-wide bandwidth cap in MB/s (unset: none).
   */
  limitMBps?: number;
  /**
   * Connection attempts a transfer makes before it fails (it resumes from what was verified).
   */
  maxRetries: number;
}
/**
 * Mutual TLS of the data connections with this node's streamer certificate (haul init-cluster: streamer@<node>-cert.pem, -key.pem).
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "DataTlsSettings".
 */
export interface DataTlsSettings {
  /**
   * This streamer's certificate (CN or subjectAltName streamer@<node>), PEM.
   */
  certFile?: string;
  /**
   * Its private key, PEM.
   */
  keyFile?: string;
  /**
   * The CA the peers' certificates must be signed by (default: nats.tls.caFile, the cluster CA).
   */
  caFile?: string;
}
/**
 * The image streamer's effective settings (/etc/haul/image-streamer.json, environment, defaults).
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "ImageStreamerConfig".
 */
export interface ImageStreamerConfig {
  nats: NatsSettings;
  nkeySeedFile?: NkeySeedFile;
  credsFile?: CredsFile;
  identitiesFile?: IdentitiesFile;
  insecure: Insecure;
  log: LogSettings;
  metrics: MetricsSettings;
  topologyWaitMs: TopologyWaitMs;
  /**
   * This node's name, as in haul init-cluster --nodes (required).
   */
  node: string;
  /**
   * Folders the receiving side may write below: the agent's image root and the CTs' private areas, e.g. /var/local/haul and /vz/private (required). In the environment: colon-separated.
   *
   * @minItems 1
   */
  roots: [string, ...string[]];
  data: DataSettings;
}
/**
 * A preflight's findings (PreflightResult in steps.schema.json) without imageDir, plus the node's image root.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "CtInspection".
 */
export interface CtInspection {
  configPresent: boolean;
  running: boolean;
  mounted?: boolean;
  rootPid?: number;
  criuVersion: string;
  memTrack: boolean;
  cpuFlags: string[];
  vePrivate?: AbsolutePath;
  layout?: number;
  /**
   * @maxItems 6
   */
  actionScripts?: ActionScript[];
  /**
   * @maxItems 64
   */
  disks: DiskInfo[];
  freeBytes: number;
  privateFreeBytes?: number;
  memoryBytes?: number;
  bootId?: string;
  imageRoot: AbsolutePath5;
}
export interface InspectAnswered {
  ok: true;
  inspection: CtInspection;
}
export interface InspectRefused {
  ok: false;
  error: ErrorInfo1;
}
/**
 * A coordinator asks a node agent what it sees of a CT, outside any migration (subject haul.inspect.<node>, for haul migrate --check): the preflight's findings, read only. Signed by a coordinator.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "InspectRequest".
 */
export interface InspectRequest {
  ctid: Ctid;
}
/**
 * List migrations (subject haul.api.list).
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "ListRequest".
 */
export interface ListRequest {
  activeOnly?: boolean;
}
export interface MigrateAccepted {
  ok: true;
  migrationId: MigrationId;
  /**
   * True when this requestId was seen before.
   */
  duplicate: boolean;
}
export interface ApiRejected1 {
  ok: false;
  error: ErrorInfo1;
}
/**
 * The node agent's effective settings (/etc/haul/node-agent.json, environment, defaults).
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "NodeAgentConfig".
 */
export interface NodeAgentConfig {
  nats: NatsSettings;
  nkeySeedFile?: NkeySeedFile;
  credsFile?: CredsFile;
  identitiesFile?: IdentitiesFile;
  insecure: Insecure;
  log: LogSettings;
  metrics: MetricsSettings;
  topologyWaitMs: TopologyWaitMs;
  /**
   * This node's name, as in haul init-cluster --nodes (required).
   */
  node: string;
  /**
   * Prefix of /etc/vz, /var/run/ve and /proc/sys/kernel/random/boot_id: empty on a real host (an emulated node's folder in tests).
   */
  hostRoot: string;
  /**
   * The folder for migration images (made at start).
   */
  imageRoot: string;
  /**
   * Folders that hold shared ploop disks (none: shared disks are refused). Every path in a command must resolve inside the image root, these, or the CT's VE_PRIVATE. In the environment: colon-separated.
   */
  sharedRoots: string[];
  /**
   * The longest a final dump may hold a CT frozen (ms).
   */
  maxLeaseMs: number;
  /**
   * The agent's own state (command markers, held dumps).
   */
  stateDir: string;
}
/**
 * Liveness and capabilities of one node's agent (KV bucket haul-nodes, key = node name).
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "NodeHeartbeat".
 */
export interface NodeHeartbeat {
  node: NodeName;
  service: 'node-agent';
  pid?: number;
  time: Timestamp;
  criuVersion: string;
  memTrack: boolean;
  cpuFlags: string[];
  freeBytes: number;
  imageRoot: AbsolutePath;
  runningCts?: Ctid[];
}
/**
 * An operator asserts they did a stuck migration's action by hand: it counts as done and the plan moves on (subject haul.api.resolve). Refused unless the migration is stuck on exactly this action and the action is a compensation or a cleanup action.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "ResolveRequest".
 */
export interface ResolveRequest {
  migrationId: MigrationId;
  action: ActionKey2;
  reason?: string;
  /**
   * For stopTarget: the operator checked that nothing of the migration runs on the target any more (its restore's or start's vzctl has ended, or the host is down). Required while the target's restore (or start) was given up and its agent has not reported its end: a CT shown stopped may still be about to start there.
   */
  targetIdle?: boolean;
}
/**
 * An operator fixed what made a stuck migration's action fail: try it again with a fresh set of attempts (subject haul.api.retry). Refused unless the migration is stuck.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "RetryRequest".
 */
export interface RetryRequest {
  migrationId: MigrationId;
  reason?: string;
}
export interface StatusOk {
  ok: true;
  status?: MigrationStatus;
  migrations?: MigrationStatus[];
}
/**
 * Ask for one migration's status (subject haul.api.status).
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "StatusRequest".
 */
export interface StatusRequest {
  migrationId: MigrationId;
}
export interface StreamOfferAccepted {
  ok: true;
  /**
   * Bytes already verified per manifest path.
   */
  verified: {
    [k: string]: number | undefined;
  };
  /**
   * This receiver finishes a file verified to its end without any chunk of it, so the sender sends none. Absent (an older receiver), the sender sends the last chunk of such a file again, as older senders did: an older receiver finishes a part file verified to its end only on that chunk.
   */
  finishesVerified?: true;
}
/**
 * Not answered yet: the receiver reads back the part files it holds to say what of them is verified, and reads on. Only to an offer whose sender takes it (header Haul-Takes-Read-Back-Progress); the sender offers again.
 */
export interface StreamOfferReadingBack {
  ok: false;
  readingBack: {
    /**
     * Bytes of part files read back so far.
     */
    bytesRead: number;
    /**
     * Bytes of the offer's files.
     */
    bytesTotal: number;
  };
}
/**
 * Source streamer to target streamer (subject haul.stream.<node>.offer): what will be sent, where it goes, and where to fetch it from.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "StreamOffer".
 */
export interface StreamOffer {
  transferId: string;
  fromNode: NodeName2;
  migrationId: MigrationId;
  targetDir: AbsolutePath;
  /**
   * The sender's data address (its registered one) and this attempt's one-time token: the receiving streamer connects there and writes the token as its first line.
   */
  connect: {
    host: string;
    port: number;
    token: string;
  };
  /**
   * Sync every file and its folder to disk before answering done (local disk copies). Image folders are not synced: a target that rebooted since its preflight refuses to restore (docs/protocol.md).
   */
  durable?: boolean;
  /**
   * A live pass of a local-disk copy: once it has answered done, the receiver starts writing the files it holds to disk in the background (fdatasync on its own descriptors, off its event loop), so that the frozen pass's sync (durable) finds only the blocks that pass wrote. Nothing waits for it but the durable pass of the same files (the frozen pass waits for one of its files' writebacks that is running, and syncs every file itself), and durability is still the frozen pass's.
   */
  writeBack?: boolean;
  /**
   * A later pass of a local-disk copy: the target folder holds the earlier passes. Each file is updated in place: only the extents listed in its entry are sent (none: the file must already be there with that size), at any offset, then it is cut or extended to its size. Nothing is resumed: a broken update pass is sent again whole.
   */
  update?: boolean;
  /**
   * @maxItems 100000
   */
  manifest: ManifestEntry[];
}
export interface ManifestEntry {
  /**
   * Relative to the transfer's root; no '..', not absolute.
   */
  path: string;
  kind: 'file' | 'dir' | 'symlink';
  size?: number;
  linkTarget?: string;
  mode?: number;
  /**
   * Update offers only: the byte ranges [start, end) of the file that are sent.
   *
   * @maxItems 1000000
   */
  extents?: [number, number, ...number[]][];
}
/**
 * Where one node's image streamer takes data connections (KV bucket haul-streamers, key = node name), refreshed every heartbeat. A receiving streamer connects only to the address its sender registered.
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "StreamerRegistration".
 */
export interface StreamerRegistration {
  node: NodeName;
  service: 'image-streamer';
  pid?: number;
  time: Timestamp;
  dataHost: string;
  dataPort: number;
  /**
   * The data connection is mutual TLS (false only with HAUL_INSECURE=1).
   */
  tls: boolean;
}
/**
 * The latest report of one running transfer (KV bucket haul-progress, key = progressKey(migrationId, node, commandId)): its bytes, and whether it waits on purpose. Telemetry and liveness, kept out of the migration's log; the coordinator's stall rule reads it (docs/protocol.md, "Stalled transfers").
 *
 * This interface was referenced by `HaulMessages`'s JSON-Schema
 * via the `definition` "TransferProgress".
 */
export interface TransferProgress {
  migrationId: MigrationId;
  commandId: CommandId;
  node: NodeName;
  time: Timestamp1;
  bytesDone: number;
  bytesTotal: number;
  mbPerSec: number;
  etaMs: number;
  movedAt?: Timestamp2;
  waiting?: TransferWait;
  waitedUntil?: Timestamp3;
}
/**
 * Present while the transfer waits on purpose: behind a final-dump transfer (priority), for a free transfer slot (slot), or for the receiver to work on the bytes it holds (sync): every byte sent, it verifies and syncs them (bytesDone = bytesTotal); to resume, it reads back its part files while the bytes it read grow (bytesDone counted from 0 again, below bytesTotal). One reason for both: a coordinator finds a report with a reason it does not know invalid, and would lose the transfer's sign of life.
 */
export interface TransferWait {
  reason: 'priority' | 'slot' | 'sync';
  since: Timestamp;
}
