import { realpathSync, statSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import type { NodeAgentConfig } from '@haul/schemas';
import type { HostBounds } from './confinement.ts';

/** A setting the agent cannot start with: `field` is its key in the settings (main.ts prints it and exits 2). */
export class SettingError extends Error {
  readonly field: string;
  constructor(field: string, message: string) {
    super(message);
    this.name = 'SettingError';
    this.field = field;
  }
}

/** An existing folder other than `/`, by its real path (the roots are compared with resolved paths). */
function rootFolder(field: string, path: string): string {
  if (!isAbsolute(path)) throw new SettingError(field, `${JSON.stringify(path)} is not an absolute path`);
  let real: string;
  try {
    real = realpathSync.native(path);
  } catch {
    throw new SettingError(field, `${path} does not exist`);
  }
  if (!statSync(real).isDirectory()) throw new SettingError(field, `${path} is not a folder`);
  // A root of / would confine nothing.
  if (real === '/') throw new SettingError(field, `${path} is the whole file system`);
  return real;
}

/**
 * The roots and bounds commands are confined to, from the agent's settings: imageRoot (must exist: main.ts makes it),
 * sharedRoots (folders holding shared ploop disks; none refuses every shared disk) and maxLeaseMs (its range is the
 * schema's).
 */
export function hostBoundsOf(
  s: Pick<NodeAgentConfig, 'imageRoot' | 'sharedRoots' | 'maxLeaseMs'>,
): HostBounds {
  return {
    imageRoot: rootFolder('imageRoot', s.imageRoot),
    sharedRoots: s.sharedRoots.map((r) => rootFolder('sharedRoots', r)),
    maxLeaseMs: s.maxLeaseMs,
  };
}
