import { lstatSync, readdirSync, readlinkSync } from 'node:fs';
import { dirname, isAbsolute, join, normalize, relative, resolve, sep } from 'node:path';
import type { StreamOffer } from '@haul/schemas';

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

export class UnsafeManifestError extends Error {
  readonly field: string;
  constructor(field: string, message: string) {
    super(message);
    this.name = 'UnsafeManifestError';
    this.field = field;
  }
}

const inside = (root: string, p: string) => {
  const r = relative(resolve(root), resolve(p));
  return r === '' || (!r.startsWith('..') && !isAbsolute(r));
};

/**
 * Refuse anything that could write outside the transfer: absolute paths, `..`, NUL bytes, a target folder outside
 * the allowed roots, and symlinks whose target leaves the allowed root that holds the target folder.
 */
export function checkManifest(manifest: ManifestEntry[], targetDir: string, allowedRoots: string[]): void {
  const root = allowedRoots.find((r) => inside(r, targetDir) && resolve(r) !== resolve(targetDir));
  if (!root)
    throw new UnsafeManifestError('targetDir', `${targetDir} is not inside ${allowedRoots.join(' or ')}`);
  const seen = new Set<string>();
  manifest.forEach((e, i) => {
    const field = `manifest.${i}.path`;
    if (
      e.path.includes('\0') ||
      isAbsolute(e.path) ||
      e.path.split(/[\\/]/).includes('..') ||
      normalize(e.path).startsWith(`..${sep}`)
    ) {
      throw new UnsafeManifestError(field, `unsafe path ${JSON.stringify(e.path)}: absolute or with '..'`);
    }
    if (seen.has(e.path)) throw new UnsafeManifestError(field, `duplicate path ${e.path}`);
    seen.add(e.path);
    if (!inside(targetDir, join(targetDir, e.path)))
      throw new UnsafeManifestError(field, `${e.path} leaves the target folder`);
    if (e.kind === 'symlink') {
      const t = e.linkTarget ?? '';
      if (isAbsolute(t) || !inside(root, resolve(dirname(join(targetDir, e.path)), t))) {
        throw new UnsafeManifestError(
          `manifest.${i}.linkTarget`,
          `link ${e.path} → ${t} points outside ${root}`,
        );
      }
    }
    if (e.kind === 'file' && (e.size === undefined || e.size < 0))
      throw new UnsafeManifestError(`manifest.${i}.size`, `file ${e.path} has no size`);
  });
}
