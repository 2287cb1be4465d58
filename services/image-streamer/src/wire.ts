/**
 * The data connection between two streamers. After a token line, the sender writes frames:
 *   [u32 BE header length][header JSON][payload]
 * header: {t:'chunk', path, offset, len, sha256} | {t:'end'}. The receiver answers lines:
 *   "ok <id>" (chunk verified and written), "bad <id>" (digest mismatch: send again), "done" / "error <text>".
 */
export const CHUNK = 1024 * 1024;

export type FrameHeader =
  { t: 'chunk'; id: number; path: string; offset: number; len: number; sha256: string } | { t: 'end' };

export function encodeHeader(h: FrameHeader): Buffer {
  const json = Buffer.from(JSON.stringify(h));
  const out = Buffer.allocUnsafe(4 + json.length);
  out.writeUInt32BE(json.length, 0);
  json.copy(out, 4);
  return out;
}
