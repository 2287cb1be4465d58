import { ToolExit, emuEnv, type EmuEnv } from '../lib/emu-env.ts';
import { out } from '../lib/tool.ts';
import { chainTo, imagePath, readDescriptor } from '../ploop/descriptor.ts';
import { EX, resolveDd, withDeviceIo } from '../ploop/ops.ts';
import { deviceOnNode, flushCache } from '../ploop/page-cache.ts';
import { dropTracker, mergeExtents, readTracker, writeTracker } from '../ploop/tracking.ts';

const usage = `Usage: haul-ploop-track start|take [--sync]|ack|sync|stop DiskDescriptor.xml
  start  start tracking writes to the mounted disk's top delta (a tracker already running on it goes on)
  take   print the extents written since the last take (and those taken but never acknowledged), as JSON;
         --sync: sync first (one call where a pass would make two)
  ack    the extents taken last are copied: forget them
  sync   write the file system's dirty pages back to the disk (syncfs)
  stop   stop tracking`;

/** Exit status when no tracker runs on the device (it was stopped, or the device was unmounted meanwhile). */
export const NOT_TRACKING = 3;

/**
 * The emulator of haul's disk-tracking helper (docs/host-contract.md): the host interface the image streamer's
 * local-disk copy uses for what `ploop copy` does inside libploop (lib/ploop-copy.c): track the writes to a running
 * disk's top delta, hand out the extents written since, and sync the file system before the last pass.
 */
export function trackMain(argv: string[]): number {
  const [cmd, ...operands] = argv;
  const syncFirst = cmd === 'take' && operands[0] === '--sync';
  const [ddArg, ...rest] = syncFirst ? operands.slice(1) : operands;
  if (!cmd || !ddArg || ddArg.startsWith('-') || rest.length > 0) throw new ToolExit(1, usage);
  if (!['start', 'take', 'ack', 'sync', 'stop'].includes(cmd)) throw new ToolExit(1, usage);
  const env = emuEnv();
  const dd = resolveDd(ddArg);
  const base = imagePath(dd, chainTo(readDescriptor(dd))[0]!.file);
  const device = deviceOnNode(env, base);
  if (!device) throw new ToolExit(EX.DEV_NOT_MOUNTED, `Image ${base} is not mounted`);
  const dev = device.dev;
  return withDeviceIo(env, dev, () => {
    const synced = syncFirst ? { syncedBytes: flushCache(env, dev) } : {};
    out(JSON.stringify({ ...(run(env, cmd, dev, device.deltas.at(-1)!) as object), ...synced }));
    return 0;
  });
}

function run(env: EmuEnv, cmd: string, dev: string, top: string): unknown {
  switch (cmd) {
    case 'start': {
      // A copy started again after a crash keeps what was tracked since its first start: its earlier reads may be
      // stale, and only the tracker knows where.
      if (readTracker(env, dev)?.file === top) return { device: dev, file: top, started: false };
      writeTracker(env, dev, { file: top, dirty: [], inflight: [] });
      return { device: dev, file: top, started: true };
    }
    case 'sync':
      return { device: dev, bytes: flushCache(env, dev) };
    case 'stop':
      dropTracker(env, dev);
      return { device: dev };
  }
  const t = readTracker(env, dev);
  if (!t || t.file !== top) throw new ToolExit(NOT_TRACKING, `no write tracker runs on ${dev} (${top})`);
  if (cmd === 'ack') {
    writeTracker(env, dev, { ...t, inflight: [] });
    return { device: dev };
  }
  const extents = mergeExtents([...t.inflight, ...t.dirty]);
  writeTracker(env, dev, { file: t.file, dirty: [], inflight: extents });
  return { device: dev, file: t.file, extents };
}
