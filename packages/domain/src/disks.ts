import type { ErrorInfo, MigrateRequest, PreflightResult } from '@haul/schemas';
import { errorCodes } from './errors.ts';
import type { MigrationState } from './state.ts';

type DiskInfo = PreflightResult['disks'][number];
/** What a preflight (or an inspection outside a migration, which makes no image folder) found on one node. */
export type Findings = Omit<PreflightResult, 'imageDir' | 'toolMs'>;
/** A disk of the CT as the source's preflight found it, with its index there (the disk's step subject). */
export type DiskRef = DiskInfo & { index: number };

const dirOf = (p: string) => p.slice(0, p.lastIndexOf('/')) || '/';
const code = errorCodes.preflightSharedDisk;

/**
 * Why the target does not share this source disk, or undefined when it does: the target's config names the same
 * descriptor path, below one of the target's shared-storage roots, and the target read the same bytes there. A
 * log written before agents located disks (no `location`) keeps the request's word (`shared`).
 */
export function notSharedBecause(d: DiskInfo, tgt: Findings | undefined): string | undefined {
  if (d.location === undefined) return d.shared ? undefined : 'the request did not declare it shared';
  if (d.location !== 'shared')
    return `it lives ${d.location === 'private' ? 'in the CT private area' : 'elsewhere'}`;
  if (d.descriptorSha256 === undefined) return 'the source cannot read its descriptor';
  const t = tgt?.disks.find((x) => x.ddxml === d.ddxml);
  if (!t) return "the target's config of the CT does not name it";
  if (t.location !== 'shared') return "it is below none of the target's shared-storage roots";
  if (t.descriptorSha256 === undefined) return 'the target cannot read its descriptor';
  if (t.descriptorSha256 !== d.descriptorSha256) return 'the target reads another descriptor at that path';
  return undefined;
}

/**
 * The CT's disks, shared or local, as both preflights found them: the one place the core learns which disks take
 * the shared-disk steps (snapshots, restore, cleanup, merge) and which are copied. Never the request's list: that
 * is only checked against these findings (checkDisks).
 */
export function migrationDisks(s: MigrationState): { shared: DiskRef[]; local: DiskRef[] } {
  return migrationDisksOf(s.preflight.source, s.preflight.target);
}

/** migrationDisks from the two nodes' findings (a preflight's, or an inspection's for a check). */
export function migrationDisksOf(
  src: Findings | undefined,
  tgt: Findings | undefined,
): { shared: DiskRef[]; local: DiskRef[] } {
  const all = (src?.disks ?? []).map((d, index) => ({ ...d, index }));
  const isShared = (d: DiskRef) => notSharedBecause(d, tgt) === undefined;
  return { shared: all.filter(isShared), local: all.filter((d) => !isShared(d)) };
}

export const sharedDisksOf = (s: MigrationState): DiskRef[] => migrationDisks(s).shared;

/**
 * Where a local disk's descriptor is on the target: where the source's finding says, else the same place below the
 * target's private area `tp` as below the source's, `sp` (the path itself when outside it).
 */
export function targetDdxmlOf(
  d: { ddxml: string; targetDdxml?: string },
  sp: string | undefined,
  tp: string | undefined,
): string {
  if (d.targetDdxml) return d.targetDdxml;
  if (sp && tp && d.ddxml.startsWith(`${sp}/`)) return `${tp}${d.ddxml.slice(sp.length)}`;
  return d.ddxml;
}

/**
 * The disk a declared path names, the way P.Haul's get_ddxml_path reads it: a path ending in `.xml` is the
 * descriptor itself; any other is the disk's folder or a delta in that folder.
 */
export function declaredDisk<D extends DiskInfo>(path: string, disks: readonly D[]): D | undefined {
  const p = path.replace(/\/+$/, '');
  if (p.endsWith('.xml')) return disks.find((d) => d.ddxml === p);
  return disks.find((d) => dirOf(d.ddxml) === p) ?? disks.find((d) => dirOf(d.ddxml) === dirOf(p));
}

/**
 * The disk checks of the preflight, before anything is frozen: every disk of the CT must be migratable (local in
 * its private area, or shared with the target), and a declared `sharedDisks` must name exactly the shared ones.
 * Each failure names the disk's path and, when the request named it, the request's field (`sharedDisks.<i>`).
 */
export function checkDisks(req: MigrateRequest, src: Findings, tgt: Findings): ErrorInfo | undefined {
  const ct = `CT ${req.ctid}`;
  const disks = src.disks.map((d, index) => ({ ...d, index }));
  if (disks.every((d) => d.location === undefined)) return legacyCount(req, src);
  const declared = req.sharedDisks;
  const why = (d: DiskRef) => notSharedBecause(d, tgt);
  for (const [i, path] of (declared ?? []).entries()) {
    const d = declaredDisk(path, disks);
    const field = `sharedDisks.${i}`;
    if (!d) return { code, field, message: `${path} is not a disk of ${ct} on ${req.source}` };
    const no = why(d);
    if (no) return { code, field, message: `${d.ddxml} of ${ct} is not shared with ${req.target}: ${no}` };
  }
  for (const d of disks) {
    const no = why(d);
    if (d.location === 'elsewhere')
      return {
        code,
        field: 'sharedDisks',
        message: `${d.ddxml} of ${ct} lives neither in its private area nor below a shared-storage root of ${req.source} (HAUL_SHARED_ROOTS)`,
      };
    if (d.location === 'shared' && no)
      return {
        code,
        field: 'sharedDisks',
        message: `${d.ddxml} of ${ct} is on shared storage of ${req.source} (${d.sharedRoot}) but not shared with ${req.target}: ${no}`,
      };
    if (declared && !no && !declared.some((p) => declaredDisk(p, disks) === d))
      return {
        code,
        field: 'sharedDisks',
        message: `${d.ddxml} of ${ct} is on shared storage (${d.sharedRoot}) but sharedDisks does not name it`,
      };
  }
  return undefined;
}

/** A log from before agents located disks: as then, every declared disk must have been found. */
function legacyCount(req: MigrateRequest, src: Findings): ErrorInfo | undefined {
  const shared = src.disks.filter((d) => d.shared).length;
  const want = (req.sharedDisks ?? []).length;
  if (shared === want) return undefined;
  return {
    code,
    field: 'sharedDisks',
    message: `only ${shared} of the ${want} shared disks are disks of CT ${req.ctid}`,
  };
}
