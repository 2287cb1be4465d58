import type { Logger } from '@haul/bus';
import type { FenceVerdict } from '@haul/domain';
import type { MigrationEvent, StepCommand, StepName } from '@haul/schemas';
import type { Tools } from './adapters/tools.ts';
import type { Runner } from './adapters/exec.ts';
import type { HeldDumps } from './held-dumps.ts';
import type { HostBounds } from './confinement.ts';

/** imageRoot (where this node keeps migration image folders), sharedRoots and maxLeaseMs confine commands. */
export type AgentConfig = HostBounds & {
  node: string;
  /** Prefix of the host's /etc/vz and /var/run/ve ('' on a real host; the emulated node root otherwise). */
  hostRoot: string;
  /** The agent's own durable state: command markers, held dumps. */
  stateDir: string;
  heartbeatMs: number;
  /** This host's boot id (read once at start: a reboot restarts the agent). */
  bootId: string;
};

/** A step refused or failed for a reason that is not a tool's exit status. */
export class StepError extends Error {
  readonly code: string;
  readonly field: string | undefined;
  /** `options.cause`: a tool's failure (CommandFailedError) whose command, exit code and stderr the event keeps. */
  constructor(code: string, message: string, field?: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'StepError';
    this.code = code;
    this.field = field;
  }
}

export type HandlerContext = {
  cfg: AgentConfig;
  tools: Tools;
  run: Runner;
  held: HeldDumps;
  log: Logger;
  /** The command was started before and left no result (the agent died): inspect the host, never repeat blindly. */
  reconciled: boolean;
  /** The migration's log as it is now. */
  readLog(): Promise<{ events: MigrationEvent[]; lastSeq: number }>;
  /**
   * Append `event` only if `rule` allows it on the log as read, with a compare-and-set on the last sequence; on a
   * lost race, read again and re-check. This is how RestoreStarted and ResumedOnSource fence each other.
   */
  fencedAppend(
    event: MigrationEvent,
    /** `again`: judged on the log before the event, which holds it already (judgedAgain). */
    rule: (events: readonly MigrationEvent[], again: boolean) => FenceVerdict,
  ): Promise<FenceVerdict>;
  event<T extends MigrationEvent['type']>(
    type: T,
    data: Extract<MigrationEvent, { type: T }>['data'],
    id: string,
  ): MigrationEvent;
};

export type Handler = (cmd: StepCommand, ctx: HandlerContext) => Promise<unknown>;
export type HandlerTable = Partial<Record<StepName, Handler>>;
export const argsOf = <T>(cmd: StepCommand): T => cmd.args as unknown as T;
export const etcVz = (cfg: AgentConfig): string => `${cfg.hostRoot}/etc/vz`;
export const initPidFile = (cfg: AgentConfig, ctid: string): string =>
  `${cfg.hostRoot}/var/run/ve/${ctid}.init.pid`;
