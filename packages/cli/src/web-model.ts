import type { StoredEvent } from '@haul/bus';
import { downtimeOf, evolve, initialState, projectStatus, type MigrationState } from '@haul/domain';
import type { MigrationStatus, NodeHeartbeat, TransferProgress } from '@haul/schemas';
import { eventDetail } from './format.ts';

/** A running transfer as the page shows it (its latest report in the progress bucket). */
export type TransferView = {
  commandId: string;
  step: string;
  node: string;
  bytesDone: number;
  bytesTotal: number;
  mbPerSec: number;
  etaMs: number;
  /** When the streamer wrote the report: the page counts the ETA down from it. */
  time: string;
  waiting?: 'priority' | 'slot' | 'sync';
};

/**
 * One migration as the page shows it: the status the coordinator projects into its bucket (the same function over
 * the same log), and what the log and the progress bucket add for a live view.
 */
export type MigrationView = MigrationStatus & {
  requestedAt: string;
  /** The CT runs nowhere since then (the frozen timer); `frozenUntil` once it runs again. */
  frozenSince?: string;
  frozenUntil?: string;
  transfers: TransferView[];
  /** The running transfers together: bytes, percent, rate and the longest ETA. */
  progress?: { bytesDone: number; bytesTotal: number; percent: number; mbPerSec: number; etaMs: number };
};

/** One event of a migration's timeline. */
export type TimelineEntry = {
  seq: number;
  time: string;
  actor: string;
  type: string;
  detail: string;
  tone: 'intent' | 'ok' | 'failed' | 'warn' | 'end';
};

export type WebChange =
  | { kind: 'migration'; view: MigrationView; entries: TimelineEntry[] }
  | { kind: 'migration-gone'; migrationId: string }
  | { kind: 'node'; node: NodeHeartbeat }
  | { kind: 'node-gone'; node: string };

type Entry = {
  state: MigrationState;
  lastSeq: number;
  timeline: TimelineEntry[];
  /** The latest report of each transfer, by command id. */
  transfers: Map<string, TransferProgress>;
};

/** Ended migrations kept for the page beyond the active ones (the oldest go first). */
export const keptEndedMigrations = 200;

/**
 * What `haul web` shows, kept in memory and changed only by what it reads (no I/O here): each migration folded from
 * its log with the domain's own `evolve` and `projectStatus`, the transfers' latest reports, the nodes' heartbeats.
 * Every change is passed to `onChange` (the page's live stream).
 */
export function createWebModel(
  onChange: (c: WebChange) => void = () => {},
  keepEnded: number = keptEndedMigrations,
) {
  const migrations = new Map<string, Entry>();
  const nodes = new Map<string, NodeHeartbeat>();

  const changed = (e: Entry, entries: TimelineEntry[]) => {
    const view = viewOf(e);
    if (view) onChange({ kind: 'migration', view, entries });
  };

  function evictEnded(): void {
    const ended = [...migrations.entries()].filter(([, e]) => e.state.terminal);
    const excess = ended.length - keepEnded;
    if (excess <= 0) return;
    ended.sort(([, a], [, b]) => (a.state.lastTime ?? '').localeCompare(b.state.lastTime ?? ''));
    for (const [id] of ended.slice(0, excess)) {
      migrations.delete(id);
      onChange({ kind: 'migration-gone', migrationId: id });
    }
  }

  return {
    /** The last stream sequence folded for this migration (0: none; it is not known here). */
    lastSeq: (migrationId: string): number => migrations.get(migrationId)?.lastSeq ?? 0,

    /**
     * Fold these events of one migration, in log order; events at or below the sequence already folded are skipped,
     * so a read of the whole log and a live follow may overlap.
     */
    apply(migrationId: string, events: readonly StoredEvent[]): void {
      let e = migrations.get(migrationId);
      const fresh = events.filter((s) => s.seq > (e?.lastSeq ?? 0));
      if (!fresh.length) return;
      e ??= { state: initialState(), lastSeq: 0, timeline: [], transfers: new Map() };
      const entries = fresh.map(timelineEntry);
      for (const s of fresh) e.state = evolve(e.state, s.event);
      e.lastSeq = fresh.at(-1)!.seq;
      e.timeline.push(...entries);
      migrations.set(migrationId, e);
      changed(e, entries);
      if (e.state.terminal) evictEnded();
    },

    /** A transfer's latest report; one of a migration not folded here is ignored (its next report comes within a second). */
    setTransfer(p: TransferProgress): void {
      const e = migrations.get(p.migrationId);
      if (!e) return;
      e.transfers.set(p.commandId, p);
      changed(e, []);
    },

    setNode(hb: NodeHeartbeat): void {
      nodes.set(hb.node, hb);
      onChange({ kind: 'node', node: hb });
    },

    dropNode(node: string): void {
      if (nodes.delete(node)) onChange({ kind: 'node-gone', node });
    },

    migration: (migrationId: string): MigrationView | undefined => {
      const e = migrations.get(migrationId);
      return e && viewOf(e);
    },

    /** Every migration, the active ones first, then the most recently changed. */
    migrations(): MigrationView[] {
      const views = [...migrations.values()].flatMap((e) => viewOf(e) ?? []);
      const ended = (v: MigrationView) => ['completed', 'rolled-back', 'failed'].includes(v.phase);
      return views.sort(
        (a, b) => Number(ended(a)) - Number(ended(b)) || b.updatedAt.localeCompare(a.updatedAt),
      );
    },

    nodes: (): NodeHeartbeat[] => [...nodes.values()].sort((a, b) => a.node.localeCompare(b.node)),

    timeline: (migrationId: string): TimelineEntry[] | undefined => migrations.get(migrationId)?.timeline,
  };
}

