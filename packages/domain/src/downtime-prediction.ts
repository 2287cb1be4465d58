import type {
  DowntimePrediction,
  DumpResult,
  HostResult,
  MigrateRequest,
  PredictionInput,
  PredictionInputs,
  StepName,
  StreamResult,
} from '@haul/schemas';
import { assumedSpeeds } from './assumed-speeds.ts';
import { finalDumpMs, pageSize, usesPreDump } from './convergence.ts';
import { lastMeasuredConvergence } from './decide.ts';
import { smallPassBytes } from './disk-passes.ts';
import type { DiskRef, Findings } from './disks.ts';
import { stepOf, type MigrationState, type StepRecord } from './state.ts';
import type { FullRequest } from './request.ts';

export { assumedSpeeds };

export type DowntimeInput = {
  request: FullRequest;
  /** The source's inspection now: the CT's resident memory, and whether its criu tracks memory (pre-dumps). */
  source: Findings | undefined;
  /** The CT's disks that the migration copies (not shared with the target), as the source found them. */
  localDisks: readonly DiskRef[];
  /** The CT's latest completed live migration that measured its dirty rate (two pre-dumps or more). */
  history?: MigrationState | undefined;
  /** Other completed live migrations (any CT) from the source, to the target or between the two, newest first. */
  recent?: readonly MigrationState[] | undefined;
};

/**
 * How long the CT would be frozen by a live migration now. Pure. The final dump (finalDumpMs, the decider's model:
 * written at the dump speed, streamed at the link's rate, plus the fixed overhead), the local disks' frozen pass on
 * the same link, and the restore loading the CT's memory on the target. Every input says where it came from:
 * inspected now, measured by a named earlier migration, or assumed (assumedSpeeds; the whole memory as the final
 * dump when no migration of the CT measured its dirty rate, which only a dump can and a check must not do). Any
 * assumed input makes the prediction an `estimate`; otherwise its basis is `history`.
 */
export function predictDowntime(i: DowntimeInput): DowntimePrediction {
  const req = i.request;
  if (req.mode === 'restart')
    return { note: 'restart mode: the CT is stopped, its local disks copied, and started on the target' };
  const memory = i.source?.memoryBytes;
  if (!i.source || memory === undefined)
    return {
      note: `no prediction: the source reported no resident memory of CT ${req.ctid} (not running, or not inspected)`,
    };
  const preDump = usesPreDump(req, i.source);
  const dumped = finalDumpOf(i, preDump, memory);
  const inputs: PredictionInputs = {
    memoryBytes: { value: memory, from: 'inspected' },
    ...dumped,
    dumpBytesPerSec: dumpSpeed(i, dumped.dumpedBytes.value),
    linkBytesPerSec: linkRate(i),
    restoreBytesPerSec: restoreSpeed(i),
    frozenDiskBytes: frozenDiskBytes(i),
  };
  const link = inputs.linkBytesPerSec.value;
  const ms =
    finalDumpMs(inputs.dumpedBytes.value, inputs.dumpBytesPerSec.value, link) +
    (inputs.frozenDiskBytes.value / link) * 1000 +
    (memory / inputs.restoreBytesPerSec.value) * 1000;
  const assumed = assumedNames(inputs);
  return {
    predictedMs: round(ms),
    basis: assumed.length > 0 ? 'estimate' : 'history',
    inputs,
    note: noteOf(req, preDump, inputs, assumed),
  };
}

type FinalDump = Pick<PredictionInputs, 'dumpedBytes' | 'dirtyPagesPerSec' | 'iterationMs'>;

/**
 * What the final dump writes. Without pre-dumps: the whole resident memory. With them: what the CT dirties in one
 * pre-dump window at the dirty rate its last migration measured (at most its memory), or, with no such migration,
 * the whole memory as a ceiling.
 */
function finalDumpOf(i: DowntimeInput, preDump: boolean, memory: number): FinalDump {
  if (!preDump) return { dumpedBytes: { value: memory, from: 'inspected' } };
  const h = i.history;
  const m = h ? lastMeasuredConvergence(h) : undefined;
  if (!h || m?.dirtyPagesPerSec === undefined || m.iterationMs === undefined)
    return { dumpedBytes: { value: memory, from: 'assumed' } };
  const dirtied = m.dirtyPagesPerSec * (m.iterationMs / 1000) * pageSize;
  return {
    dumpedBytes: measuredBy(h, Math.min(memory, dirtied)),
    dirtyPagesPerSec: measuredBy(h, m.dirtyPagesPerSec),
    iterationMs: measuredBy(h, m.iterationMs),
  };
}

