import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { jetstreamManager, type ConsumerInfo } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { ackSubjectInfo, type Logger } from '@haul/bus';

/**
 * Command markers: a file per command the agent started and has not recorded an outcome for. A marker found at
 * delivery means the agent died mid-step, so the step is reconciled by inspecting the host. The file name is the
 * SHA-256 of the command id: always 64 characters whatever the id, and two ids never share a marker (a name made
 * by replacing characters would make `a.b:1` and `a_b_1` one marker). A marker keeps the delivery's ack subject
 * too, so that the next agent can hand the command back at once (handBackInDoubt).
 */
export type CommandMarkers = ReturnType<typeof createCommandMarkers>;

type Marker = { commandId: string; at: string; reply?: string };

/** A record's file in `dir`: the SHA-256 of its key, 64 characters whatever the key, one file per key. */
const recordPath = (dir: string, key: string): string =>
  join(dir, createHash('sha256').update(key).digest('hex'));

/** The records in `dir` that `take` accepts; one cut short by a crash (not JSON) is skipped. */
function recordsIn<T>(dir: string, take: (r: Record<string, unknown>) => T | undefined): T[] {
  return readdirSync(dir).flatMap((name) => {
    try {
      const r = take(JSON.parse(readFileSync(join(dir, name), 'utf8')) as Record<string, unknown>);
      return r === undefined ? [] : [r];
    } catch {
      return [];
    }
  });
}

export function createCommandMarkers(dir: string) {
  mkdirSync(dir, { recursive: true });
  const pathOf = (commandId: string): string => recordPath(dir, commandId);
  return {
    pathOf,
    /**
     * Mark the command started, with the ack subject of its delivery (`reply`); true if it was already marked (a run
     * that left no outcome).
     */
    begin(commandId: string, reply?: string): boolean {
      const p = pathOf(commandId);
      const inDoubt = existsSync(p);
      const marker: Marker = { commandId, at: new Date().toISOString(), ...(reply ? { reply } : {}) };
      writeFileSync(p, JSON.stringify(marker));
      return inDoubt;
    },
    /** A run of the command began on this host and has not recorded its end (nor its refusal). */
    has(commandId: string): boolean {
      return existsSync(pathOf(commandId));
    },
    /** The outcome is in the log: forget the command. */
    end(commandId: string): void {
      rmSync(pathOf(commandId), { force: true });
    },
    /** The commands started and never ended, as their markers say (one cut short by a crash is skipped). */
    inDoubt(): Marker[] {
      // What the reply names is read where it is used (ackSubjectInfo), not here.
      return recordsIn(dir, (m) =>
        typeof m['commandId'] === 'string' && typeof m['at'] === 'string'
          ? {
              commandId: m['commandId'],
              at: m['at'],
              ...(typeof m['reply'] === 'string' ? { reply: m['reply'] } : {}),
            }
          : undefined,
      );
    },
    /** The command was handed back: its marker stays (still in doubt), without the ack subject it was handed back on. */
    handedBack(commandId: string): void {
      const p = pathOf(commandId);
      try {
        const m = JSON.parse(readFileSync(p, 'utf8')) as Marker;
        writeFileSync(p, JSON.stringify({ commandId: m.commandId, at: m.at }));
      } catch {
        // gone, or cut short: nothing to hand back again either way
      }
    },
  };
}

/**
 * Commands in hand: a file per delivery this agent holds and has not let go of (acked, handed back, refused), with
 * its ack subject, named by the SHA-256 of that subject (one per delivery, whatever the command). An agent holds
 * several commands at once, each migration's waiting in its lane behind the one running; an agent that dies leaves
 * them pending on the server until their ack wait runs out, so the next one hands them back at once
 * (handBackInDoubt), as it does the one that was running.
 */
export type InHand = ReturnType<typeof createInHand>;

export function createInHand(dir: string) {
  mkdirSync(dir, { recursive: true });
  return {
    /** The delivery (its ack subject) is in this agent's hands. */
    take(commandId: string, reply: string): void {
      writeFileSync(recordPath(dir, reply), JSON.stringify({ commandId, reply }));
    },
    /** Let go of: its command acked, handed back or refused. */
    drop(reply: string): void {
      rmSync(recordPath(dir, reply), { force: true });
    },
    /** The deliveries held when the last agent stopped (one cut short by a crash is skipped). */
    list(): { commandId: string; reply: string }[] {
      return recordsIn(dir, (h) =>
        typeof h['commandId'] === 'string' && typeof h['reply'] === 'string'
          ? { commandId: h['commandId'], reply: h['reply'] }
          : undefined,
      );
    },
  };
}

