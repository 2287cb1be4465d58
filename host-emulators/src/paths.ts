import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The emulators' bin folder. This module sits right in src/, as the bundles sit right in dist/, so the path from
 * import.meta.url is the same from the sources and from a bundle.
 */
export const emulatorBinDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin');
