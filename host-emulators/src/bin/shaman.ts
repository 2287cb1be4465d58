// Entry of the shaman emulator (bundled into host-emulators/dist/shaman.cjs; host-emulators/bin/shaman runs it).
import { runTool } from '../lib/tool.ts';
import { shamanMain } from '../shaman/cli.ts';

void runTool('shaman', shamanMain);
