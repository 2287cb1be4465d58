// Entry of the flock emulator (bundled into host-emulators/dist/flock.cjs; host-emulators/bin/flock runs it).
import { runTool } from '../lib/tool.ts';
import { flockMain } from '../flock/cli.ts';

void runTool('flock', flockMain);
