export type { FaultRule } from './lib/faults.ts';
