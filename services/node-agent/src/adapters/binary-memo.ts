import { statSync } from 'node:fs';
import type { Runner } from './exec.ts';
import { pathOf } from './tools.ts';

/**
 * The file PATH finds for `tool`, as an identity: device, inode, size and modification time of what it resolves to
 * (symlinks followed). A package upgrade writes a new file and renames it over the old one (a new inode), and an
 * alternatives switch points the link elsewhere: either way the identity changes. undefined when PATH finds none.
 */
export function binaryIdentity(tool: string, env: NodeJS.ProcessEnv): string | undefined {
  const p = pathOf(tool, env);
  const s = p === undefined ? undefined : statSync(p, { throwIfNoEntry: false });
  return s?.isFile() ? `${p}:${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}` : undefined;
}

/**
 * A runner that answers the listed calls (exact command lines) from memory while the binary PATH finds for their
 * tool is the one that answered. For the questions whose answer depends only on the tool's binary and the running
 * kernel: criu's version and its memory tracking check (tools.ts criuFactCalls), which the agent asked at its start
 * and again at every preflight and check, two tool starts each time. A kernel changes only with a reboot, which
 * restarts the agent; an upgraded criu is a new file, so it is asked again. Only an answer the runner returned is
 * kept (a timeout or a refused exit status throws, and is asked again next time), and any other call runs as before.
 */
export function withBinaryMemo(
  run: Runner,
  env: NodeJS.ProcessEnv,
  calls: readonly (readonly string[])[],
): Runner {
  const memoized = new Set(calls.map((c) => JSON.stringify(c)));
  const answers = new Map<string, { identity: string; result: Awaited<ReturnType<Runner>> }>();
  return async (tool, args, opts) => {
    const key = JSON.stringify([tool, ...args]);
    if (!memoized.has(key)) return run(tool, args, opts);
    const identity = binaryIdentity(tool, env);
    const known = answers.get(key);
    if (identity !== undefined && known?.identity === identity) return known.result;
    const result = await run(tool, args, opts);
    // The identity from before the run: a binary replaced while it ran is asked again next time.
    if (identity !== undefined) answers.set(key, { identity, result });
    return result;
  };
}
