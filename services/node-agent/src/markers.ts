import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from '@haul/bus';

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
          return typeof m.commandId === 'string' && typeof m.at === 'string' ? [m as Marker] : [];
        } catch {
          return [];
        }
      });
    },
  };
}

/**
 * Hand the commands an agent before this one died holding back to the stream, so that they are delivered again now
 * rather than once their ack wait runs out: a `-NAK` on each marker's ack subject (JetStream's ack protocol, which
 * the server honours only while that delivery is still pending, so a stale one changes nothing). The consumer hands
 * over one command at a time, so until then nothing else ran either: with a CT frozen, seconds of its downtime.
 * Before the consumer starts: no delivery to this process can be pending yet. Assumes one agent per node, as the
 * end of orphaned tools does.
 */
export async function handBackInDoubt(
  nc: NatsConnection,
  markers: CommandMarkers,
  log: Logger,
): Promise<void> {
  const held = markers.inDoubt().filter((m) => m.reply !== undefined);
  for (const m of held) {
    log.warn(
      { commandId: m.commandId },
      'a command an earlier agent died running: handed back to be delivered again now',
    );
    nc.publish(m.reply!, '-NAK');
  }
  if (held.length > 0) await nc.flush();
}
