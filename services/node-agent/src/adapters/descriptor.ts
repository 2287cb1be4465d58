import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { realPathOr } from './files.ts';

/**
 * Read a DiskDescriptor.xml to inspect it (the tools make every change). Only what the agent needs: images with
 * their GUIDs and absolute file paths, and the snapshot tree.
 */
export type DescriptorView = {
  images: { guid: string; file: string }[];
  shots: { guid: string; parent: string }[];
  top: string;
};

export const TOPDELTA = '{5fbaabe3-6958-40ff-92a7-860e329aab41}';

const parser = new XMLParser({
  ignoreAttributes: true,
  parseTagValue: false,
  trimValues: true,
  isArray: (n) => n === 'Image' || n === 'Shot',
});

/** Where the shared-ploop dance backs a descriptor up (P.Haul's DiskDescriptor.xml.copy), beside it. */
export const backupOf = (ddxml: string): string => `${ddxml}.copy`;

export const readDescriptorView = (path: string): DescriptorView =>
  parseDescriptorView(readFileSync(path, 'utf8'), path);

/** The view of a descriptor's text; `path` is where it lies (relative image paths are resolved from its folder). */
export function parseDescriptorView(xml: string, path: string): DescriptorView {
  const doc = parser.parse(xml) as Record<string, Record<string, unknown>>;
  const rootKey = Object.keys(doc).find((k) => k !== '?xml');
  const root = (rootKey ? doc[rootKey] : undefined) ?? {};
  const storage = ((root['StorageData'] as Record<string, unknown> | undefined)?.['Storage'] ?? {}) as Record<
    string,
    unknown
  >;
  const snaps = (root['Snapshots'] ?? {}) as Record<string, unknown>;
  const images = ((storage['Image'] ?? []) as Record<string, string>[]).map((i) => ({
    guid: String(i['GUID']).toLowerCase(),
    file: isAbsolute(String(i['File'])) ? String(i['File']) : join(dirname(path), String(i['File'])),
  }));
  const shots = ((snaps['Shot'] ?? []) as Record<string, string>[]).map((s) => ({
    guid: String(s['GUID']).toLowerCase(),
    parent: String(s['ParentGUID']).toLowerCase(),
  }));
  const top = typeof snaps['TopGUID'] === 'string' ? snaps['TopGUID'] : TOPDELTA;
  return { images, shots, top: top.toLowerCase() };
}

export const hasGuid = (v: DescriptorView, guid: string): boolean =>
  v.images.some((i) => i.guid === guid.toLowerCase());
export const topFile = (v: DescriptorView): string | undefined =>
  v.images.find((i) => i.guid === TOPDELTA)?.file;

/**
 * Whether a device's base delta (`ploop list`) is a disk of these descriptors: an image one of them names, or a file
 * in a descriptor's folder (where ploop makes them, and all that is known of a descriptor that is gone or cannot be
 * read: it hides nothing then). ploop opens a descriptor by its real path and resolves a relative <File> from that
 * folder (lib/di.c ploop_open_dd, lib/xml.c read_dd, get_full_path, at d5c202b), and writes one with `../` when the
 * image lies beside the folder (get_relative_path): so each descriptor is read at its real path here too, and the
 * paths compared with every link resolved.
 */
export function diskOwner(descriptors: string[]): (base: string) => boolean {
  const real = descriptors.map(realPathOr);
  const folders = new Set(real.map((dd) => realPathOr(dirname(dd))));
  const images = new Set(real.flatMap(imagesNamedBy).map(realPathOr));
  return (base) => images.has(realPathOr(base)) || folders.has(realPathOr(dirname(base)));
}

/** The image files a descriptor names; none when it cannot be read. */
function imagesNamedBy(dd: string): string[] {
  try {
    return readDescriptorView(dd).images.map((i) => i.file);
  } catch {
    return [];
  }
}

/** A descriptor of a disk with one snapshot, as ploop writes it (the parts the parser walks). */
const sampleDescriptor = [
  '<?xml version="1.0"?>',
  '<Parallels_disk_image><Disk_Parameters><Disk_size>2097152</Disk_size></Disk_Parameters>',
  '<StorageData><Storage><Start>0</Start><End>2097152</End><Blocksize>2048</Blocksize>',
  '<Image><GUID>{00000000-0000-4000-8000-000000000001}</GUID><Type>Compressed</Type><File>root.hds</File></Image>',
  `<Image><GUID>${TOPDELTA}</GUID><Type>Compressed</Type><File>root.hds.1</File></Image>`,
  `</Storage></StorageData><Snapshots><TopGUID>${TOPDELTA}</TopGUID>`,
  '<Shot><GUID>{00000000-0000-4000-8000-000000000001}</GUID><ParentGUID>{00000000-0000-0000-0000-000000000000}</ParentGUID></Shot>',
  `<Shot><GUID>${TOPDELTA}</GUID><ParentGUID>{00000000-0000-4000-8000-000000000001}</ParentGUID></Shot>`,
  '</Snapshots></Parallels_disk_image>',
].join('\n');

/**
 * V8 compiles a function at its first call, and the XML parser is many functions: in a fresh process the first
 * descriptor read took 5-46 ms, the next about 1 ms (measured on this project's 2-core machine, quiet and beside other
 * tests), and an agent's first read is its origin snapshot's, inside a frozen window. The agent parses this sample
 * when it starts instead, and validates it as well (the validator is other functions: a rollback's check of a backup
 * copy before the thaw, or of a snapshot's `.tmp`). Returns the sample's view (its two images), so a test can see
 * the parse ran.
 */
export const warmDescriptorParser = (): DescriptorView => {
  XMLValidator.validate(sampleDescriptor);
  return parseDescriptorView(sampleDescriptor, '/');
};
