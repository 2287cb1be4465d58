// Entry of the haul-emu emulator (bundled into host-emulators/dist/haul-emu.cjs; host-emulators/bin/haul-emu runs it).
// The same bundle is the cgexec and vcmmdctl emulator when started as host-emulators/bin/cgexec or bin/vcmmdctl (a
// multi-call program).
import { basename } from 'node:path';
import { runTool } from '../lib/tool.ts';
import { haulEmuMain } from '../haul-emu/cli.ts';
import { cgexecMain } from '../cgexec/cli.ts';
import { vcmmdctlMain } from '../vcmmd/cli.ts';

const as = process.env['HAUL_EMU_AS'] ?? basename(process.argv[1] ?? '');

if (as === 'cgexec') void runTool('cgexec', cgexecMain);
else if (as === 'vcmmdctl') void runTool('vcmmdctl', vcmmdctlMain);
else void runTool('haul-emu', haulEmuMain);
