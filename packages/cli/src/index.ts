export { main, version } from './main.ts';
export { createApiClient, signerFromEnv, type ApiClient, type RequestSigner } from './client.ts';
export { followToEnd, followTransfers, type Terminal } from './follow.ts';
export { eventDetail, formatEvent, formatStats } from './format.ts';
export { commands } from './commands/index.ts';
export { exitCodes, exitCode, type ExitName } from './exit-codes.ts';
export { NoCoordinatorError, WaitTimeoutError } from './errors.ts';
export { initCluster, initClusterMain, initClusterExit, type InitClusterOptions } from './init-cluster.ts';
export { clusterAuths, type ClusterAuth } from './operator-mode.ts';
