import { measureToolTime } from '../adapters/tool-time.ts';
import type { Handler, HandlerTable } from '../context.ts';
import { finalDump, preDump, releaseSource, resumeSource } from './dumps.ts';
import {
  removeFiles,
  restore,
  start,
  startTarget,
  stopAndUmount,
  stopTarget,
  umountSource,
} from './lifecycle.ts';
import { lockSource, releaseOwnership, takeOwnership, unlockSource } from './ownership.ts';
import { preflight } from './preflight.ts';
import {
  backupDescriptor,
  cleanupSharedDisk,
  mergeOrigin,
  restoreSharedDisk,
  snapshotCopy,
  snapshotOrigin,
} from './shared-disk.ts';

/** A handler whose result also says how long the step spent in host tools (toolMs; every agent result is an object). */
export const withToolTime =
  (h: Handler): Handler =>
  async (cmd, ctx) => {
    const { value, toolMs } = await measureToolTime(() => h(cmd, ctx));
    return typeof value === 'object' && value !== null ? { ...value, toolMs } : value;
  };

const timed = (table: HandlerTable): HandlerTable =>
  Object.fromEntries(Object.entries(table).map(([step, h]) => [step, withToolTime(h)]));

/** Every step a node agent runs. Streaming steps belong to the image streamer. */
export const handlers: HandlerTable = timed({
  preflightSource: preflight,
  preflightTarget: preflight,
  preDump,
  finalDump,
  releaseSource,
  resumeSource,
  backupDescriptor,
  snapshotOrigin,
  snapshotCopy,
  restoreSharedDisk,
  cleanupSharedDisk,
  mergeOrigin,
  restore,
  stopSource: stopAndUmount,
  stopTarget,
  startTarget,
  startSource: start,
  umountSource,
  removeFiles,
  lockSource,
  unlockSource,
  takeOwnership,
  releaseOwnership,
});
