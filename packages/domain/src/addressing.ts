import type { ErrorInfo, ExecutorServices, MigrationEvent, StepCommand } from '@haul/schemas';
import { errorCodes } from './errors.ts';

/*
 * Who a command is for — its addressee: the service of its executor on its node — on both sides of the bus: the
 * executor that is handed a command (misaddressed) and the fold that reads a refusal of it (byAddressee).
 */

/**
 * The service of each executor (`@haul/schemas` executorServices, which the pure core may not import at run time: its
 * type makes this copy the same).
 */
const executorServices: ExecutorServices = { agent: 'node-agent', streamer: 'image-streamer' };

/**
 * Why a command handed to `here` (one node's agent or streamer) is not its to run, if it is: another node's or the
 * other executor's, delivered to this consumer by mistake (its addressee may still run it), or one of a step `here`
 * has no handler for (`handles` false: an older version than the coordinator's). Either way HAUL_WRONG_EXECUTOR,
 * with the field that is wrong, and nothing of the command runs.
 */
export function misaddressed(
  cmd: StepCommand,
  here: { node: string; executor: StepCommand['executor'] },
  handles: boolean,
): ErrorInfo | undefined {
  if (cmd.node !== here.node || cmd.executor !== here.executor)
    return {
      code: errorCodes.wrongExecutor,
      message: `${cmd.step} for ${cmd.node}/${cmd.executor} is not for the ${here.executor} of ${here.node}`,
      field: cmd.node !== here.node ? 'node' : 'executor',
    };
  if (!handles)
    return {
      code: errorCodes.wrongExecutor,
      message: `the ${here.executor} of ${here.node} has no handler for ${cmd.step}`,
      field: 'step',
    };
  return undefined;
}

/**
 * Whether a refusal comes from the command's addressee. Another node's, or the other executor's of the same node, got
 * the command by mistake (a misdelivery) and says nothing about it. An addressee's HAUL_WRONG_EXECUTOR means a step it
 * has no handler for.
 */
export const byAddressee = (
  e: Extract<MigrationEvent, { type: 'CommandRejected' }>,
  cmd: StepCommand,
): boolean => e.actor.node === cmd.node && e.actor.service === executorServices[cmd.executor];
