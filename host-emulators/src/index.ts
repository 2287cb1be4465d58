export { writeFaultPlan, type FaultRule } from './lib/faults.ts';
export { emuEnv, type EmuEnv } from './lib/emu-env.ts';
export {
  corruptionLog,
  diskChecksum,
  diskView,
  haResource,
  memoryChecksum,
  pauseWorkload,
} from './haul-emu/seams.ts';
export { withHugePages } from './container/launch.ts';
