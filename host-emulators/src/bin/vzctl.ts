// Entry of the vzctl emulator (bundled into host-emulators/dist/vzctl.cjs; host-emulators/bin/vzctl runs it).
import { runTool } from '../lib/tool.ts';
import { vzctlMain } from '../vzctl/cli.ts';

void runTool('vzctl', vzctlMain);
