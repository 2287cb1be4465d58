// Entry of the disk-tracking helper's emulator (bundled into host-emulators/dist/haul-ploop-track.cjs).
import { runTool } from '../lib/tool.ts';
import { trackMain } from '../track/cli.ts';

void runTool('haul-ploop-track', trackMain);
