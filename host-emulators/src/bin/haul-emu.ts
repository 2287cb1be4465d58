// Entry of the haul-emu emulator (bundled into host-emulators/dist/haul-emu.mjs; host-emulators/bin/haul-emu runs it).
// The same bundle is the cgexec emulator when started as host-emulators/bin/cgexec (a multi-call program).
import { basename } from 'node:path';
import { runTool } from '../lib/tool.ts';
import { haulEmuMain } from '../haul-emu/cli.ts';
import { cgexecMain } from '../cgexec/cli.ts';

if (process.env['HAUL_EMU_AS'] === 'cgexec' || basename(process.argv[1] ?? '') === 'cgexec')
  await runTool('cgexec', cgexecMain);
else await runTool('haul-emu', haulEmuMain);
