import { realpathSync, statSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { maxFrozenLeaseMs } from '@haul/bus';
import type { HostBounds } from './confinement.ts';

/** A setting the agent cannot start with; main.ts prints it and exits 2. */
export class SettingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SettingError';
  }
}

/** An existing folder other than `/`, by its real path (the roots are compared with resolved paths). */
function rootFolder(name: string, path: string): string {
  if (!isAbsolute(path)) throw new SettingError(`${name}: ${JSON.stringify(path)} is not an absolute path`);
  let real: string;
  try {
    real = realpathSync.native(path);
  } catch {
    throw new SettingError(`${name}: ${path} does not exist`);
  }
  if (!statSync(real).isDirectory()) throw new SettingError(`${name}: ${path} is not a folder`);
  // A root of / would confine nothing.
  if (real === '/') throw new SettingError(`${name}: ${path} is the whole file system`);
  return real;
}

/**
 * The roots and bounds commands are confined to, from the environment: HAUL_IMAGE_ROOT (must exist: main.ts makes
 * it), HAUL_SHARED_ROOTS (colon-separated folders holding shared ploop disks; none by default, which refuses
 * every shared disk) and HAUL_MAX_LEASE_MS (1000 to the schema's bound, which is the default).
 */
export function hostBoundsFromEnv(env: NodeJS.ProcessEnv, imageRoot: string): HostBounds {
  const shared = (env['HAUL_SHARED_ROOTS'] ?? '').split(':').filter((s) => s !== '');
  const rawLease = env['HAUL_MAX_LEASE_MS'];
  const lease = rawLease === undefined ? maxFrozenLeaseMs : Number(rawLease);
  if (rawLease !== undefined && (!/^[0-9]+$/.test(rawLease) || lease < 1000 || lease > maxFrozenLeaseMs))
    throw new SettingError(`HAUL_MAX_LEASE_MS must be a whole number from 1000 to ${maxFrozenLeaseMs}`);
  return {
    imageRoot: rootFolder('HAUL_IMAGE_ROOT', imageRoot),
    sharedRoots: shared.map((s) => rootFolder('HAUL_SHARED_ROOTS', s)),
    maxLeaseMs: lease,
  };
}
