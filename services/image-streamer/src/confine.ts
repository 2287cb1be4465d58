import {
  closeSync,
  constants,
  existsSync,
  lstatSync,
  mkdirSync,
  openSync,
  readlinkSync,
  realpathSync,
  type Stats,
} from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';

/**
 * Where the receiving streamer may create and write, checked on the disk, not only on the strings: every path it
 * writes lies below one of its roots with no symbolic link on the way (each component is lstat'ed, and the last is
 * opened with O_NOFOLLOW), and a link a manifest asks for must resolve inside that root, following the manifest's
 * own links and the links already on the disk. Node has no openat(), so a component swapped for a link between the
 * check and the open (by someone who can already write in the root) is not covered; nothing the data plane receives
 * can create such a link, since links from a manifest are created last and never written through.
 */
export class UnsafeManifestError extends Error {
  readonly field: string;
  constructor(field: string, message: string) {
    super(message);
    this.name = 'UnsafeManifestError';
    this.field = field;
  }
}

/** The kernel's limit on links followed in one lookup (MAXSYMLINKS). */
const MAX_LINKS = 40;

/** Lexically: is `p` `root` or below it? */
export const inside = (root: string, p: string): boolean => {
  const r = relative(resolve(root), resolve(p));
  return r === '' || (!r.startsWith('..') && !isAbsolute(r));
};

function lstatOrUndefined(p: string): Stats | undefined {
  try {
    return lstatSync(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** The components of `rel` as absolute paths below `base`, parents first. */
function prefixes(base: string, rel: string): string[] {
  const out: string[] = [];
  let cur = base;
  for (const part of rel.split('/').filter((s) => s !== '' && s !== '.')) out.push((cur = join(cur, part)));
  return out;
}

/**
 * The physical target folder of an offer: the allowed root that holds it (its real path) and the folder below it.
 * Every existing component between the two must be a real folder, not a link.
 */
export function confineTarget(targetDir: string, allowedRoots: string[]): { root: string; dir: string } {
  const root = allowedRoots.find((r) => inside(r, targetDir) && resolve(r) !== resolve(targetDir));
  if (!root)
    throw new UnsafeManifestError('targetDir', `${targetDir} is not inside ${allowedRoots.join(' or ')}`);
  // The root is configuration (trusted, and may itself be a link); a root not created yet has nothing below it.
  const real = existsSync(root) ? realpathSync(root) : resolve(root);
  const rel = relative(resolve(root), resolve(targetDir));
  for (const p of prefixes(real, rel)) {
    const st = lstatOrUndefined(p);
    if (!st) break;
    if (!st.isDirectory())
      throw new UnsafeManifestError(
        'targetDir',
        `${p} is ${st.isSymbolicLink() ? 'a symbolic link' : 'not a folder'}`,
      );
  }
  return { root: real, dir: join(real, rel) };
}

/**
 * What is already on the disk below `dir` must not redirect an entry: no component of an entry's path may be an
 * existing link (a link entry may replace a link at its own path) or a non-folder where the path goes on below it.
 */
export function checkTreeOnDisk(paths: { path: string; kind: string }[], dir: string): void {
  const seen = new Set<string>();
  paths.forEach((e, i) => {
    const parts = prefixes(dir, e.path);
    parts.forEach((p, k) => {
      const last = k === parts.length - 1;
      if (!last && seen.has(p)) return;
      const st = lstatOrUndefined(p);
      if (st?.isSymbolicLink() && !(last && e.kind === 'symlink'))
        throw new UnsafeManifestError(
          `manifest.${i}.path`,
          `${relative(dir, p)} is a symbolic link on this node`,
        );
      if (st && !last && !st.isDirectory())
        throw new UnsafeManifestError(
          `manifest.${i}.path`,
          `${relative(dir, p)} is not a folder on this node`,
        );
      if (!last) seen.add(p);
    });
  });
}

/**
 * Where the link at `linkPath` with `target` ends up, as the kernel would resolve it: the manifest's links
 * (`links`, absolute path → target; they shadow the disk) and the links on the disk are followed, and every step of
 * the way must stay inside `root`. A `..` steps back only out of a folder: one on the disk now, or one the transfer
 * makes (`folders`). Out of a name that is nothing yet it is refused: a link placed there later (by another transfer)
 * would take it elsewhere, and two links each judged alone could then lead out of the root together. Throws a plain
 * Error saying why when it does not.
 */
export function resolveLink(
  linkPath: string,
  target: string,
  links: Map<string, string>,
  root: string,
  folders: ReadonlySet<string>,
): string {
  let hops = 0;
  const walk = (base: string, to: string): string => {
    if (isAbsolute(to)) throw new Error(`it goes through the absolute link target ${to}`);
    let cur = base;
    for (const part of to.split('/')) {
      if (part === '' || part === '.') continue;
      if (part === '..' && !folders.has(cur) && lstatOrUndefined(cur)?.isDirectory() !== true)
        throw new Error(`it steps back out of ${cur}, which is no folder yet`);
      const next = part === '..' ? dirname(cur) : join(cur, part);
      const link = part === '..' ? undefined : (links.get(next) ?? diskLink(next, links));
      if (link === undefined) cur = next;
      else if (++hops > MAX_LINKS) throw new Error(`more than ${MAX_LINKS} links`);
      else cur = walk(cur, link);
      if (!inside(root, cur)) throw new Error(`it leads to ${cur}`);
    }
    return cur;
  };
  return walk(dirname(linkPath), target);
}

function diskLink(p: string, links: Map<string, string>): string | undefined {
  if (links.has(p)) return undefined;
  return lstatOrUndefined(p)?.isSymbolicLink() ? readlinkSync(p) : undefined;
}

/**
 * Create the folders of `rel` below `base` (which exists) one component at a time, refusing any component that is a
 * link or not a folder: a plain `mkdir -p` would follow a link planted on the way. Returns the folders it made, the
 * outermost first.
 */
export function mkdirsNoFollow(base: string, rel: string, mode = 0o755): string[] {
  const made: string[] = [];
  for (const p of prefixes(base, rel)) {
    try {
      mkdirSync(p, mode);
      made.push(p);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const st = lstatSync(p);
    if (!st.isDirectory())
      throw new Error(`${p} is ${st.isSymbolicLink() ? 'a symbolic link' : 'not a folder'}`);
  }
  return made;
}

/** Open flags that never follow a link in the last component (ELOOP instead). */
export const noFollow = {
  read: constants.O_RDONLY | constants.O_NOFOLLOW,
  update: constants.O_RDWR | constants.O_NOFOLLOW,
  create: constants.O_RDWR | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW,
} as const;

/** A regular file's size, or undefined when `p` is missing or anything else (a link included). */
export function regularFileSize(p: string): number | undefined {
  const st = lstatOrUndefined(p);
  return st?.isFile() ? st.size : undefined;
}

/** Create (or empty) a regular file without following a link at its path. */
export function createEmptyFile(p: string, mode: number): void {
  closeSync(openSync(p, noFollow.create, mode));
}
