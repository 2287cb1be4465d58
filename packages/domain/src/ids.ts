/**
 * Deterministic identities for host effects, decided by the core before the effect happens and recorded in the
 * intent event, so an in-doubt step can be reconciled by looking at the host.
 */

/** 32-bit FNV-1a of a string, seeded. Pure; enough to spread GUIDs, not a security primitive. */
function fnv1a(s: string, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

const hex8 = (n: number) => n.toString(16).padStart(8, '0');

/** A ploop snapshot GUID `{xxxxxxxx-xxxx-4xxx-8xxx-xxxxxxxxxxxx}` derived from a name; lowercase as ploop writes. */
export function guidFor(name: string): string {
  const h = [1, 2, 3, 4].map((seed) => hex8(fnv1a(name, seed))).join('');
  const v = `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
  return `{${v}}`;
}

export const originGuid = (migrationId: string, disk: number): string =>
  guidFor(`${migrationId}/disk${disk}/origin`);
export const copyGuid = (migrationId: string, disk: number): string =>
  guidFor(`${migrationId}/disk${disk}/copy`);

/** `<migrationId>:<step>:<subject>:<attempt>` */
export function commandIdFor(migrationId: string, step: string, subject: string, attempt: number): string {
  return `${migrationId}:${step}:${subject}:${attempt}`;
}

/** The name of this migration's image folder under each node's image root. */
export const imageDirName = (migrationId: string): string => `haul-${migrationId}`;
