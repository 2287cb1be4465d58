export { writeFaultPlan, type FaultRule } from './lib/faults.ts';
export { emuEnv, type EmuEnv } from './lib/emu-env.ts';
export {
  corruptionLog,
  deviceDisagreement,
  diskChecksum,
  diskView,
  haResource,
  memoryChecksum,
  pauseWorkload,
} from './haul-emu/seams.ts';
export { withHugePages } from './container/launch.ts';
export { createCt, createNode, type CtOptions, type NodeOptions } from './haul-emu/setup.ts';
export { ctStatus } from './vzctl/cli.ts';