/** The dump speed: the CT's own last migration's, else the newest migration's from the same source. */
function dumpSpeed(i: DowntimeInput, bytes: number): PredictionInput {
  const from = [i.history, ...(i.recent ?? []).filter((s) => s.request?.source === i.request.source)];
  return firstMeasured(from, (s) => dumpSpeedOf(s, bytes)) ?? assumed(assumedSpeeds.dumpBytesPerSec);
}

/** The restore speed: the CT's own last migration's, else the newest migration's to the same target. */
function restoreSpeed(i: DowntimeInput): PredictionInput {
  const from = [i.history, ...(i.recent ?? []).filter((s) => s.request?.target === i.request.target)];
  return firstMeasured(from, restoreSpeedOf) ?? assumed(assumedSpeeds.restoreBytesPerSec);
}

/**
 * The link's rate: the newest migration between the two nodes (either way; the CT's own first) that moved data,
 * else assumed; capped by the request's bandwidth limit when that is lower.
 */
function linkRate(i: DowntimeInput): PredictionInput {
  const { source, target, bandwidthLimitMBps } = i.request;
  const between = (s: MigrationState | undefined) =>
    (s?.request?.source === source && s.request.target === target) ||
    (s?.request?.source === target && s.request.target === source);
  const link =
    firstMeasured([i.history, ...(i.recent ?? [])].filter(between), linkRateOf) ??
    assumed(assumedSpeeds.linkBytesPerSec);
  const limit = bandwidthLimitMBps === undefined ? undefined : bandwidthLimitMBps * 1e6;
  return limit !== undefined && limit < link.value ? { ...link, value: limit, cappedByRequest: true } : link;
}

/**
 * What the local disks' frozen pass streams. Their live passes run while the CT runs; only the writes since the
 * last one wait for the freeze: as many as the CT's last migration's frozen passes moved, or one converged live pass
 * (smallPassBytes) per disk, assumed. Nothing without local disks.
 */
function frozenDiskBytes(i: DowntimeInput): PredictionInput {
  if (i.localDisks.length === 0) return { value: 0, from: 'inspected' };
  const h = i.history;
  const copies = h ? succeeded(h, ['copyLocalDisk']) : [];
  const frozen = copies.filter((r) => !r.subject.includes('.'));
  const livePasses = copies.some((r) => r.subject.includes('.'));
  if (h && livePasses && frozen.length === i.localDisks.length)
    return measuredBy(h, sum(frozen.map((r) => (r.result as StreamResult).bytes)));
  return assumed(sum(i.localDisks.map((d) => Math.min(d.bytes ?? smallPassBytes, smallPassBytes))));
}

/** The speed of the migration's dump closest in size to `bytes` (a dump's fixed cost weighs more on a small one). */
export function dumpSpeedOf(s: MigrationState, bytes: number): number | undefined {
  const dumps = succeeded(s, ['preDump', 'finalDump'])
    .map((r) => r.result as DumpResult)
    .filter((d) => perSec(d.bytes, d.durationMs) !== undefined)
    .sort((a, b) => Math.abs(a.bytes - bytes) - Math.abs(b.bytes - bytes));
  const d = dumps[0];
  return d && perSec(d.bytes, d.durationMs);
}

/** The rate of the migration's largest transfer (memory images or a local disk's pass): the least start-up cost. */
export function linkRateOf(s: MigrationState): number | undefined {
  const largest = succeeded(s, ['streamImages', 'copyLocalDisk'])
    .map((r) => r.result as StreamResult)
    .sort((a, b) => b.bytes - a.bytes)[0];
  return largest && perSec(largest.bytes, largest.durationMs);
}

