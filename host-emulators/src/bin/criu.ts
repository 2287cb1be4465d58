// Entry of the criu emulator (bundled into host-emulators/dist/criu.cjs; host-emulators/bin/criu runs it).
import { runTool } from '../lib/tool.ts';
import { criuMain } from '../criu/cli.ts';

void runTool('criu', criuMain);
