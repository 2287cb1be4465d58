import type {
  Actor,
  EventType,
  MigrationEvent,
  MigrationEvent1,
  StepCommand,
  StepCommand1,
  StepName,
  StepSucceededData,
  StepSucceededData1,
} from '../generated/messages.ts';

export type * from '../generated/messages.ts';

/** One event type's full envelope, narrowed. */
export type EventOf<T extends EventType> = Extract<MigrationEvent1, { type: T }> &
  Omit<MigrationEvent, 'type' | 'data'>;
/** One event type's payload. */
export type EventData<T extends EventType> = Extract<MigrationEvent1, { type: T }>['data'];
/** An event before the log gives it a sequence: what `decide` and the services produce. */
export type AnyEvent = MigrationEvent;

/** Typed command args and results per step. */
export type StepArgs<S extends StepName> = Extract<StepCommand1, { step: S }>['args'];
export type StepResult<S extends StepName> = Extract<StepSucceededData1, { step: S }>['result'];
export type CommandOf<S extends StepName> = Extract<StepCommand1, { step: S }> &
  Omit<StepCommand, 'step' | 'args'>;
export type SucceededOf<S extends StepName> = Extract<StepSucceededData1, { step: S }> &
  Omit<StepSucceededData, 'step' | 'result'>;

/** The events that end a migration's log: nothing is appended after one of them. */
export const terminalEventTypes: ReadonlySet<string> = new Set<MigrationEvent['type']>([
  'MigrationCompleted',
  'MigrationRolledBack',
]);
export const isTerminalEvent = (e: { type: string }): boolean => terminalEventTypes.has(e.type);

/** The service that runs an executor's commands (a command's `executor`), as its events name it (`actor.service`). */
export const executorServices = {
  agent: 'node-agent',
  streamer: 'image-streamer',
} as const satisfies Record<StepCommand['executor'], Actor['service']>;
export type ExecutorServices = typeof executorServices;
