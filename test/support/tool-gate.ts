import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * The file a `wait` or `orphan` fault rule holds its tool at (host-emulators/src/lib/faults.ts): the tool writes its
 * pid to `<file>.pid` and goes on once `file` exists. In a folder of its own, removed by `remove` (which opens the
 * gate first, so no tool is left waiting).
 */
export type ToolGate = {
  /** The rule's `waitFor`. */
  readonly file: string;
  /** The pid of the tool that reached the gate, or undefined while none has. */
  pid(): number | undefined;
  /** Let the tool go on (again: nothing). */
  open(): void;
  remove(): void;
};

export function createToolGate(prefix = 'haul-gate-'): ToolGate {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const file = join(dir, 'go-on');
  const open = () => {
    if (!existsSync(file)) writeFileSync(file, '');
  };
  return {
    file,
    pid: () => (existsSync(`${file}.pid`) ? Number(readFileSync(`${file}.pid`, 'utf8')) : undefined),
    open,
    remove() {
      open();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
