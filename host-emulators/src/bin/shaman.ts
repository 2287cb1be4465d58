// Entry of the shaman emulator (bundled into host-emulators/dist/shaman.mjs; host-emulators/bin/shaman runs it).
import { runTool } from '../lib/tool.ts';
import { shamanMain } from '../shaman/cli.ts';

await runTool('shaman', shamanMain);
