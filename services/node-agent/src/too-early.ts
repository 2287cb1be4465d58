import { limits } from '@haul/bus';

/**
 * How long a command that came before an earlier command of its migration (runsBefore) goes back to the stream, at
 * its n-th delivery: limits.commandTooEarlyMs, twice as long each time it comes back too early again, at most
 * limits.commandTooEarlyMaxMs. After a restart the earlier command comes within one or two of these; one that will
 * not run here soon (refused without its log learning of it, or sent to an agent without a handler for its step)
 * costs a read of the log every few seconds until the coordinator's step timeout gives it up, not four a second.
 */
export const tooEarlyDelayMs = (deliveries: number): number =>
  Math.min(limits.commandTooEarlyMs * 2 ** Math.max(0, deliveries - 1), limits.commandTooEarlyMaxMs);
