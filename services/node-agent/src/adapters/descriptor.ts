import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { XMLParser } from 'fast-xml-parser';

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

export function readDescriptorView(path: string): DescriptorView {
  const doc = parser.parse(readFileSync(path, 'utf8')) as Record<string, Record<string, unknown>>;
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
