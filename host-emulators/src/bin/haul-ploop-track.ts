// Entry of the disk-tracking helper's emulator (bundled into host-emulators/dist/haul-ploop-track.mjs).
import { runTool } from '../lib/tool.ts';
import { trackMain } from '../track/cli.ts';

await runTool('haul-ploop-track', trackMain);
