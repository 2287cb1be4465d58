// Entry of the ploop emulator (bundled into host-emulators/dist/ploop.cjs; host-emulators/bin/ploop runs it).
import { runTool } from '../lib/tool.ts';
import { ploopMain } from '../ploop/cli.ts';

void runTool('ploop', ploopMain);