/** What the migration's restore loaded per second: the memory its first dump wrote ÷ the restore's duration. */
export function restoreSpeedOf(s: MigrationState): number | undefined {
  const restore = stepOf(s, 'restore');
  const first = stepOf(s, 'preDump', '0') ?? stepOf(s, 'finalDump');
  if (restore?.status !== 'succeeded' || first?.status !== 'succeeded') return undefined;
  const r = restore.result as HostResult | undefined;
  const ms = r?.durationMs ?? (r?.restoreUs === undefined ? undefined : r.restoreUs / 1000);
  return ms === undefined ? undefined : perSec((first.result as DumpResult).bytes, ms);
}

/** The inputs that were assumed, by name. */
const assumedNames = (inputs: PredictionInputs): string[] =>
  Object.entries(inputs)
    .filter(([, v]) => (v as PredictionInput).from === 'assumed')
    .map(([k]) => k);

/** How the prediction was made, in words: what the final dump carries, and which speeds were assumed. */
function noteOf(
  req: MigrateRequest,
  preDump: boolean,
  inputs: PredictionInputs,
  assumedInputs: string[],
): string {
  const dumped = inputs.dumpedBytes;
  const whole = 'the whole resident memory is dumped, streamed and restored while the CT is frozen';
  const what = !preDump
    ? req.preDump === 'off'
      ? `no pre-dump: ${whole}`
      : `no pre-dump (criu on ${req.source} cannot track memory): ${whole}`
    : dumped.from === 'measured'
      ? `the final dump carries what CT ${req.ctid} dirties in one pre-dump window at the dirty rate ${dumped.migrationId} measured; the restore loads its whole memory`
      : `the final dump is counted as the CT's whole resident memory, the most it can write: no migration of CT ${req.ctid} measured its dirty rate (only a dump can, which a check must not do); the restore loads it too`;
  const disks =
    inputs.frozenDiskBytes.value > 0 ? "; the local disks' last pass is streamed while frozen too" : '';
  const assumedWords = assumedInputs.flatMap((k) => {
    if (k === 'frozenDiskBytes') return [`${smallPassBytes / 2 ** 20} MiB per local disk's frozen pass`];
    const name = speedNames[k];
    return name ? [`${name} ${mbps(inputs[k as keyof PredictionInputs]!.value)}`] : [];
  });
  const at = isCeiling(inputs) ? 'at most: ' : '';
  return `${at}${what}${disks}${assumedWords.length ? `; assumed: ${assumedWords.join(', ')}` : ''}`;
}

/**
 * A prediction is a ceiling when the only input assumed is the final dump counted as the whole memory (every speed
 * measured): the CT cannot dump more. With an assumed speed it is not, since the real one may be slower.
 */
export function isCeiling(inputs: PredictionInputs): boolean {
  const assumed = assumedNames(inputs);
  return assumed.length === 1 && assumed[0] === 'dumpedBytes';
}

const speedNames: Record<string, string> = {
  dumpBytesPerSec: 'dump',
  linkBytesPerSec: 'link',
  restoreBytesPerSec: 'restore',
};

const succeeded = (s: MigrationState, steps: readonly StepName[]): StepRecord[] =>
  Object.values(s.steps).filter((r) => steps.includes(r.step) && r.status === 'succeeded' && r.result);

/** A number an earlier migration measured, naming it. */
function measuredBy(s: MigrationState, value: number): PredictionInput {
  const m: PredictionInput = { value: round(value), from: 'measured' };
  if (s.migrationId !== undefined) m.migrationId = s.migrationId;
  if (s.request)
    Object.assign(m, { ctid: s.request.ctid, source: s.request.source, target: s.request.target });
  if (s.lastTime !== undefined) m.endedAt = s.lastTime;
  return m;
}

/** The first of these migrations that measured the number, newest first as given. */
function firstMeasured(
  from: readonly (MigrationState | undefined)[],
  measure: (s: MigrationState) => number | undefined,
): PredictionInput | undefined {
  for (const s of from) {
    const v = s ? measure(s) : undefined;
    if (s && v !== undefined) return measuredBy(s, v);
  }
  return undefined;
}

const assumed = (value: number): PredictionInput => ({ value, from: 'assumed' });
const perSec = (bytes: number, ms: number) => (bytes > 0 && ms > 0 ? bytes / (ms / 1000) : undefined);
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const mbps = (b: number) => `${Math.round(b / 1e6)} MB/s`;
const round = (n: number) => Math.round(n * 10) / 10;
