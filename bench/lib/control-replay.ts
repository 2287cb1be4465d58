import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { NatsConnection } from '@nats-io/transport-node';
import { headers, type MsgHdrs } from '@nats-io/nats-core';
import { jetstream } from '@nats-io/jetstream';
import { createEventLog, extendChain, newChain, sealDataOf, subjects, type Trust } from '@haul/bus';
import { statusesFromLog, type StatusReplay } from '@haul/cli';
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
 * Rebuild the status of every migration from the log as `how` says (statusesFromLog, the CLI's `haul ls --from-log`
 * with `seals`), timed from the first read.
 */
export async function replayStatuses(
  nc: NatsConnection,
  validators: Validators,
  trust: Trust,
  how: StatusReplay = 'seals',
): Promise<{ seconds: number; statuses: MigrationStatus[]; fromSnapshots: number }> {
  const eventLog = createEventLog(nc, validators, trust);
  const endSeq = await lastSeqOf(nc);
  const t0 = performance.now();
  const r = await statusesFromLog(eventLog, how, { endSeq });
  return { seconds: (performance.now() - t0) / 1000, ...r };
}
