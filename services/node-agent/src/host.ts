import type { Runner } from './adapters/exec.ts';
import { createTools } from './adapters/tools.ts';
import { hostFacts, type HostFacts } from './capabilities.ts';
import type { HandlerTable } from './context.ts';
import { handlers } from './handlers/index.ts';

/**
 * What a node agent does to its host: a handler per step and the host's facts for the heartbeat. Everything else
 * (the command queue, markers, the duplicate check, the fences, the outcome events, the held-dump leases) is the
 * agent's own and runs the same whatever the host.
 */
export type AgentHost = {
  handlers: HandlerTable;
  /** criu's version and features and the CPU flags, read once at start. */
  facts(): Promise<HostFacts>;
  /** A CT's VE_PRIVATE (default: from its config under /etc/vz, as the handlers read it). */
  privateArea?(ctid: string): string | undefined;
};

/** The real host: vzctl, criu and ploop through execa (the emulators when their folder is first on PATH). */
export const toolHost = (run: Runner, signal: AbortSignal): AgentHost => ({
  handlers,
  facts: () => hostFacts(createTools(run, signal)),
});
