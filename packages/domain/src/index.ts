export {
  initialState,
  stepKey,
  stepOf,
  once,
  inFlight,
  type MigrationState,
  type StepRecord,
  type StepStatus,
  type StuckAction,
} from './state.ts';
export { evolve, fold, subjectOf } from './evolve.ts';
export { commandsToSend, mayRunBefore, runsBefore, runsInOrder } from './dispatch-order.ts';
export {
  decide,
  decideUntilStable,
  lastMeasuredConvergence,
  type DecideInput,
  type DecideMeta,
} from './decide.ts';
export { checkMigration, checkedDisks, type CheckInput } from './check.ts';
export {
  assumedSpeeds,
  dumpSpeedOf,
  isCeiling,
  linkRateOf,
  predictDowntime,
  restoreSpeedOf,
  type DowntimeInput,
} from './downtime-prediction.ts';
export { deadlinesOf, lastSignOfLife, nextDeadline, type SentAt, type TransferReports } from './deadlines.ts';
export { planRollback, planRollbackOf, planCleanup, planCleanupOf, type PlannedAction } from './plans.ts';
export {
  migrationDisks,
  migrationDisksOf,
  sharedDisksOf,
  checkDisks,
  declaredDisk,
  notSharedBecause,
  type DiskRef,
  type Findings,
} from './disks.ts';
export {
  decideConvergence,
  predictFrozenMs,
  finalDumpMs,
  usesPreDump,
  minIterPagesCount,
  maxIterGrowRatePercent,
  pageSize,
  type ConvergenceInput,
} from './convergence.ts';
export {
  frozenLeaseMs,
  frozenLeaseCapMs,
  frozenLeaseSafetyFactor,
  type FrozenLeaseInput,
} from './frozen-lease.ts';
export { deriveStats, deriveStatsOf, downtimeOf } from './stats.ts';
export {
  diskOfSubject,
  livePassSubject,
  livePassesOf,
  maxLivePasses,
  nextLivePass,
  smallPassBytes,
} from './disk-passes.ts';
export { projectStatus, sealedStatus, statusSnapshot, statusVersion } from './status.ts';
export { operatorActionOf, type OperatorAction } from './state.ts';
export {
  judgedAgain,
  mayStartRestore,
  mayResumeSource,
  neverRanHere,
  type FenceVerdict,
  type SkippedHere,
} from './fencing.ts';
export {
  checkPreflight,
  checkRoom,
  compareVersions,
  ploopLayout,
  unreadableLayout,
} from './preflight-check.ts';
export {
  stepTable,
  liveForwardSteps,
  restartForwardSteps,
  commitSteps,
  type StepSpec,
  type TimeoutClass,
} from './steps.ts';
export { guidFor, originGuid, copyGuid, commandIdFor, imageDirName } from './ids.ts';
export { CommandRejectedError, errorCodes, givenUpCodes, type ErrorCode } from './errors.ts';
export { misaddressed } from './addressing.ts';
export { askedBy, maxAttemptNumber, resolvable, type OperatorInput } from './operator.ts';
export { requestDefaults, withRequestDefaults, type FullRequest } from './request.ts';
