export { writeFaultPlan, type FaultRule } from './lib/faults.ts';
