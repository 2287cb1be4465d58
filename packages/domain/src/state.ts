import type {
  ErrorInfo,
  IterationDecidedData,
  MigrateRequest,
  MigrationEvent,
  PreflightResult,
  StepCommand,
  StepName,
} from '@haul/schemas';

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
  /** An operator asserted the action was done by hand (ActionResolved): it counts as succeeded. */
  resolvedBy?: string;
  /** Its executor refused the command (CommandRejected): the failure is final for these arguments. */
  rejected?: true;
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
  request?: MigrateRequest;
  /** This migration's image folder on each node, decided when it was requested. */
  imageDirs?: { source: string; target: string };
  requestedAt?: string;
  /** Who asked: the identity whose signature over the request the coordinator verified. */
  requestedBy?: string;
  /** Every event so far: rollback and cleanup plans are pure functions of this list. */
  log: MigrationEvent[];
  steps: Record<string, StepRecord>;
  /** commandId → step key, to attach results (also late ones of earlier attempts). */
  byCommand: Record<string, string>;
  preflight: { source?: PreflightResult; target?: PreflightResult };
  decisions: IterationDecidedData[];
  restoreStarted: boolean;
  resumedOnSource: boolean;
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
  log: [],
  steps: {},
  byCommand: {},
  preflight: {},
  decisions: [],
  restoreStarted: false,
  resumedOnSource: false,
  committed: false,
  retriedFrom: {},
});

export const stepKey = (step: string, subject: string): string => `${step}:${subject}`;

/** Steps that were intended and have no result yet. */
export const inFlight = (s: MigrationState): StepRecord[] =>
  Object.values(s.steps).filter((r) => r.status === 'intended');
