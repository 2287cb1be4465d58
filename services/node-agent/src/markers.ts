import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Command markers: a file per command the agent started and has not recorded an outcome for. A marker found at
 * delivery means the agent died mid-step, so the step is reconciled by inspecting the host. The file name is the
 * SHA-256 of the command id: always 64 characters whatever the id, and two ids never share a marker (a name made
 * by replacing characters would make `a.b:1` and `a_b_1` one marker).
 */
export type CommandMarkers = ReturnType<typeof createCommandMarkers>;

export function createCommandMarkers(dir: string) {
  mkdirSync(dir, { recursive: true });
  const pathOf = (commandId: string): string =>
    join(dir, createHash('sha256').update(commandId).digest('hex'));
  return {
    pathOf,
    /** Mark the command started; true if it was already marked (a run that left no outcome). */
    begin(commandId: string): boolean {
      const p = pathOf(commandId);
      const inDoubt = existsSync(p);
      writeFileSync(p, JSON.stringify({ commandId, at: new Date().toISOString() }));
      return inDoubt;
    },
    /** The outcome is in the log: forget the command. */
    end(commandId: string): void {
      rmSync(pathOf(commandId), { force: true });
    },
  };
}
