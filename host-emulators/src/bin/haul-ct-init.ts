// Entry of the emulated container's init (bundled into host-emulators/dist/haul-ct-init.cjs).
import '../container/main.ts';
