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

export function createCommandMarkers(dir: string) {
  mkdirSync(dir, { recursive: true });
  const pathOf = (commandId: string): string =>
    join(dir, createHash('sha256').update(commandId).digest('hex'));
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
    /** The outcome is in the log: forget the command. */
    end(commandId: string): void {
      rmSync(pathOf(commandId), { force: true });
    },
    /** The commands started and never ended, as their markers say (one cut short by a crash is skipped). */
    inDoubt(): Marker[] {
      return readdirSync(dir).flatMap((name) => {
        try {
          const m = JSON.parse(readFileSync(join(dir, name), 'utf8')) as Partial<Marker>;
          if (typeof m.commandId !== 'string' || typeof m.at !== 'string') return [];
          // What the reply names is read where it is used (ackSubjectInfo), not here.
          return [
            { commandId: m.commandId, at: m.at, ...(typeof m.reply === 'string' ? { reply: m.reply } : {}) },
          ];
        } catch {
          return [];
        }
      });
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

/** How long the server may take to answer a hand-back (it answers once it has processed the NAK). */
const handBackTimeoutMs = 2_000;

/**
 * Hand the commands an agent before this one died running back to the stream, so that they are delivered again now
 * rather than once their ack wait runs out: a `-NAK` on each marker's ack subject (JetStream's ack protocol), sent as a
 * request, which the server answers once it has processed it. The consumer hands over one command at a time, so until
 * then nothing else ran either: with a CT frozen, seconds of its downtime. Before the consumer starts, so no delivery to
 * this process is pending yet; one agent per node, as the end of orphaned tools assumes.
 *
 * The server honours a NAK while the message is pending on the consumer, whichever delivery the subject names; and
 * nats-server 2.9 does not even look when nothing is pending (it delivers the message the subject names, another
 * node's command if the consumer was made again since). So a marker's NAK goes only where the consumer's info says its
 * message can be the one pending: some message pending, the marker's stream and delivery sequences above the ack
 * floor and not past the last delivered. Each marker is handed back once: its ack subject is dropped after (a new
 * delivery writes its own).
 */
export async function handBackInDoubt(
  nc: NatsConnection,
  markers: CommandMarkers,
  log: Logger,
  consumer: { stream: string; durable: string },
): Promise<void> {
  const held = markers.inDoubt().flatMap((m) => {
    const at = m.reply === undefined ? undefined : ackSubjectInfo(m.reply);
    return at?.stream === consumer.stream && at.consumer === consumer.durable ? [{ m, at }] : [];
  });
  if (held.length === 0) return;
  let info: ConsumerInfo;
  try {
    info = await (await jetstreamManager(nc)).consumers.info(consumer.stream, consumer.durable);
  } catch (err) {
    log.warn(
      { err },
      'could not read the command consumer: commands in doubt come back after their ack wait',
    );
    return;
  }
  for (const { m, at } of held) {
    if (mayBePending(info, at)) {
      try {
        await nc.request(m.reply!, '-NAK', { timeout: handBackTimeoutMs });
        log.warn({ commandId: m.commandId }, 'a command an earlier agent died running: delivered again now');
      } catch (err) {
        log.warn(
          { err, commandId: m.commandId },
          'a command an earlier agent died running comes back after its ack wait',
        );
      }
    }
    markers.handedBack(m.commandId);
  }
}

/** The consumer's info allows the message an ack subject names to be the one pending: between its floor and its last. */
function mayBePending(info: ConsumerInfo, at: { streamSeq: number; deliverySeq: number }): boolean {
  return (
    info.num_ack_pending > 0 &&
    at.streamSeq > info.ack_floor.stream_seq &&
    at.streamSeq <= info.delivered.stream_seq &&
    at.deliverySeq > info.ack_floor.consumer_seq &&
    at.deliverySeq <= info.delivered.consumer_seq
  );
}
