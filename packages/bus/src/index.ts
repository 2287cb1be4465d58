export * from './conventions.ts';
export * from './errors.ts';
export { readAgainUntil, retryTransient } from './retry.ts';
export {
  busConfigFromEnv,
  busConfigOf,
  connectBus,
  connectionOptions,
  BusConfigError,
  type BusConfig,
  type ConnectionSettings,
} from './connection.ts';
export {
  identityEnv,
  identityFileOf,
  IdentityFileError,
  readIdentityFile,
  type IdentityFileSettings,
  type IdentitySecret,
  type IdentitySetting,
} from './identity-file.ts';
export { settingsOf, type Setting } from './settings/spec.ts';
export {
  ConfigError,
  configFromEnv,
  loadSettings,
  readConfigFile,
  whereIs,
  type LoadedSettings,
  type SettingSource,
} from './settings/load.ts';
export { renderEffective, renderServiceHelp, renderSettingsHelp } from './settings/render.ts';
export {
  badSettingsExit,
  readableOrFail,
  serviceConnection,
  serviceSettings,
  serviceTrust,
  type ServiceSettings,
} from './settings/service.ts';
export {
  roles,
  identityName,
  clusterIdentities,
  inboxPrefix,
  permissionsFor,
  serviceNames,
  coordinatorConsumer,
  changeApi,
  changeApiRole,
  consumerLeaderStepDown,
  type Role,
  type Identity,
  type IdentitiesFile,
  type Grant,
  type Permissions,
} from './permissions.ts';
export {
  renderServerConfig,
  userJwtPermissions,
  type AccountJwt,
  type ServerAuth,
  type ServerConfigInput,
  type UserJwtPermissions,
} from './server-config.ts';
export {
  awaitTopology,
  awaitTopologyOrExit,
  bucketConfigs,
  bucketStream,
  casSafe,
  CompareAndSetUnsafeError,
  configDiff,
  ensureTopology,
  ensureTopologyOrExit,
  missingTopology,
  streamConfigs,
  StreamNotPlacedError,
  topologyNames,
  TopologyMissingError,
  type EnsureOptions,
  type Topology,
  type TopologyChange,
} from './streams.ts';
export {
  createEventLog,
  type EventLog,
  type StoredEvent,
  type AppendOptions,
  type FollowOptions,
  type ReplayOptions,
  type ReplaySealsOptions,
} from './event-log.ts';
export { withReadCache, type CachedEventLog, type ReadCacheOptions } from './read-cache.ts';
export type { JudgeOptions, RawEvent, SealMessage } from './trust/event-judge.ts';
export * from './trust/index.ts';
export {
  ackSubjectInfo,
  ackSubjectOf,
  sendCommand,
  commandStoredAt,
  createCommandQueue,
  commandConsumerName,
  commandRefusals,
  type CommandDelivery,
  type CommandQueue,
  type CommandQueueDeps,
} from './command-queue.ts';
export { openBucket, encodeJson, decodeJson, decodeValid, keysOf, validValues } from './kv.ts';
export { clearProgress, openProgress, putProgress, readProgress, watchProgress } from './progress.ts';
export { createLogger, createLoggerWith, migrationLogger, type LogOptions, type Logger } from './logger.ts';
export { commandFate, eventFactory, hasOutcome, type EventData } from './events.ts';
export { serveDiscovery } from './discovery.ts';
export { sentTo } from './sent-to.ts';
export { requestSigner, signedRequest, type RequestSigner } from './signed-request.ts';
export { exitOnUncaught, exitWhenLoopEnds, pidAlive, stopOnSignals } from './lifecycle.ts';
export { groupMembers, liveProcesses, pidReused, processLive, procStat, type ProcStat } from './proc.ts';
export { createParking, type Parking, type DeadLetter } from './dead-letters.ts';
export { createSlots } from './slots.ts';
export { createSerialByKey, type SerialByKey } from './serial.ts';
export {
  Registry,
  agentMetrics,
  cachedSource,
  consumerMetrics,
  coordinatorMetrics,
  processMetrics,
  streamerMetrics,
  type AgentMetrics,
  type ConsumerInfo,
  type CoordinatorMetrics,
  type StreamerMetrics,
} from './metrics.ts';
export {
  MetricsConfigError,
  consumerInfoOf,
  exposeMetrics,
  heartbeatTimesOf,
  metricsConfigFromEnv,
  metricsConfigOf,
  metricsConfigOrExit,
  metricsEnvHelp,
  serveMetrics,
  type MetricsConfig,
} from './metrics-server.ts';
export { ensureDurable, type DurableConsumers } from './durable.ts';
