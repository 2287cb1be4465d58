import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { NatsConnection } from '@nats-io/transport-node';
import { headers, type MsgHdrs } from '@nats-io/nats-core';
import { jetstream } from '@nats-io/jetstream';
import {
  createEventLog,
  extendChain,
  newChain,
  sealDataOf,
  subjects,
  type SealMessage,
  type StoredEvent,
  type Trust,
} from '@haul/bus';
import {
  evolve,
  fold as foldAll,
  initialState,
  projectStatus,
  sealedStatus,
  type MigrationState,
} from '@haul/domain';
import type { MigrationEvent, MigrationStatus, Validators } from '@haul/schemas';
import type { TestIdentities } from '@haul/test';
import { lastSeqOf } from './control-stream.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A migration id of the same length as the coordinator's (`m-` + 24 hex digits), for the k-th copy of `mid`. */
const copyId = (mid: string, k: number): string =>
  `m-${createHash('sha256').update(`${mid}#${k}`).digest('hex').slice(0, 24)}`;

/** A message of the event stream as the bench read it: its bytes and the public key that signed it. */
export type StoredMessage = { data: Uint8Array; signer: string; type: string };

/** Signs a copy as the identity that signed the original (the registry maps its public key to its name). */
export type Resign = (signer: string, subject: string, body: Uint8Array) => MsgHdrs | undefined;

const registryOf = (ids: TestIdentities) =>
  JSON.parse(readFileSync(ids.registryFile, 'utf8')) as { identities: { name: string; publicKey: string }[] };

/** The public key of a registered identity. */
export const publicKeyOf = (ids: TestIdentities, name: string): string =>
  registryOf(ids).identities.find((i) => i.name === name)!.publicKey;

export function resigner(ids: TestIdentities): Resign {
  const registry = registryOf(ids);
  const byKey = new Map(registry.identities.map((i) => [i.publicKey, ids.trust(i.name)]));
  return (signer, subject, body) => {
    const sig = byKey.get(signer)?.sign(subject, body);
    if (!sig) return undefined;
    const h = headers();
    for (const [k, v] of Object.entries(sig)) h.set(k, v);
    return h;
  };
}

/**
 * Fill the event stream up to `want` finished migrations: each finished log of the run appended again under new
 * migration ids (every occurrence of the id in the events is replaced, so commands, event ids and folders stay
 * consistent), in the original order per migration, each copy signed again by the identity that signed its
 * original (a signature covers the subject and the bytes, both changed), so a reader believes the copies as it
 * believed the run. A log the coordinator sealed is sealed again as the coordinator seals (packages/bus/src/trust/
 * seal.ts): the chain of the copy's messages where they were stored, signed by the coordinator's identity, with the
 * original's status snapshot (the id replaced, at the copy's terminal event): the replay checks every status it takes
 * from a snapshot against the status the events fold to. Returns how many migrations the stream then holds.
 */
export async function cloneFinished(
  nc: NatsConnection,
  logs: ReadonlyMap<string, readonly StoredMessage[]>,
  want: number,
  resign: Resign,
  coordinatorKey: string,
): Promise<number> {
  const js = jetstream(nc);
  const copies: (() => Promise<void>)[] = [];
  let have = logs.size;
  for (let k = 1; have < want; k++) {
    for (const [mid, events] of logs) {
      if (have >= want) break;
      copies.push(() => copyOne(js, mid, copyId(mid, k), events, resign, coordinatorKey));
      have++;
    }
  }
  // Copies side by side, each in order: about as many messages in flight as a window of 512 publishes.
  for (let i = 0; i < copies.length; i += 12) await Promise.all(copies.slice(i, i + 12).map((c) => c()));
  return have;
}

async function copyOne(
  js: ReturnType<typeof jetstream>,
  mid: string,
  id: string,
  events: readonly StoredMessage[],
  resign: Resign,
  coordinatorKey: string,
): Promise<void> {
  const subject = subjects.events(id);
  const sealed = events.find((e) => e.type === 'MigrationSealed');
  const stored = await Promise.all(
    events
      .filter((e) => e.type !== 'MigrationSealed')
      .map(({ data, signer }) => {
        const body = enc.encode(dec.decode(data).replaceAll(mid, id));
        const h = resign(signer, subject, body);
        return js.publish(subject, body, h ? { headers: h } : {}).then((ack) => ({ ack, body, h }));
      }),
  );
  if (!sealed) return;
  const chain = newChain();
  for (const { ack, body, h } of stored.sort((a, b) => a.ack.seq - b.ack.seq))
    extendChain(chain, ack.seq, h, body);
  // The original's status snapshot, if it has one, as the copy's: its id replaced and at the copy's terminal event.
  const { status, statusVersion } = (
    JSON.parse(dec.decode(sealed.data).replaceAll(mid, id)) as Extract<
      MigrationEvent,
      { type: 'MigrationSealed' }
    >
  ).data;
  const seal = {
    eventId: `${id}:sealed`,
    migrationId: id,
    type: 'MigrationSealed',
    actor: { service: 'coordinator', node: 'bench' },
    time: new Date().toISOString(),
    schemaVersion: 1,
    data: {
      ...sealDataOf(chain),
      ...(status && statusVersion ? { status: { ...status, lastSeq: chain.seq }, statusVersion } : {}),
    },
  };
  const body = enc.encode(JSON.stringify(seal));
  const h = resign(coordinatorKey, subject, body);
  await js.publish(subject, body, h ? { headers: h } : {});
}

