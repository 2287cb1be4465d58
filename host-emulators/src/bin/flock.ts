// Entry of the flock emulator (bundled into host-emulators/dist/flock.mjs; host-emulators/bin/flock runs it).
import { runTool } from '../lib/tool.ts';
import { flockMain } from '../flock/cli.ts';

await runTool('flock', flockMain);
