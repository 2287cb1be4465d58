// Entry of the emulated container's init (bundled into host-emulators/dist/haul-ct-init.mjs).
import '../container/main.ts';
