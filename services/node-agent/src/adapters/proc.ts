import { readdirSync } from 'node:fs';
import { procStat, type ProcStat } from '@haul/bus';

export { procStat, type ProcStat } from '@haul/bus';

/** A process that has not ended: there, and not a zombie (ended, not yet reaped by its parent). */
const live = (st: ProcStat | undefined): st is ProcStat => st !== undefined && st.state !== 'Z';

/** Is the process with this pid there and not ended, whoever owns it? */
export const processLive = (pid: number): boolean => live(procStat(pid));

/** Every process now, but zombies. */
export function liveProcesses(): ProcStat[] {
  const out: ProcStat[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const st = procStat(Number(name));
    if (live(st)) out.push(st);
  }
  return out;
}
