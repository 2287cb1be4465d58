// The programs scripts/build.mjs bundles (a module of its own, so that tests read the list without esbuild).
/**
 * Each program: its entry and where its bundle goes (dist/ beside src/, so paths from import.meta.url hold). The
 * services and the CLI are ES modules. The emulators are CommonJS: they start thousands of times in a test run (2,812
 * tool calls in one e2e tier, 211 CPU-s of its 455), and Node 20 starts a CommonJS file without its ES module loader:
 * `criu -V` took 48-49 ms of CPU instead of 61 (host-emulators/bin/package.json makes their bin scripts CommonJS too).
 */
export const esmPrograms = [
  ['services/coordinator/src/main.ts', 'services/coordinator/dist/main.mjs'],
  ['services/node-agent/src/main.ts', 'services/node-agent/dist/main.mjs'],
  ['services/image-streamer/src/main.ts', 'services/image-streamer/dist/main.mjs'],
  ['packages/cli/src/bin.ts', 'packages/cli/dist/haul.mjs'],
];
export const emulatorPrograms = [
  'ploop',
  'vzctl',
  'criu',
  'shaman',
  'flock',
  'haul-emu',
  'haul-ct-init',
  'haul-ploop-track',
].map((t) => [`host-emulators/src/bin/${t}.ts`, `host-emulators/dist/${t}.cjs`]);
export const programs = [...esmPrograms, ...emulatorPrograms];