export type WebModel = ReturnType<typeof createWebModel>;

function viewOf(e: Entry): MigrationView | undefined {
  const status = projectStatus(e.state, e.lastSeq);
  if (!status) return undefined;
  const view: MigrationView = {
    ...status,
    requestedAt: e.state.requestedAt ?? status.updatedAt,
    transfers: transfersOf(e),
  };
  const frozen = downtimeOf(e.state);
  if (frozen) {
    view.frozenSince = frozen.since;
    if (frozen.until) view.frozenUntil = frozen.until;
  }
  const progress = progressOf(view.transfers);
  if (progress) view.progress = progress;
  return view;
}

/** The reports of transfers whose step is still in flight: an ended one's last report may linger in the bucket. */
function transfersOf(e: Entry): TransferView[] {
  const out: TransferView[] = [];
  for (const p of e.transfers.values()) {
    const key = e.state.byCommand[p.commandId];
    const step = key ? e.state.steps[key] : undefined;
    if (!step || step.status !== 'intended' || step.command.commandId !== p.commandId || e.state.terminal)
      continue;
    const t: TransferView = {
      commandId: p.commandId,
      step: step.key,
      node: p.node,
      bytesDone: p.bytesDone,
      bytesTotal: p.bytesTotal,
      mbPerSec: p.mbPerSec,
      etaMs: p.etaMs,
      time: p.time,
    };
    if (p.waiting) t.waiting = p.waiting.reason;
    out.push(t);
  }
  return out.sort((a, b) => a.step.localeCompare(b.step));
}

function progressOf(ts: readonly TransferView[]): MigrationView['progress'] {
  if (!ts.length) return undefined;
  const bytesDone = ts.reduce((a, t) => a + t.bytesDone, 0);
  const bytesTotal = ts.reduce((a, t) => a + t.bytesTotal, 0);
  return {
    bytesDone,
    bytesTotal,
    percent: bytesTotal > 0 ? Math.min(100, (100 * bytesDone) / bytesTotal) : 0,
    mbPerSec: ts.reduce((a, t) => a + t.mbPerSec, 0),
    etaMs: Math.max(...ts.map((t) => t.etaMs)),
  };
}

const tones: Record<string, TimelineEntry['tone']> = {
  StepIntended: 'intent',
  StepSucceeded: 'ok',
  StepFailed: 'failed',
  CommandRejected: 'failed',
  RollbackStarted: 'warn',
  MigrationStuck: 'warn',
  CancelRequested: 'warn',
  ResumedOnSource: 'warn',
  MigrationCompleted: 'end',
  MigrationRolledBack: 'end',
};

/** An event as a line of the timeline: the same text `haul events` prints after the type. */
export function timelineEntry(s: StoredEvent): TimelineEntry {
  const e = s.event;
  return {
    seq: s.seq,
    time: e.time,
    actor: `${e.actor.node}/${e.actor.service}`,
    type: e.type,
    detail: eventDetail(e),
    tone: tones[e.type] ?? 'intent',
  };
}
