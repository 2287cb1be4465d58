import type { DowntimeWindowStats, StreamResult, WindowStepStats } from '@haul/schemas';
import { downtimeSteps, stepKey, type MigrationState, type StepRecord } from './state.ts';
import { stepTable } from './steps.ts';

/** A step of the window with the times of its intent and outcome and their places in the log. */
type Span = {
  rec: StepRecord;
  intentIdx: number;
  intentAt: number;
  outcomeIdx: number;
  outcomeAt: number;
  hostMs: number;
};

/**
 * Where the downtime went, from the log alone: every step from the freeze's intent to the CT running again, with its
 * host time (what the agent's tools or the streamer's transfer took, as they report it) and the control overhead
 * around it. A step's predecessor is what it waited for last: its executor's previous step when the agent was still
 * busy with it (an agent runs one host action of a migration at a time), else the outcome the coordinator decided it on.
 *   dispatchMs = intent − the predecessor's outcome (coordinator: deliver, decide, append);
 *   overheadMs = dispatchMs + (outcome − start) − hostMs, start = the later of the intent and the agent turning free.
 * Following predecessors back from the last step gives the critical path: windowMs = its hostMs + its overheadMs.
 */
export function downtimeWindowOf(s: MigrationState): DowntimeWindowStats | undefined {
  const d = downtimeSteps(s);
  const spans = spansOf(s);
  const freeze = spans.get(stepKey(d.freeze));
  if (!freeze) return undefined;
  const close = [stepKey(d.land), stepKey(d.back)]
    .map((k) => spans.get(k))
    .find((sp) => sp?.rec.status === 'succeeded');
  const window = [...spans.values()]
    .filter((sp) => sp.intentIdx >= freeze.intentIdx && (!close || sp.intentIdx <= close.intentIdx))
    .sort((a, b) => a.intentIdx - b.intentIdx);
  const rows = new Map<Span, { row: WindowStepStats; pred: Span | undefined }>();
  for (const sp of window) rows.set(sp, rowOf(sp, window, sp === freeze));
  const last = close ?? window.reduce((a, b) => (b.outcomeIdx > a.outcomeIdx ? b : a));
  const windowMs = Math.max(0, last.outcomeAt - freeze.intentAt);
  const path: Span[] = [];
  for (let sp: Span | undefined = last; sp && !path.includes(sp); sp = rows.get(sp)?.pred) path.unshift(sp);
  const pathHostMs = Math.min(
    windowMs,
    path.reduce((a, sp) => a + sp.hostMs, 0),
  );
  const steps = window.map((sp) => rows.get(sp)!.row);
  return {
    windowMs,
    steps,
    overheadMedianMs: median(steps.filter((r) => r.ok).map((r) => r.overheadMs)),
    criticalPath: {
      steps: path.map((sp) => sp.rec.key),
      hostMs: round(pathHostMs),
      overheadMs: round(windowMs - pathHostMs),
    },
  };
}

function rowOf(sp: Span, window: Span[], first: boolean): { row: WindowStepStats; pred: Span | undefined } {
  const before = (idx: number) => (o: Span) => o !== sp && o.outcomeIdx < idx;
  const latest = (xs: Span[]) =>
    xs.reduce<Span | undefined>((a, b) => (!a || b.outcomeIdx > a.outcomeIdx ? b : a), undefined);
  const trigger = first ? undefined : latest(window.filter(before(sp.intentIdx)));
  const serial = stepTable[sp.rec.step].executor === 'agent';
  const busy = serial
    ? latest(
        window.filter(
          (o) =>
            before(sp.outcomeIdx)(o) &&
            o.outcomeIdx > sp.intentIdx &&
            stepTable[o.rec.step].executor === 'agent' &&
            o.rec.command.node === sp.rec.command.node,
        ),
      )
    : undefined;
  const start = busy ? busy.outcomeAt : sp.intentAt;
  const dispatchMs = busy || !trigger ? 0 : Math.max(0, sp.intentAt - trigger.outcomeAt);
  const spanMs = Math.max(0, sp.outcomeAt - sp.intentAt);
  const row: WindowStepStats = {
    key: sp.rec.key,
    step: sp.rec.step,
    node: sp.rec.command.node,
    ok: sp.rec.status === 'succeeded',
    dispatchMs: round(dispatchMs),
    spanMs: round(spanMs),
    queuedMs: round(Math.max(0, start - sp.intentAt)),
    hostMs: round(sp.hostMs),
    overheadMs: round(Math.max(0, dispatchMs + Math.max(0, sp.outcomeAt - start) - sp.hostMs)),
  };
  return { row, pred: busy ?? trigger };
}

/** Every step's latest attempt that has an outcome, by step key, with where its intent and outcome are in the log. */
function spansOf(s: MigrationState): Map<string, Span> {
  const out = new Map<string, Span>();
  for (const rec of Object.values(s.steps)) {
    if (rec.outcomeOrder === undefined || rec.outcomeAt === undefined || rec.status === 'intended') continue;
    out.set(rec.key, {
      rec,
      intentIdx: rec.order,
      intentAt: Date.parse(rec.intendedAt),
      outcomeIdx: rec.outcomeOrder,
      outcomeAt: Date.parse(rec.outcomeAt),
      hostMs: rec.status === 'succeeded' ? hostMsOf(rec) : 0,
    });
  }
  return out;
}

/**
 * The host time a step's executor reported: a transfer's duration and its host tools' (a disk pass's write tracker),
 * or the agent's tool time.
 */
function hostMsOf(rec: StepRecord): number {
  const r = rec.result as Partial<StreamResult> & { toolMs?: number };
  return (stepTable[rec.step].executor === 'streamer' ? (r.durationMs ?? 0) : 0) + (r.toolMs ?? 0);
}

const round = (ms: number) => Math.round(ms * 10) / 10;

function median(xs: number[]): number {
  if (xs.length === 0) return 0;
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return round(sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2);
}
