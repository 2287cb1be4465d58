import { mkdirSync, readFileSync, realpathSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import type { XMLBuilder, XMLParser } from 'fast-xml-parser';
import { writeFileAtomic } from '../lib/atomic.ts';
import { emuEnv } from '../lib/emu-env.ts';
import { fastXmlParser } from '../lib/lazy.ts';

export const TOPDELTA = '{5fbaabe3-6958-40ff-92a7-860e329aab41}';
export const NONE_UUID = '{00000000-0000-0000-0000-000000000000}';

export type Image = { guid: string; type: 'Compressed' | 'Plain'; file: string };
export type Shot = { guid: string; parent: string; temporary: boolean };
export type DiskDescriptor = {
  rootName: string;
  diskSize: number;
  cylinders: number;
  heads: number;
  blocksize: number;
  images: Image[];
  top: string;
  shots: Shot[];
};

/** A descriptor that cannot be parsed or breaks ploop's reader checks (validate_disk_descriptor). */
export class InvalidDescriptor extends Error {}

/**
 * The XML parser and builder, loaded at the first descriptor read or written, not at every emulator start: many of a
 * migration's calls never read one (criu's pre-dumps and checks, the CT's init, cgexec, vcmmdctl: 17 of the demo's 39),
 * and fast-xml-parser was about 170 KB of each bundle that has this module (ploop's 225 KB), about 10 ms of each start
 * (`criu -V` 70-80 ms instead of 82-88). Loaded from the package (lib/lazy.ts says why).
 */
let loaded: { parser: XMLParser; builder: XMLBuilder } | undefined;
function xmlTools(): { parser: XMLParser; builder: XMLBuilder } {
  if (loaded) return loaded;
  const fxp = fastXmlParser();
  loaded = {
    parser: new fxp.XMLParser({
      ignoreAttributes: true,
      parseTagValue: false,
      trimValues: true,
      isArray: (name) => name === 'Image' || name === 'Shot' || name === 'Storage',
    }),
    builder: new fxp.XMLBuilder({ format: true, indentBy: '  ', suppressEmptyNode: true }),
  };
  return loaded;
}

export const isGuid = (g: string): boolean =>
  /^\{[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\}$/.test(g);
export const sameGuid = (a: string, b: string): boolean => a.toLowerCase() === b.toLowerCase();

type Raw = Record<string, unknown>;
const str = (v: unknown, what: string): string => {
  if (typeof v !== 'string' || v === '') throw new InvalidDescriptor(`missing ${what}`);
  return v;
};

export function parseDescriptor(xml: string): DiskDescriptor {
  // Outside the try: a parser that cannot be loaded is an install's fault, not the descriptor's.
  const { parser } = xmlTools();
  let doc: Raw;
  try {
    doc = parser.parse(xml, true) as Raw;
  } catch (err) {
    throw new InvalidDescriptor(`not XML: ${(err as Error).message}`);
  }
  const rootName = Object.keys(doc).find((k) => k !== '?xml');
  if (!rootName) throw new InvalidDescriptor('no root element');
  const root = doc[rootName] as Raw;
  const params = (root['Disk_Parameters'] ?? {}) as Raw;
  const storages = ((root['StorageData'] as Raw | undefined)?.['Storage'] ?? []) as Raw[];
  if (storages.length !== 1) throw new InvalidDescriptor('exactly one Storage is required');
  const storage = storages[0]!;
  const images = ((storage['Image'] ?? []) as Raw[]).map<Image>((i) => ({
    guid: str(i['GUID'], 'Image/GUID'),
    type: i['Type'] === 'Plain' ? 'Plain' : 'Compressed',
    file: str(i['File'], 'Image/File'),
  }));
  if (images.length === 0) throw new InvalidDescriptor('no Image');
  const snapshots = root['Snapshots'] as Raw | undefined;
  if (snapshots === undefined) throw new InvalidDescriptor('no Snapshots element');
  let shots = ((snapshots['Shot'] ?? []) as Raw[]).map<Shot>((s) => ({
    guid: str(s['GUID'], 'Shot/GUID'),
    parent: str(s['ParentGUID'], 'Shot/ParentGUID'),
    temporary: 'Temporary' in s,
  }));
  if (shots.length === 0 && images.length === 1)
    shots = [{ guid: TOPDELTA, parent: NONE_UUID, temporary: false }];
  const top = typeof snapshots['TopGUID'] === 'string' ? snapshots['TopGUID'] : TOPDELTA;
  const blocksize = storage['Blocksize'] === undefined ? 2048 : parseUl(storage['Blocksize']);
  if (blocksize === undefined)
    throw new InvalidDescriptor(`Invalid Blocksize ${String(storage['Blocksize'])}`);
  // Disk_size, Cylinders and Heads that parse_ul refuses are left at 0, as ploop leaves them (lib/xml.c 233–259 at
  // v7.0.280).
  const dd: DiskDescriptor = {
    rootName,
    diskSize: parseUl(params['Disk_size']) ?? 0,
    cylinders: parseUl(params['Cylinders']) ?? 0,
    heads: parseUl(params['Heads']) ?? 0,
    blocksize,
    images,
    top,
    shots,
  };
  validate(dd);
  return dd;
}

/**
 * A number as ploop's parse_ul reads one (lib/xml.c 83–94 at v7.0.280, the same at d5c202b): strtoul with base 0 over
 * the whole text, decimal, 0x hexadecimal or 0 octal after optional white space and `+`, an empty text 0; undefined
 * when it is not one (absent included).
 */
function parseUl(v: unknown): number | undefined {
  if (typeof v !== 'string') return undefined;
  const t = v.trimStart();
  if (t === '') return 0;
  const m = /^\+?(?:0[xX]([0-9a-fA-F]+)|(0[0-7]*)|([1-9][0-9]*))$/.exec(t);
  if (!m) return undefined;
  return m[1] !== undefined ? parseInt(m[1], 16) : m[2] !== undefined ? parseInt(m[2], 8) : Number(m[3]);
}

export function validate(dd: DiskDescriptor): void {
  if (!isGuid(dd.top)) throw new InvalidDescriptor(`invalid TopGUID ${dd.top}`);
  if (dd.images.length !== dd.shots.length)
    throw new InvalidDescriptor('image count differs from shot count');
  const topShot = dd.shots.find((s) => sameGuid(s.guid, dd.top));
  if (!topShot || topShot.temporary) throw new InvalidDescriptor('TopGUID is not a valid snapshot');
  const bs = dd.blocksize;
  if (bs < 64 || bs > 131072 || (bs & (bs - 1)) !== 0) throw new InvalidDescriptor(`bad Blocksize ${bs}`);
  for (const i of dd.images) if (!isGuid(i.guid)) throw new InvalidDescriptor(`invalid GUID ${i.guid}`);
}

export function renderDescriptor(dd: DiskDescriptor): string {
  const sectors = dd.cylinders && dd.heads ? Math.floor(dd.diskSize / (dd.cylinders * dd.heads)) : 0;
  const body = {
    [dd.rootName]: {
      Disk_Parameters: {
        Disk_size: dd.diskSize,
        Cylinders: dd.cylinders,
        Heads: dd.heads,
        Sectors: sectors,
        Padding: 0,
      },
      StorageData: {
        Storage: {
          Start: 0,
          End: dd.diskSize,
          Blocksize: dd.blocksize,
          Image: dd.images.map((i) => ({ GUID: i.guid, Type: i.type, File: i.file })),
        },
      },
      Snapshots: {
        TopGUID: dd.top,
        Shot: dd.shots.map((s) =>
          s.temporary
            ? { GUID: s.guid, ParentGUID: s.parent, Temporary: '' }
            : { GUID: s.guid, ParentGUID: s.parent },
        ),
      },
    },
  };
  return `<?xml version="1.0"?>\n${String(xmlTools().builder.build(body))}`;
}

/**
 * A descriptor file's content, parsed: from what an emulator of this cluster already parsed of exactly this text when
 * there is such a record, else by fast-xml-parser (and recorded). Every emulated tool call is a new process, and
 * loading the parser and its first parse took about 16 ms of each call that reads a descriptor (`vzctl status` 119
 * → 97 ms, of which 83 are Node's start); a record is a file read and a JSON parse. The record holds the descriptor's
 * whole text and is used only when the file holds exactly that text now: a descriptor changed by anything else (a
 * test, a real ploop) is parsed afresh, with its errors.
 */
export function readDescriptor(path: string): DiskDescriptor {
  const xml = readFileSync(path, 'utf8');
  const known = recorded(path, xml);
  if (known) return known;
  const dd = parseDescriptor(xml);
  record(path, xml, dd);
  return dd;
}

/** Store the way ploop does: `<dd>.tmp`, fsync, rename; and record what a read of it will parse. */
export function storeDescriptor(path: string, dd: DiskDescriptor): void {
  const xml = renderDescriptor(dd);
  writeFileAtomic(path, xml);
  record(path, xml, parseDescriptor(xml));
}

/**
 * Store a descriptor naming a delta that `make` creates, in ploop's order (lib/snapshot.c do_create_snapshot and
 * ploop_switch_snapshot_ex, ploop 7 at v7.0.280 and ploop 9 at d5c202b): the new descriptor is stored whole as
 * `<dd>.tmp` first (store_diskdescriptor of conf_tmp: `<dd>.tmp.tmp`, fsync, rename), then `make` runs (the delta
 * made, an online device switched to it), then `<dd>.tmp` is renamed over the descriptor. From the delta's creation
 * on, one of the two names it: what another tool that lists the folder sees (haul's orphan sweep). `<dd>.tmp` goes
 * when `make` fails, as ploop unlinks conf_tmp; `make` removes what it made itself.
 */
export function storeDescriptorAround(path: string, dd: DiskDescriptor, make: () => void): void {
  const xml = renderDescriptor(dd);
  const tmp = `${path}.tmp`;
  writeFileAtomic(tmp, xml);
  try {
    make();
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  renameSync(tmp, path);
  record(path, xml, parseDescriptor(xml));
}

/**
 * Where the records are: `<cluster>/parsed-descriptors/`, beside the cluster's other emulator state (the device
 * registry), so that every node's emulators share them (a shared disk's descriptor is written on one node, read on
 * the other). None outside an emulated node (no HAUL_EMU_ROOT): then every read parses.
 */
let records: { root: string | undefined; dir: string | null } | undefined;
function recordsIn(): string | null {
  const root = process.env['HAUL_EMU_ROOT'];
  if (!records || records.root !== root) {
    let dir: string | null;
    try {
      dir = join(emuEnv().clusterDir, 'parsed-descriptors');
    } catch {
      dir = null;
    }
    records = { root, dir };
  }
  return records.dir;
}

/** What a record holds; `format` changes whenever what parseDescriptor makes of a text does (older records then miss). */
type Parsed = { format: number; path: string; xml: string; dd: DiskDescriptor };
// 1: records without the number; 2: Disk_size, Cylinders, Heads and Blocksize read as parse_ul reads them.
const recordFormat = 2;

/** A record's file: named by a hash of the descriptor's absolute path (the record names the path itself). */
const recordOf = (dir: string, path: string): string => join(dir, `${hash53(resolve(path))}.json`);

/**
 * cyrb53 (a public-domain 53-bit string hash), in hexadecimal: short whatever the path's length, and no node:crypto
 * to load (about 5 ms of a tool's start). Two paths with one hash only take turns in one record.
 */
function hash53(s: string): string {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return (4294967296 * (2097151 & h2) + (h1 >>> 0)).toString(16);
}

function recorded(path: string, xml: string): DiskDescriptor | undefined {
  const dir = recordsIn();
  if (!dir) return undefined;
  try {
    const r = JSON.parse(readFileSync(recordOf(dir, path), 'utf8')) as Parsed;
    return r.format === recordFormat && r.path === resolve(path) && r.xml === xml ? r.dd : undefined;
  } catch {
    return undefined; // none yet, or one cut short by a process killed while writing it
  }
}

/** A record, replaced whole (a reader finds the old one or the new one); a record that cannot be written is none. */
function record(path: string, xml: string, dd: DiskDescriptor): void {
  const dir = recordsIn();
  if (!dir) return;
  const file = recordOf(dir, path);
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      tmp,
      JSON.stringify({ format: recordFormat, path: resolve(path), xml, dd } satisfies Parsed),
    );
    renameSync(tmp, file);
  } catch {
    try {
      rmSync(tmp, { force: true });
    } catch {
      // left behind: the record is none all the same
    }
  }
}

/**
 * Absolute path of an image file, with every link resolved: a relative <File> from the folder of the descriptor's
 * real path, where ploop opens it (lib/di.c ploop_open_dd 357–378: realpath; lib/xml.c read_dd 527–559: get_basedir,
 * then get_full_path 291, 364, at v7.0.280), an absolute one as it is. The folders differ for a descriptor reached
 * through a link whose image is named with `../`, which ploop writes for an image beside the descriptor's folder
 * (get_relative_path). The file's own links are resolved as well: the emulators compare these paths as strings (which
 * device holds an image, a double attach), where the kernel compares the files.
 */
export const imagePath = (ddPath: string, file: string): string =>
  realOrAsGiven(isAbsolute(file) ? file : join(realFolderOf(ddPath), file));

/** The folder of the descriptor's real path; of its folder's when the descriptor is not there yet (ploop init). */
const realFolderOf = (ddPath: string): string => realOrAsGiven(dirname(realOrAsGiven(ddPath)));

/** The path with every link resolved, or as given when it is not there (an image about to be made). */
export function realOrAsGiven(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

/** The chain from the base to `guid` (default the top), following ParentGUID links. */
export function chainTo(dd: DiskDescriptor, guid: string = dd.top): Image[] {
  const out: Image[] = [];
  let cur: string | undefined = guid;
  for (let n = 0; cur && !sameGuid(cur, NONE_UUID) && n <= dd.shots.length; n++) {
    const shot = dd.shots.find((s) => sameGuid(s.guid, cur!));
    const image = dd.images.find((i) => sameGuid(i.guid, cur!));
    if (!shot || !image) throw new InvalidDescriptor(`broken chain at ${cur}`);
    out.unshift(image);
    cur = shot.parent;
  }
  return out;
}

/** ConvertToCHS as ploop computes the geometry. */
export function geometry(sectors: number): { cylinders: number; heads: number } {
  let heads = 16;
  if (sectors % 32 !== 0 || (sectors / 32) % heads !== 0) heads = 1;
  return { cylinders: Math.floor(sectors / 32 / heads), heads };
}
