import { lstatSync, readdirSync, readlinkSync } from 'node:fs';
import { dirname, isAbsolute, join, normalize, resolve, sep } from 'node:path';
import type { StreamOffer } from '@haul/schemas';
import { checkTreeOnDisk, confineTarget, inside, resolveLink, UnsafeManifestError } from './confine.ts';
import { receiverSuffixes } from './part-file.ts';

export { UnsafeManifestError };

export type ManifestEntry = StreamOffer['manifest'][number];

/** Walk a folder: directories first (parents before children), then files and symlinks, in a stable order. */
export function buildManifest(root: string): ManifestEntry[] {
  const out: ManifestEntry[] = [];
  const walk = (rel: string) => {
    for (const name of readdirSync(join(root, rel)).sort()) {
      const p = rel ? `${rel}/${name}` : name;
      const st = lstatSync(join(root, p));
      if (st.isDirectory()) {
        out.push({ path: p, kind: 'dir', mode: st.mode & 0o7777 });
        walk(p);
      } else if (st.isSymbolicLink())
        out.push({ path: p, kind: 'symlink', linkTarget: readlinkSync(join(root, p)) });
      else if (st.isFile()) out.push({ path: p, kind: 'file', size: st.size, mode: st.mode & 0o7777 });
    }
  };
  walk('');
  return out;
}

/**
 * Refuse anything that could write outside the transfer, and say where it goes: absolute paths, `..`, NUL bytes, a
 * target folder outside the allowed roots or reached through a link, a path that goes through a link (one of the
 * manifest's own, or one already on the disk), and links that resolve out of the allowed root that holds the target
 * folder (chains of links and links on the disk followed). Returns the physical root and target folder.
 */
export function checkManifest(
  manifest: ManifestEntry[],
  targetDir: string,
  allowedRoots: string[],
): { root: string; dir: string } {
  const { root, dir } = confineTarget(targetDir, allowedRoots);
  const links = new Map<string, string>();
  const seen = new Set<string>();
  manifest.forEach((e, i) => {
    checkEntry(e, i, dir);
    if (seen.has(e.path)) throw new UnsafeManifestError(`manifest.${i}.path`, `duplicate path ${e.path}`);
    seen.add(e.path);
    if (e.kind === 'symlink') links.set(join(dir, e.path), e.linkTarget ?? '');
  });
  manifest.forEach((e, i) => {
    const through = parentsOf(e.path).find((p) => links.has(join(dir, p)));
    if (through !== undefined)
      throw new UnsafeManifestError(`manifest.${i}.path`, `${e.path} goes through the link ${through}`);
  });
  checkTreeOnDisk(manifest, dir);
  const folders = foldersMade(manifest, root, dir);
  manifest.forEach((e, i) => {
    if (e.kind !== 'symlink') return;
    const t = e.linkTarget ?? '';
    try {
      resolveLink(join(dir, e.path), t, links, root, folders);
    } catch (err) {
      throw new UnsafeManifestError(
        `manifest.${i}.linkTarget`,
        `link ${e.path} → ${t} points outside ${root}: ${(err as Error).message}`,
      );
    }
  });
  return { root, dir };
}

/** `a/b/c` → [`a`, `a/b`]. */
function parentsOf(path: string): string[] {
  const parts = path.split('/');
  return parts.slice(1).map((_, k) => parts.slice(0, k + 1).join('/'));
}

function checkEntry(e: ManifestEntry, i: number, dir: string): void {
  const field = `manifest.${i}.path`;
  if (
    e.path.includes('\0') ||
    isAbsolute(e.path) ||
    e.path.split(/[\\/]/).includes('..') ||
    normalize(e.path).startsWith(`..${sep}`)
  ) {
    throw new UnsafeManifestError(field, `unsafe path ${JSON.stringify(e.path)}: absolute or with '..'`);
  }
  const own = receiverSuffixes.find((x) => e.path.endsWith(x));
  if (own)
    throw new UnsafeManifestError(
      field,
      `${e.path} ends in ${own}, a receiver's own file beside the file it names: the two would be taken for each other`,
    );
  if (normalize(e.path) !== e.path.replace(/\/+$/, ''))
    throw new UnsafeManifestError(field, `path ${JSON.stringify(e.path)} is not in normal form`);
  if (!inside(dir, join(dir, e.path)) || resolve(dir) === resolve(join(dir, e.path)))
    throw new UnsafeManifestError(field, `${e.path} leaves the target folder`);
  if (e.kind === 'symlink' && isAbsolute(e.linkTarget ?? ''))
    throw new UnsafeManifestError(`manifest.${i}.linkTarget`, `link ${e.path} has an absolute target`);
  if (e.kind === 'file' && (e.size === undefined || e.size < 0))
    throw new UnsafeManifestError(`manifest.${i}.size`, `file ${e.path} has no size`);
}

/**
 * The folders a transfer makes (or finds) on its way: the target folder and every folder above it up to the root, each
 * entry's parents, and its `dir` entries. The receiver makes each one a real folder (mkdirsNoFollow).
 */
function foldersMade(manifest: ManifestEntry[], root: string, dir: string): Set<string> {
  const out = new Set<string>();
  for (let d = dir; inside(root, d); d = dirname(d)) {
    out.add(d);
    if (d === root) break;
  }
  for (const e of manifest) {
    for (const p of parentsOf(e.path)) out.add(join(dir, p));
    if (e.kind === 'dir') out.add(join(dir, e.path));
  }
  return out;
}
