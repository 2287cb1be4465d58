import type { HandlerTable } from '../context.ts';
import { finalDump, preDump, releaseSource, resumeSource } from './dumps.ts';
import { removeFiles, restore, start, stopAndUmount, umountSource } from './lifecycle.ts';
import { preflight } from './preflight.ts';
import {
  backupDescriptor,
  cleanupSharedDisk,
  mergeOrigin,
  restoreSharedDisk,
  snapshotCopy,
  snapshotOrigin,
} from './shared-disk.ts';

/** Every step a node agent runs. Streaming steps belong to the image streamer. */
export const handlers: HandlerTable = {
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
  stopTarget: stopAndUmount,
  startTarget: start,
  startSource: start,
  umountSource,
  removeFiles,
};
