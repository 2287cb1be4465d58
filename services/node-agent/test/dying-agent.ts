import { spawn } from 'node:child_process';

/**
 * Run `script` (an ES module, TypeScript allowed) as an agent process of its own, from this folder, and resolve with
 * the signal that ended it: the tests' agents kill themselves at the moment they test (SIGKILL, as the OOM killer).
 */
export function runAgentScript(script: string): Promise<NodeJS.Signals | null> {
  const agent = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: new URL('.', import.meta.url).pathname,
    stdio: 'ignore',
  });
  return new Promise((resolve) => agent.on('exit', (_c, sig) => resolve(sig)));
}