/**
 * How a replay rebuilds the statuses: `seals`, each log's last message read (EventLog.replaySeals), a sealed log's
 * status taken from its seal's snapshot when the seal stands for its log unread, the other logs read and folded;
 * `snapshots`, the whole stream read, a sealed log's status taken from its seal's snapshot (the seal believed and its
 * chain equal to the reader's, its events not decoded), the other logs folded; `folded`, every log folded from its
 * events, a sealed log's events believed on its seal; `each`, through follow, every message's signature checked, as a
 * reader did before seals (migrations interleaved, so every state is held to the end).
 */
export type ReplayHow = 'seals' | 'snapshots' | 'folded' | 'each';

/**
 * Rebuild the status of every migration from the log, as `how` says: one pass over the stream (or over each log's
 * last message, `seals`) through the event log's replay (each event decoded and checked against its schema; a sealed
 * log believed on its seal, any other message on its own signature), folded per migration with the core's evolve,
 * then projected. A migration whose sealed log ended it
 * is projected at its seal and its folded state let go, as the coordinator lets go of an ended migration: ten
 * thousand folded states held to the end made the replay mostly garbage collection. Should more of its log follow,
 * its log is read again and folded whole.
 */
export async function replayStatuses(
  nc: NatsConnection,
  validators: Validators,
  trust: Trust,
  how: ReplayHow = 'seals',
): Promise<{ seconds: number; statuses: MigrationStatus[]; fromSnapshots: number }> {
  const eventLog = createEventLog(nc, validators, trust);
  const last = await lastSeqOf(nc);
  const t0 = performance.now();
  const folded = new Map<string, { state: MigrationState; lastSeq: number }>();
  const ended = new Map<string, MigrationStatus>();
  let fromSnapshots = 0;
  const fold = ({ seq, event }: StoredEvent) => {
    const cur = folded.get(event.migrationId);
    folded.set(event.migrationId, { state: evolve(cur?.state ?? initialState(), event), lastSeq: seq });
  };
  const snapshot =
    how === 'snapshots' || how === 'seals'
      ? (s: SealMessage) => !!sealedStatus(s.event, s.raw.seq)
      : undefined;
  const batches =
    snapshot && how === 'seals'
      ? eventLog.replaySeals({ snapshot })
      : eventLog.replay(snapshot ? { snapshot } : {});
  if (how === 'each') {
    // To the end of the stream as it is now, counted in messages: a last message the reader does not believe (not
    // an event, or not signed by whom it must be) ends the replay too, instead of leaving it waiting for more.
    for await (const stored of eventLog.follow({ fromSeq: 1, toEnd: true })) {
      fold(stored);
      if (stored.seq >= last) break;
    }
  } else
    for await (const batch of batches) {
      const mid = batch[0]!.event.migrationId;
      const only = batch.length === 1 ? batch[0]! : undefined;
      const fromSeal =
        only?.snapshot && only.event.type === 'MigrationSealed'
          ? sealedStatus(only.event, only.seq)
          : undefined;
      if (fromSeal) {
        ended.set(mid, fromSeal);
        fromSnapshots++;
        continue;
      }
      // A batch is folded at once (domain fold: each collection of the state copied once, not once per event).
      const events = ended.delete(mid) ? (await eventLog.read(mid)).events : batch;
      const from = folded.get(mid)?.state ?? initialState();
      const f = {
        state: foldAll(
          events.map((e) => e.event),
          from,
        ),
        lastSeq: events.at(-1)!.seq,
      };
      folded.set(mid, f);
      if (f.state.terminal && batch.at(-1)!.event.type === 'MigrationSealed') {
        ended.set(mid, projectStatus(f.state, f.lastSeq)!);
        folded.delete(mid);
      }
    }
  const statuses = [
    ...ended.values(),
    ...[...folded.values()].flatMap((f) => projectStatus(f.state, f.lastSeq) ?? []),
  ];
  return { seconds: (performance.now() - t0) / 1000, statuses, fromSnapshots };
}
