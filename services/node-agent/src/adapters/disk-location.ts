import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { PreflightResult } from '@haul/schemas';
import { resolveOnHost } from '../confinement.ts';
import { backupOf } from './descriptor.ts';
import { entryAt } from './files.ts';

export type DiskInfo = PreflightResult['disks'][number];

const below = (path: string, root: string): boolean => path.startsWith(`${root}/`);

/**
 * Where one disk of the CT lives on this node, judged by the descriptor's real path (a symlink into shared storage
 * counts where it leads): below a shared-storage root (the roots are real paths, settings.ts), below the CT's
 * private area, or elsewhere. For a shared disk also the SHA-256 of the descriptor's bytes: the core compares it
 * with the other node's (docs/protocol.md, "Shared disks: found, not declared"); and whether a backup of the
 * descriptor is beside it already (backupLeft: the core refuses the disk, checkBackupsLeft).
 */
export function locateDisk(ddxml: string, vePrivate: string, sharedRoots: readonly string[]): DiskInfo {
  const real = resolveOnHost(ddxml);
  const path = real.ok ? real.path : ddxml;
  const root = sharedRoots.find((r) => below(path, r));
  if (root !== undefined) {
    const info: DiskInfo = { ddxml, shared: true, location: 'shared', sharedRoot: root };
    const digest = descriptorDigest(path);
    if (digest) info.descriptorSha256 = digest;
    // Where the preparation puts its backup: one there already is another migration's.
    if (entryAt(backupOf(ddxml))) info.backupLeft = true;
    return info;
  }
  const priv = vePrivate ? resolveOnHost(vePrivate) : undefined;
  const inPrivate = priv?.ok === true && below(path, priv.path);
  return { ddxml, shared: false, location: inPrivate ? 'private' : 'elsewhere' };
}

/** The descriptor's digest, or undefined when this node cannot read it (not there: then it sees no such disk). */
function descriptorDigest(path: string): string | undefined {
  try {
    return createHash('sha256').update(readFileSync(path)).digest('hex');
  } catch {
    return undefined;
  }
}
