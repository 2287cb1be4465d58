import type { StepCommand } from '@haul/schemas';
import { inFlight, type MigrationState } from './state.ts';

/**
 * The order commands reach their executors in (docs/protocol.md, "Commands in order").
 *
 * A node agent runs its commands one at a time, in the order the command stream stored them, and decisions rely on
 * it: a shared disk's preparation (back up the descriptor, snapshot the origin, snapshot the copy) is intended in
 * one decision and sent without a round trip between its steps. The image streamer runs several transfers at once,
 * so the order of its commands means nothing.
 *
 * One coordinator sends a decision's commands in the order it intended them, after all its intents are in the log.
 * With more than one coordinator that is not enough: one can append the first intents of a chain while another,
 * reading the log in between, appends the rest, and each sends what it appended. The second's commands can then be
 * stored first: the agent snapshots the origin before the backup exists (the host refuses it, and the migration
 * rolls back for nothing). So a coordinator sends, before the commands it decided, the commands still in flight on
 * the same agents that it has not sent itself, oldest intent first. A command the stream already holds is dropped as
 * a duplicate (its command id is its message id); one not stored yet is stored before the new ones.
 *
 * Why that keeps every agent's commands in intent order: take two intents of one agent, j before k. Whoever stores
 * k first has sent j before it — j was in flight when it decided k (sent by itself earlier, or sent again now) — or
 * j had an outcome already: its agent ran it, or the log ended it without a run (a timeout the coordinator wrote, an
 * operator's resolve), and an agent skips a command whose outcome is in the log. Beyond the stream's duplicate
 * window a command sent again is stored a second time, and skipped the same way once it has an outcome.
 *
 * The order holds for what the stream stores, and for what an agent is handed: its durable consumer has one command
 * out at a time (max_ack_pending 1, @haul/bus's command queue), so a command it had in hand when it died comes back
 * after the ack wait before any stored after it. Behind that, the host's preconditions (the backup copy, the
 * origin's snapshot) still refuse a step that would come too early.
 */

/** Whether an executor runs its commands one at a time in stored order. */
export const runsInOrder: Readonly<Record<StepCommand['executor'], boolean>> = {
  agent: true,
  streamer: false,
};

const queueOf = (c: StepCommand): string => `${c.node}\u0000${c.executor}`;

/**
 * The commands to send for `decided` (the commands of a decision's intents, as appended after the state `s`), in
 * order: first the commands in flight in `s` on the same in-order queues that this process has not sent
 * (`sentHere`), oldest intent first, then `decided` as given.
 */
export function commandsToSend(
  s: MigrationState,
  decided: readonly StepCommand[],
  sentHere: (commandId: string) => boolean,
): StepCommand[] {
  const queues = new Set(decided.filter((c) => runsInOrder[c.executor]).map(queueOf));
  const own = new Set(decided.map((c) => c.commandId));
  const before = inFlight(s)
    .filter(
      (r) =>
        queues.has(queueOf(r.command)) && !own.has(r.command.commandId) && !sentHere(r.command.commandId),
    )
    .sort((a, b) => a.order - b.order)
    .map((r) => r.command);
  return [...before, ...decided];
}
