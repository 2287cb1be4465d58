import type { MigrationEvent, StepCommand } from '@haul/schemas';
import { inFlight, type MigrationState } from './state.ts';

/**
 * The order commands reach their executors in (docs/protocol.md, "Commands in order, migrations side by side").
 *
 * A node agent runs each migration's commands one at a time, in the order the command stream stored them (different
 * migrations' side by side), and decisions rely on it: a shared disk's preparation (back up the descriptor, snapshot the origin, snapshot the copy) is intended in
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
 * The order holds for what the stream stores, and for what an agent is handed on first delivery: the stream's order.
 * An agent holds several commands at once, of several migrations, and runs each migration's one at a time in the
 * order it was handed them (@haul/bus's command queue), those of different migrations side by side. After a restart
 * the server may hand them over in another order (one the dead agent held comes back after its ack wait, one stored
 * after it at once), so before it runs a command the agent checks its migration's log (runsBefore): an earlier
 * command of the same migration on the same queue still without an outcome goes first, and this one goes back to the
 * stream for a moment. Behind that, the host's preconditions (the backup copy, the origin's snapshot) still refuse a
 * step that would come too early.
 */

/** Whether an executor runs each migration's commands one at a time in stored order. */
export const runsInOrder: Readonly<Record<StepCommand['executor'], boolean>> = {
  agent: true,
  streamer: false,
};

/** An executor's command queue on one node: what runsInOrder orders. */
export const queueOf = (c: StepCommand): string => `${c.node}\u0000${c.executor}`;

/**
 * The command an in-order executor must run before `cmd` (undefined: none): the earliest intent of the same
 * migration on the same queue, before `cmd`'s own, that is still in flight in `s` (folded from the log the executor
 * just read). A command `s` does not hold as its step's current attempt has nothing to wait for: the executor's own
 * checks (intended, an outcome already) decide about it.
 */
export function runsBefore(s: MigrationState, cmd: StepCommand): StepCommand | undefined {
  if (!runsInOrder[cmd.executor]) return undefined;
  const key = s.byCommand[cmd.commandId];
  const own = key === undefined ? undefined : s.steps[key];
  if (!own || own.command.commandId !== cmd.commandId) return undefined;
  return inFlight(s)
    .filter((r) => queueOf(r.command) === queueOf(cmd) && r.order < own.order)
    .sort((a, b) => a.order - b.order)[0]?.command;
}

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

/**
 * Whether runsBefore may name a command for `cmd` in the state folded from `log`, from the log alone: an intent for
 * the same queue before `cmd`'s whose command has no StepSucceeded or StepFailed anywhere in the log. False: runsBefore
 * names none, so the executor spares itself the fold (the usual case: each command sent once the one before it
 * ended). True: the fold decides (a rejection, an operator's resolve or a newer attempt also end a command's step).
 */
export function mayRunBefore(log: readonly MigrationEvent[], cmd: StepCommand): boolean {
  if (!runsInOrder[cmd.executor]) return false;
  const ended = new Set<string>();
  for (const e of log) if (e.type === 'StepSucceeded' || e.type === 'StepFailed') ended.add(e.data.commandId);
  for (const e of log) {
    if (e.type !== 'StepIntended') continue;
    if (e.data.commandId === cmd.commandId) return false;
    if (queueOf(e.data) === queueOf(cmd) && !ended.has(e.data.commandId)) return true;
  }
  return false;
}
