import { executorServices, type MigrationEvent, type StepCommand } from '@haul/schemas';
import type { Identity, Role } from './registry.ts';

/**
 * What a migration's authentic log has said so far that decides who may write what next: its nodes (from
 * MigrationRequested) and, per command id, where the coordinator addressed the command and at which stream sequence.
 * Only events already admitted are learnt, so a forged event can never widen what is allowed.
 */
export type MigrationFacts = {
  source?: string;
  target?: string;
  commands: Map<string, { node: string; executor: StepCommand['executor']; step: string; seq: number }>;
};

export type Authorization = { ok: true } | { ok: false; reason: string };

export const newFacts = (): MigrationFacts => ({ commands: new Map() });

/**
 * Remember what an admitted event says about addresses (MigrationRequested, StepIntended); nothing else matters.
 * Facts come in any order (the consumer's deliveries, the process's own acks, reads back), so what is learnt does not
 * depend on it: a command intended twice counts from its earliest intent.
 */
export function learn(facts: MigrationFacts, seq: number, e: MigrationEvent): void {
  if (e.type === 'MigrationRequested') {
    facts.source ??= e.data.request.source;
    facts.target ??= e.data.request.target;
  } else if (e.type === 'StepIntended') {
    const known = facts.commands.get(e.data.commandId);
    if (!known || seq < known.seq)
      facts.commands.set(e.data.commandId, {
        node: e.data.node,
        executor: e.data.executor,
        step: e.data.step,
        seq,
      });
  }
}

/** The service an identity's events name as their actor. */
const serviceOf: Partial<Record<Role, MigrationEvent['actor']['service']>> = {
  coordinator: 'coordinator',
  ...executorServices,
};

/** Events only the coordinator decides (schedulers and ops ask it through the API; they append nothing). */
const coordinatorEvents: ReadonlySet<MigrationEvent['type']> = new Set([
  'MigrationRequested',
  'StepIntended',
  'IterationDecided',
  'CancelRequested',
  'RollbackStarted',
  'MigrationStuck',
  'RetryRequested',
  'ActionResolved',
  'MigrationCompleted',
  'MigrationRolledBack',
  'MigrationSealed',
]);

/** Executor events tied to one command must come from a command of this step, when the step matters. */
const stepOf: Partial<Record<MigrationEvent['type'], string>> = {
  RestoreStarted: 'restore',
  ResumedOnSource: 'resumeSource',
};

const no = (reason: string): Authorization => ({ ok: false, reason });
const yes: Authorization = { ok: true };

/** The signer and the actor the event claims must be the same party. */
function actorOf(id: Identity, e: MigrationEvent): Authorization {
  const service = serviceOf[id.role];
  if (!service) return no(`${id.name} (${id.role}) may not append events`);
  if (e.actor.service !== service) return no(`signed by ${id.name}, claims the actor ${e.actor.service}`);
  if (id.node !== undefined && e.actor.node !== id.node)
    return no(`signed by ${id.name}, claims the node ${e.actor.node}`);
  return yes;
}

const commandIdOf = (e: MigrationEvent): string | undefined => {
  const d = e.data as { commandId?: unknown };
  return typeof d.commandId === 'string' ? d.commandId : undefined;
};

/** An executor's event about one command: only that command's executor on that command's node may write it. */
function byAddressee(
  id: Identity,
  e: MigrationEvent,
  seq: number,
  facts: MigrationFacts,
  cid: string,
): Authorization {
  const cmd = facts.commands.get(cid);
  if (!cmd || cmd.seq >= seq) return no(`no command ${cid} was intended before it`);
  if (id.role !== cmd.executor || id.node !== cmd.node)
    return no(`${cid} was addressed to ${cmd.executor}@${cmd.node}, signed by ${id.name}`);
  const step = stepOf[e.type];
  if (step !== undefined && cmd.step !== step) return no(`${e.type} for the ${cmd.step} command ${cid}`);
  if (
    (e.type === 'StepSucceeded' || e.type === 'StepFailed') &&
    (e.data.node !== cmd.node || e.data.step !== cmd.step)
  )
    return no(`its step and node (${e.data.step}@${e.data.node}) are not those of ${cid}`);
  return yes;
}

/**
 * An executor's event tied to no command of the log. ResumedOnSource without a command (its lease expired): the
 * source's agent only. CommandRejected of a message that names no intended command (one the executor could not
 * read): any executor, as itself — it is a report that changes no state (evolve ignores it), and the signature
 * still says which executor wrote it.
 */
function byExecutor(id: Identity, e: MigrationEvent, facts: MigrationFacts): Authorization {
  if (e.type === 'ResumedOnSource')
    return id.role === 'agent' && id.node === facts.source
      ? yes
      : no(`only the source's agent resumes the CT, signed by ${id.name}`);
  if (e.type === 'CommandRejected') return yes;
  return no(`${e.type} needs the id of its command`);
}

/**
 * May `id` have written event `e` at stream sequence `seq` of a migration whose authentic log so far says `facts`?
 * Coordinator decisions: the coordinator. A step's outcome and every event an executor writes about a command: the
 * executor the command was addressed to (a StepFailed also the coordinator: it records the steps it gave up on).
 */
export function authorizeEvent(
  id: Identity,
  e: MigrationEvent,
  seq: number,
  facts: MigrationFacts,
): Authorization {
  const actor = actorOf(id, e);
  if (!actor.ok) return actor;
  if (coordinatorEvents.has(e.type))
    return id.role === 'coordinator' ? yes : no(`${e.type} is the coordinator's, signed by ${id.name}`);
  if (id.role === 'coordinator')
    return e.type === 'StepFailed' ? yes : no(`${e.type} is an executor's event`);
  const cid = commandIdOf(e);
  if (cid === undefined || (e.type === 'CommandRejected' && !intendedBefore(facts, cid, seq)))
    return byExecutor(id, e, facts);
  return byAddressee(id, e, seq, facts, cid);
}

const intendedBefore = (facts: MigrationFacts, cid: string, seq: number): boolean =>
  (facts.commands.get(cid)?.seq ?? Infinity) < seq;

/** An event only a coordinator writes (believed on its signature alone, with no facts of the events before it). */
export const isCoordinatorEvent = (e: MigrationEvent): boolean => coordinatorEvents.has(e.type);

/** Does deciding on `e` need facts that `facts` may not have yet (so a reader that joined late must read back)? */
export function needsFacts(e: MigrationEvent, facts: MigrationFacts): boolean {
  if (coordinatorEvents.has(e.type)) return false;
  const cid = commandIdOf(e);
  return cid === undefined ? facts.source === undefined : !facts.commands.has(cid);
}