/** How long the server may take to answer a hand-back (it answers once it has processed the NAK). */
const handBackTimeoutMs = 2_000;

/**
 * Hand the commands an agent before this one held back to the stream, so that they are delivered again now rather
 * than once their ack wait runs out: the one it died running (a marker in doubt) and those waiting behind it (in
 * hand). A `-NAK` on each delivery's ack subject (JetStream's ack protocol), sent as a request, which the server
 * answers once it has processed it, oldest stored first. Until then nothing of their migrations ran: with a CT
 * frozen, seconds of its downtime. Before the consumer starts, so no delivery to this process is pending yet; one
 * agent per node, as the end of orphaned tools assumes.
 *
 * The server honours a NAK while the message is pending on the consumer, whichever delivery the subject names; and
 * nats-server 2.9 does not even look when nothing is pending (it delivers the message the subject names, another
 * node's command if the consumer was made again since). So a NAK goes only where the consumer's info says its
 * message can be one pending: some message pending, the subject's stream and delivery sequences above the ack floor
 * and not past the last delivered. Each is handed back once: a marker's ack subject is dropped after (a new delivery
 * writes its own), and an in-hand record goes.
 */
export async function handBackInDoubt(
  nc: NatsConnection,
  markers: CommandMarkers,
  log: Logger,
  consumer: { stream: string; durable: string },
  inHand?: InHand,
): Promise<void> {
  const ours = (reply: string | undefined) => {
    const at = reply === undefined ? undefined : ackSubjectInfo(reply);
    return at?.stream === consumer.stream && at.consumer === consumer.durable ? at : undefined;
  };
  const doubted = markers.inDoubt().filter((m) => ours(m.reply));
  const held = inHand?.list() ?? [];
  // One NAK per delivery: a command begun has both a marker and a record in hand.
  const bySubject = new Map<string, { commandId: string; at: { streamSeq: number; deliverySeq: number } }>();
  for (const h of [...doubted, ...held]) {
    const at = ours(h.reply);
    if (at) bySubject.set(h.reply!, { commandId: h.commandId, at });
  }
  const forget = () => {
    for (const m of doubted) markers.handedBack(m.commandId);
    for (const h of held)
      try {
        inHand?.drop(h.reply);
      } catch (err) {
        log.warn({ err, commandId: h.commandId }, 'a record of a command in hand could not be removed');
      }
  };
  if (bySubject.size === 0) return forget();
  let info: ConsumerInfo;
  try {
    info = await (await jetstreamManager(nc)).consumers.info(consumer.stream, consumer.durable);
  } catch (err) {
    // Kept for the next start: they come back after their ack wait meanwhile.
    log.warn(
      { err },
      'could not read the command consumer: the commands an earlier agent held come back after their ack wait',
    );
    return;
  }
  const oldestFirst = [...bySubject].sort(([, a], [, b]) => a.at.streamSeq - b.at.streamSeq);
  for (const [reply, { commandId, at }] of oldestFirst) {
    if (!mayBePending(info, at)) continue;
    try {
      await nc.request(reply, '-NAK', { timeout: handBackTimeoutMs });
      log.warn({ commandId }, 'a command an earlier agent held: delivered again now');
    } catch (err) {
      log.warn({ err, commandId }, 'a command an earlier agent held comes back after its ack wait');
    }
  }
  forget();
}

/**
 * The consumer's info allows the message an ack subject names to be one pending: between its floor and its last. With
 * several pending, one acked since may pass too: the server then finds it in no pending list and ignores the NAK (it
 * delivers what a NAK names without looking only when nothing at all is pending).
 */
function mayBePending(info: ConsumerInfo, at: { streamSeq: number; deliverySeq: number }): boolean {
  return (
    info.num_ack_pending > 0 &&
    at.streamSeq > info.ack_floor.stream_seq &&
    at.streamSeq <= info.delivered.stream_seq &&
    at.deliverySeq > info.ack_floor.consumer_seq &&
    at.deliverySeq <= info.delivered.consumer_seq
  );
}
