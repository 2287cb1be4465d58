// Entry of the haul-emu emulator (bundled into host-emulators/dist/haul-emu.mjs; host-emulators/bin/haul-emu runs it).
import { runTool } from '../lib/tool.ts';
import { haulEmuMain } from '../haul-emu/cli.ts';

await runTool('haul-emu', haulEmuMain);
