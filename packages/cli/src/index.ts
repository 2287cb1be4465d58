export { main } from './main.ts';
export { createApiClient } from './client.ts';
export { followToEnd, progressLine, type Terminal } from './follow.ts';
export { formatEvent, formatStats } from './format.ts';
export { initCluster, initClusterMain, initClusterExit, type InitClusterOptions } from './init-cluster.ts';
