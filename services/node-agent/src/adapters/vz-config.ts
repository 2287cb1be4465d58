import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';

/** What the agent needs from a CT's config: its private area and the descriptor of each disk. */
export type CtDisks = { vePrivate: string; disks: string[] };

function parse(body: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of body.split('\n')) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!m) continue;
    out[m[1]!] = m[2]!
      .trim()
      .replace(/^"(.*)"$/, '$1')
      .replace(/^'(.*)'$/, '$1');
  }
  return out;
}

/** LOCKDIR of `<etc>/vz/vz.conf`, where vzctl keeps the CT locks (libvzctl's default /vz/lock). */
export function readLockDir(etcVz: string): string {
  const global = join(etcVz, 'vz.conf');
  return (existsSync(global) ? parse(readFileSync(global, 'utf8'))['LOCKDIR'] : undefined) || '/vz/lock';
}

/** The CT's config, `<etc>/vz/conf/<CTID>.conf` over `<etc>/vz/vz.conf` (HA_ENABLE, HA_PRIO, VE_PRIVATE, …). */
export function readCtConfig(etcVz: string, ctid: string): Record<string, string> | undefined {
  const own = join(etcVz, 'conf', `${ctid}.conf`);
  if (!existsSync(own)) return undefined;
  const global = join(etcVz, 'vz.conf');
  return {
    ...(existsSync(global) ? parse(readFileSync(global, 'utf8')) : {}),
    ...parse(readFileSync(own, 'utf8')),
  };
}

/** `<etc>/vz/conf/<CTID>.conf` over `<etc>/vz/vz.conf`, `$VEID` expanded; undefined when the CT has no config. */
export function readCtDisks(etcVz: string, ctid: string): CtDisks | undefined {
  const conf = readCtConfig(etcVz, ctid);
  if (!conf) return undefined;
  const x = (v: string) => expandVeid(v, ctid);
  const vePrivate = x(conf['VE_PRIVATE'] ?? '');
  const disks: string[] = [];
  const root = join(vePrivate, 'root.hdd', 'DiskDescriptor.xml');
  if (vePrivate && existsSync(root)) disks.push(root);
  for (const entry of (conf['DISK'] ?? '').split(';')) {
    const image = /(?:^|,)image=([^,]+)/.exec(entry)?.[1];
    if (!image) continue;
    // VZ7 writes image= relative to VE_PRIVATE when the disk lies inside it (libvzctl lib/disk.c get_rel_path) and
    // joins it back on reading (get_abs_path); P.Haul does the same (get_delta_abspath).
    const path = isAbsolute(x(image)) || !vePrivate ? x(image) : join(vePrivate, x(image));
    const dd = path.endsWith('.xml') ? path : join(path, 'DiskDescriptor.xml');
    if (!disks.includes(dd)) disks.push(dd);
  }
  return { vePrivate, disks };
}

/** A CT's config over the global one, with `$VEID` expanded; undefined when the CT has no config. */
export function readCtVars(etcVz: string, ctid: string): Record<string, string> | undefined {
  const conf = readCtConfig(etcVz, ctid);
  return conf && Object.fromEntries(Object.entries(conf).map(([k, v]) => [k, expandVeid(v, ctid)]));
}

/** `$VEID` and `${VEID}` in a config value stand for the CT's id. */
function expandVeid(v: string, ctid: string): string {
  return v.replace(/\$\{VEID\}|\$VEID/g, ctid);
}
