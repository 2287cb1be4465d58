import type { EventLog, SealMessage, StoredEvent } from '@haul/bus';
import {
  evolve,
  fold as foldAll,
  initialState,
  projectStatus,
  sealedStatus,
  type MigrationState,
} from '@haul/domain';
import type { MigrationStatus } from '@haul/schemas';

/**
 * How the statuses are rebuilt from the log: `seals`, each log's last message read (EventLog.replaySeals), a sealed
 * log's status taken from its seal's snapshot when the seal stands for its log unread, the other logs read and folded;
 * `snapshots`, the whole stream read, a sealed log's status taken from its seal's snapshot (the seal believed and its
 * chain equal to the reader's, its events not decoded), the other logs folded; `folded`, every log folded from its
 * events, a sealed log's events believed on its seal; `each`, through follow, every message's signature checked, as a
 * reader did before seals (migrations interleaved, so every state is held to the end).
 */
export type StatusReplay = 'seals' | 'snapshots' | 'folded' | 'each';

/**
 * The status of every migration, rebuilt from the log as `how` says (each event believed as the event log believes
 * it), folded per migration with the core's evolve, then projected. A migration whose sealed log ended it is
 * projected at its seal and its folded state let go, as the coordinator lets go of an ended migration: ten thousand
 * folded states held to the end made the replay mostly garbage collection. Should more of its log follow, its log is
 * read again and folded whole. `endSeq` (for `each`): the stream's last sequence, where the follow stops even when
 * the last message is one no reader believes.
 */
export async function statusesFromLog(
  eventLog: EventLog,
  how: StatusReplay = 'seals',
  { endSeq, signal }: { endSeq?: number; signal?: AbortSignal } = {},
): Promise<{ statuses: MigrationStatus[]; fromSnapshots: number }> {
  const folded = new Map<string, { state: MigrationState; lastSeq: number }>();
  const ended = new Map<string, MigrationStatus>();
  let fromSnapshots = 0;
  const stop = signal ? { signal } : {};
  if (how === 'each') {
    for await (const { seq, event } of eventLog.follow({ fromSeq: 1, toEnd: true, ...stop })) {
      const cur = folded.get(event.migrationId);
      folded.set(event.migrationId, { state: evolve(cur?.state ?? initialState(), event), lastSeq: seq });
      if (endSeq !== undefined && seq >= endSeq) break;
    }
  } else {
    const snapshot = (s: SealMessage) => !!sealedStatus(s.event, s.raw.seq);
    const batches =
      how === 'seals'
        ? eventLog.replaySeals({ snapshot, ...stop })
        : eventLog.replay(how === 'snapshots' ? { snapshot, ...stop } : stop);
    for await (const batch of batches) {
      const mid = batch[0]!.event.migrationId;
      const fromSeal = sealOnly(batch);
      if (fromSeal) {
        ended.set(mid, fromSeal);
        fromSnapshots++;
        continue;
      }
      // A batch is folded at once (domain fold: each collection of the state copied once, not once per event).
      const events = ended.delete(mid) ? (await eventLog.read(mid)).events : batch;
      const f = {
        state: foldAll(
          events.map((e) => e.event),
          folded.get(mid)?.state ?? initialState(),
        ),
        lastSeq: events.at(-1)!.seq,
      };
      folded.set(mid, f);
      if (f.state.terminal && batch.at(-1)!.event.type === 'MigrationSealed') {
        ended.set(mid, projectStatus(f.state, f.lastSeq)!);
        folded.delete(mid);
      }
    }
  }
  const statuses = [
    ...ended.values(),
    ...[...folded.values()].flatMap((f) => projectStatus(f.state, f.lastSeq) ?? []),
  ];
  return { statuses, fromSnapshots };
}

/** The status a batch that is a seal handed on alone for its snapshot carries. */
function sealOnly(batch: readonly StoredEvent[]): MigrationStatus | undefined {
  const only = batch.length === 1 ? batch[0]! : undefined;
  return only?.snapshot && only.event.type === 'MigrationSealed'
    ? sealedStatus(only.event, only.seq)
    : undefined;
}
