import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { crc32 } from 'node:zlib';
import { CHUNK, chunkDigest, crc32Loaded, loadCrc32 } from '../src/wire.ts';

describe('chunkDigest', () => {
  it('runs the carry-less-multiply CRC-32 where its binary is installed (this repository pins one)', () => {
    assert.equal(crc32Loaded.impl, '@node-rs/crc32');
  });

  it("falls back to zlib's CRC-32 when the binary does not load, and says why", () => {
    const refused = loadCrc32(() => {
      throw Object.assign(new Error('cannot open shared object file'), { code: 'ERR_DLOPEN_FAILED' });
    });
    assert.equal(refused.impl, 'zlib');
    assert.equal(refused.impl === 'zlib' && refused.why, 'ERR_DLOPEN_FAILED: cannot open shared object file');
    const data = randomBytes(4099);
    assert.equal(refused.crc32(data), crc32(data));
  });

  it('on a Node without zlib.crc32 (before 20.15) and without the binary, refuses to start, naming both and the Node it needs', () => {
    const refuse = () => {
      throw Object.assign(new Error('cannot open shared object file'), { code: 'ERR_DLOPEN_FAILED' });
    };
    assert.throws(
      () => loadCrc32(refuse, null),
      (err: Error) =>
        err.message.includes(
          '@node-rs/crc32 did not load (ERR_DLOPEN_FAILED: cannot open shared object file)',
        ) && err.message.includes(`Node ${process.version} has no zlib.crc32 (Node 20.15 or later has it)`),
    );
  });

  it("is zlib's CRC-32, so streamers of either implementation and existing .haul-sums files agree", () => {
    const data = randomBytes(CHUNK + 4099);
    // Lengths around the SIMD code's block sizes and tails, and offsets that are not 16-byte aligned.
    for (const len of [0, 1, 15, 16, 17, 63, 64, 65, 127, 128, 129, 4095, 65536, CHUNK - 1, CHUNK])
      for (const start of [0, 1, 7])
        assert.equal(
          chunkDigest(data.subarray(start, start + len)),
          crc32(data.subarray(start, start + len)),
          `${len} bytes at +${start}`,
        );
  });
});
