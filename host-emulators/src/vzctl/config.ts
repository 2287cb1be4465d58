import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { paths, type EmuEnv } from '../lib/emu-env.ts';

/** Parse a ve.conf/vz.conf body: shell-like NAME="value" lines, # comments, quotes optional. */
export function parseConf(body: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of body.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!m) continue;
    let v = m[2]!.trim();
    if ((v.startsWith('"') && v.endsWith('"')) || (v.startsWith("'") && v.endsWith("'"))) v = v.slice(1, -1);
    else v = v.replace(/\s+#.*$/, '');
    out[m[1]!] = v;
  }
  return out;
}

/** Replace every $VEID and ${VEID} (as P.Haul does; libvzctl replaces the first only). */
export const expandVeid = (v: string, ctid: string): string => v.replace(/\$\{VEID\}|\$VEID/g, ctid);

export type CtConf = {
  ctid: string;
  vePrivate: string;
  veRoot: string;
  /** DiskDescriptor.xml of every disk: the root disk first, then DISK entries. */
  disks: string[];
  /** The root disk's DiskDescriptor.xml, when this node has it (a target's config before its disks are copied has not). */
  root?: string;
  raw: Record<string, string>;
};

/** The node's global config, /etc/vz/vz.conf (LOCKDIR, the VE_PRIVATE template). */
export const readGlobalConf = (env: EmuEnv): Record<string, string> =>
  existsSync(paths.vzConf(env)) ? parseConf(readFileSync(paths.vzConf(env), 'utf8')) : {};

/** Read `/etc/vz/conf/<CTID>.conf`, falling back to `/etc/vz/vz.conf` for VE_PRIVATE/VE_ROOT. Undefined if absent. */
export function readCtConf(env: EmuEnv, ctid: string): CtConf | undefined {
  const file = paths.ctConf(env, ctid);
  if (!existsSync(file)) return undefined;
  const global = readGlobalConf(env);
  const own = parseConf(readFileSync(file, 'utf8'));
  const raw = { ...global, ...own };
  const vePrivate = expandVeid(raw['VE_PRIVATE'] ?? '', ctid);
  const veRoot = expandVeid(raw['VE_ROOT'] ?? '', ctid);
  const disks: string[] = [];
  const root = join(vePrivate, 'root.hdd', 'DiskDescriptor.xml');
  if (vePrivate && existsSync(root)) disks.push(root);
  for (const entry of (raw['DISK'] ?? '').split(';')) {
    const image = /(?:^|,)image=([^,]+)/.exec(entry)?.[1];
    if (!image) continue;
    // Relative to VE_PRIVATE, as VZ7 writes it (libvzctl lib/disk.c get_abs_path).
    const path =
      isAbsolute(expandVeid(image, ctid)) || !vePrivate
        ? expandVeid(image, ctid)
        : join(vePrivate, expandVeid(image, ctid));
    const dd = path.endsWith('.xml') ? path : join(path, 'DiskDescriptor.xml');
    if (!disks.includes(dd)) disks.push(dd);
  }
  // A relative DISK= names root.hdd too (VZ7 writes the root disk there), whether this node has it or not.
  return { ctid, vePrivate, veRoot, disks, raw, ...(vePrivate && existsSync(root) ? { root } : {}) };
}

/**
 * The image= value VZ7 writes for a disk: relative to VE_PRIVATE when the disk lies inside it, else absolute
 * (libvzctl lib/disk.c get_rel_path, OpenVZ/libvzctl@ebbfc38).
 */
export function imageValue(vePrivate: string, disk: string): string {
  const base = vePrivate.endsWith('/') ? vePrivate.slice(0, -1) : vePrivate;
  return disk.startsWith(`${base}/`) ? disk.slice(base.length + 1) : disk;
}

/** One `DISK=` entry: `uuid=…,enabled=…,image=…,mnt=…` (libvzctl lib/disk.c parse_disk_str). */
export type DiskEntry = { dd: string; uuid: string; enabled: boolean; mnt?: string };

/** The DISK= entries of a CT, with their descriptors resolved as readCtConf resolves them. */
export function diskEntries(conf: CtConf): DiskEntry[] {
  const out: DiskEntry[] = [];
  for (const entry of (conf.raw['DISK'] ?? '').split(';')) {
    const kv = Object.fromEntries(
      entry
        .split(',')
        .map((p) => p.split('='))
        .filter((p) => p.length >= 2)
        .map(([k, ...v]) => [k!.trim(), v.join('=')]),
    );
    const image = kv['image'];
    if (!image || !kv['uuid']) continue;
    const path = isAbsolute(expandVeid(image, conf.ctid))
      ? expandVeid(image, conf.ctid)
      : join(conf.vePrivate, expandVeid(image, conf.ctid));
    const dd = path.endsWith('.xml') ? path : join(path, 'DiskDescriptor.xml');
    const d: DiskEntry = { dd, uuid: kv['uuid'], enabled: kv['enabled'] !== 'no' };
    if (kv['mnt']) d.mnt = kv['mnt'];
    out.push(d);
  }
  return out;
}

/**
 * `BINDMOUNT="[src:]dst[,opts] …"` (libvzctl lib/bindmount.c parse_bindmount_str): the bind mounts with a source on
 * the host, which criu must be told are external (lib/cr_criu.c make_ext_mount_args).
 */
export function bindMounts(conf: CtConf): { src: string; dst: string }[] {
  return (conf.raw['BINDMOUNT'] ?? '')
    .split(/[\t ]+/)
    .map((s) => /^(\/[^:]*):(\/[^,]*)/.exec(s))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ src: m[1]!, dst: m[2]! }));
}
