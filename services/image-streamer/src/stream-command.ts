import type { StepCommand } from '@haul/schemas';

/** The commands a streamer runs: its steps, each moving one folder to another node (StreamArgs). */
export type StreamCommand = Extract<StepCommand, { step: 'streamImages' | 'copyLocalDisk' }>;

export const isStreamCommand = (cmd: StepCommand): cmd is StreamCommand =>
  cmd.step === 'streamImages' || cmd.step === 'copyLocalDisk';
