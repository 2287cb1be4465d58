import type {
  ErrorInfo,
  IterationDecidedData,
  MigrationEvent,
  MigrationStatus,
  PreflightResult,
  StepCommand,
  StepName,
} from '@haul/schemas';
import type { FullRequest } from './request.ts';

export type StepStatus = 'intended' | 'succeeded' | 'failed';

/** The latest attempt of one step (a step is `<name>:<subject>`, e.g. `preDump:3`, `snapshotOrigin:0`). */
export type StepRecord = {
  key: string;
  step: StepName;
  subject: string;
  command: StepCommand;
  status: StepStatus;
  result?: unknown;
  error?: ErrorInfo;
  reconciled?: boolean;
  intendedAt: string;
  finishedAt?: string;
  /** Position of the intent in the log, for ordering effects. */
  order: number;
  /** The first outcome of this attempt's command (StepSucceeded or StepFailed): its position in the log, its time. */
  outcomeOrder?: number;
  outcomeAt?: string;
  /** An operator asserted the action was done by hand (ActionResolved): it counts as succeeded. */
  resolvedBy?: string;
  /** Its executor refused the command (CommandRejected): the failure is final for these arguments. */
  rejected?: true;
  /**
   * This attempt's executor reported its end: an outcome of its command not written by the coordinator (which gives
   * a step up without knowing whether it still runs), before or after the coordinator's (landMayStillRun).
   */
  executorEnded?: true;
  /** Where the step's success is in the log (a late one after the coordinator gave it up too): planRollbackOf. */
  succeededOrder?: number;
  /** That success was an older attempt's, intended before this record's (`order`): planRollbackOf. */
  succeededByOlderAttempt?: true;
};

/** An action that failed on every attempt: the migration waits for an operator (MigrationStuck). */
export type StuckAction = {
  action: string;
  step: StepName;
  plan: 'rollback' | 'release' | 'cleanup';
  attempts: number;
  reason: string;
  since: string;
  lastError?: ErrorInfo;
};

export type MigrationState = {
  migrationId?: string;
  request?: FullRequest;
  /** The image roots of the nodes when it was requested, and this migration's image folder under each. */
  imageRoots?: { source: string; target: string };
  imageDirs?: { source: string; target: string };
  requestedAt?: string;
  /** Who asked: the identity whose signature over the request the coordinator verified. */
  requestedBy?: string;
  /**
   * How many events were folded (seals are not): the next event's position in the log. The state is a projection:
   * what any decision, plan or status needs of the log is folded into the fields here, not kept as the log itself.
   */
  events: number;
  /** The type of the last event folded. */
  lastEvent?: MigrationEvent['type'];
  steps: Record<string, StepRecord>;
  /** commandId → step key, to attach results (also late ones of earlier attempts). */
  byCommand: Record<string, string>;
  preflight: { source?: PreflightResult; target?: PreflightResult };
  decisions: IterationDecidedData[];
  /** The resume fence (fencing.ts): the restore started, and the target CT is known stopped since. */
  restoreStarted: boolean;
  targetStoppedSinceRestore: boolean;
  resumedOnSource: boolean;
  /** When the source's agent resumed the CT itself (ResumedOnSource). */
  resumedOnSourceAt?: string;
  /** What operators asked after the request, in order. */
  operatorActions: OperatorAction[];
  cancelRequested?: string;
  rollback?: { reason: string; cause?: ErrorInfo };
  /** The restore (live) or start (restart) succeeded on the target: only roll forward from here. */
  committed: boolean;
  terminal?: 'completed' | 'rolled-back';
  lastTime?: string;
  /** Set by MigrationStuck, cleared when an operator retries or resolves the action. */
  stuck?: StuckAction;
  /** Step key → the attempt an operator's retry started again from: attempts are counted after it. */
  retriedFrom: Record<string, number>;
};

export const initialState = (): MigrationState => ({
  events: 0,
  steps: {},
  byCommand: {},
  preflight: {},
  decisions: [],
  restoreStarted: false,
  targetStoppedSinceRestore: false,
  operatorActions: [],
  resumedOnSource: false,
  committed: false,
  retriedFrom: {},
});

/** The subject of a step that runs once per migration (`restore:-`). */
export const once = '-';

/** A step's key in a migration's state and plans: `<name>:<subject>`, the subject `-` for a step that runs once. */
export const stepKey = (step: StepName, subject: string = once): string => `${step}:${subject}`;

/** A migration's record of a step (its latest attempt), by name and subject; undefined when never intended. */
export const stepOf = (
  s: Pick<MigrationState, 'steps'>,
  step: StepName,
  subject: string = once,
): StepRecord | undefined => s.steps[stepKey(step, subject)];

/**
 * The steps that open and close a migration's downtime: the freeze (live: the final dump; restart: the source's
 * stop), the landing on the target (the restore, or the target's start) and the way back to the source (its resume,
 * or its start).
 */
export function downtimeSteps(s: MigrationState): { freeze: StepName; land: StepName; back: StepName } {
  return s.request?.mode === 'restart'
    ? { freeze: 'stopSource', land: 'startTarget', back: 'startSource' }
    : { freeze: 'finalDump', land: 'restore', back: 'resumeSource' };
}

/** Steps that were intended and have no result yet. */
export const inFlight = (s: MigrationState): StepRecord[] =>
  Object.values(s.steps).filter((r) => r.status === 'intended');

export type OperatorAction = NonNullable<MigrationStatus['operatorActions']>[number];

/**
 * What an operator asked after the request (cancel, retry, resolve), with who asked and why; [] for other events
 * (the status's `operatorActions`, and the lines the CLI's live view prints for them).
 */
export function operatorActionOf(e: MigrationEvent): OperatorAction[] {
  const entry = (
    kind: OperatorAction['kind'],
    d: { action?: string; requestedBy?: string; reason: string },
  ): OperatorAction[] => [
    {
      kind,
      ...(d.action !== undefined ? { action: d.action } : {}),
      ...(d.requestedBy !== undefined ? { requestedBy: d.requestedBy } : {}),
      reason: d.reason,
      at: e.time,
    },
  ];
  switch (e.type) {
    case 'CancelRequested':
      return entry('cancel', e.data);
    case 'RetryRequested':
      return entry('retry', e.data);
    case 'ActionResolved':
      return entry('resolve', e.data);
    default:
      return [];
  }
}
