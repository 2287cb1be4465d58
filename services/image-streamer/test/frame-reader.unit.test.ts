import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { FrameReader, type ChunkFrame } from '../src/frame-reader.ts';
import { CHUNK, chunkDigest, chunkHeader, encodeHeader, type FrameHeader } from '../src/wire.ts';

type Chunk = Extract<FrameHeader, { t: 'chunk' }>;

/** A frame's first four bytes: the header's length, big-endian. */
function encodeLength(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

/** A chunk's frame as a sender writes it, its header changed by `damage` after its digest (hcrc) was taken. */
function frame(id: number, payload: Buffer, damage: (h: Chunk) => void = () => {}): Buffer {
  const h = chunkHeader({ id, path: `f${id}`, offset: 0, len: payload.length, crc32: chunkDigest(payload) });
  damage(h);
  return Buffer.concat([encodeHeader(h), payload]);
}

/**
 * Drive a FrameReader the way a socket with `onread` does: ask for the next buffer, copy at most what the wire
 * has (and at most `readSize`) into it, report the count; stop reading while paused.
 */
function feed(
  wire: Buffer,
  readSize: number,
  opts: { holdPayloads?: boolean; maxOutstanding?: number } = {},
) {
  const got: ChunkFrame[] = [];
  const errors: string[] = [];
  let ended = false;
  let paused = false;
  let pauses = 0;
  let pos = 0;
  const reader = new FrameReader(
    opts.maxOutstanding ?? 2,
    {
      chunk: (f) => {
        got.push({ ...f, payload: Buffer.from(f.payload) });
        if (!opts.holdPayloads) f.release();
      },
      end: () => (ended = true),
      error: (why) => errors.push(why),
    },
    () => (paused = false),
  );
  const pump = () => {
    while (!paused && pos < wire.length && errors.length === 0 && !ended) {
      const into = reader.nextBuffer();
      assert.ok(into.length > 0, 'the reader always offers room');
      const n = Math.min(into.length, readSize, wire.length - pos);
      wire.copy(into, 0, pos, pos + n);
      pos += n;
      if (!reader.received(n)) {
        paused = true;
        pauses++;
      }
    }
  };
  pump();
  return { got, errors, ended: () => ended, pauses: () => pauses, pump, pos: () => pos };
}

describe('FrameReader: frames read straight into pooled buffers', () => {
  const payloads = [
    randomBytes(CHUNK),
    randomBytes(10),
    randomBytes(700_000),
    randomBytes(1),
    randomBytes(CHUNK),
  ];
  const wire = Buffer.concat([...payloads.map((p, i) => frame(i, p)), encodeHeader({ t: 'end' })]);

  for (const readSize of [1, 7, 4096, 65_536, 10 * CHUNK]) {
    it(`hands out every payload intact and then the end, with reads of up to ${readSize} bytes`, () => {
      const r = feed(wire, readSize);
      assert.deepEqual(r.errors, []);
      assert.equal(r.ended(), true);
      assert.equal(r.got.length, payloads.length);
      r.got.forEach((f, i) => {
        assert.equal(f.header.id, i);
        assert.ok(f.payload.equals(payloads[i]!), `payload ${i} intact`);
      });
    });
  }

  it('pauses while payloads are out, and every frame already read is still handed out before it pauses', () => {
    // Many small frames arrive in one read: all of them must be handed out (a frame left unread while paused
    // would never be acknowledged, and the sender would wait for it forever).
    const small = Array.from({ length: 6 }, () => randomBytes(100));
    const tail = randomBytes(CHUNK);
    const w = Buffer.concat([
      ...small.map((p, i) => frame(i, p)),
      frame(6, tail),
      encodeHeader({ t: 'end' }),
    ]);
    const r = feed(w, 1 << 20, { holdPayloads: true, maxOutstanding: 2 });
    assert.equal(r.got.length, 6, 'every frame in the first read was handed out');
    assert.equal(r.pauses(), 1, 'then reading paused');
    assert.ok(r.pos() < w.length && !r.ended());
    for (const f of r.got) f.release();
    r.pump();
    assert.equal(r.ended(), true);
    assert.ok(r.got[6]!.payload.equals(tail));
  });

  it('a payload stays intact while held, even as later frames are read', () => {
    const a = randomBytes(CHUNK);
    const b = randomBytes(CHUNK);
    const held: ChunkFrame[] = [];
    const reader = new FrameReader(
      4,
      { chunk: (f) => held.push(f), end: () => {}, error: assert.fail },
      () => {},
    );
    const w = Buffer.concat([frame(1, a), frame(2, b)]);
    let pos = 0;
    while (pos < w.length) {
      const into = reader.nextBuffer();
      const n = Math.min(into.length, w.length - pos);
      w.copy(into, 0, pos, pos + n);
      pos += n;
      reader.received(n);
    }
    assert.ok(held[0]!.payload.equals(a) && held[1]!.payload.equals(b));
  });

  for (const readSize of [1, 9, 65_536]) {
    it(`skips the sender's wait frames between chunks, with reads of up to ${readSize} bytes`, () => {
      const wait = encodeHeader({ t: 'wait' });
      const w = Buffer.concat([
        wait,
        frame(0, payloads[1]!),
        wait,
        wait,
        frame(1, payloads[0]!),
        wait,
        encodeHeader({ t: 'end' }),
      ]);
      const r = feed(w, readSize);
      assert.deepEqual(r.errors, []);
      assert.equal(r.ended(), true);
      assert.deepEqual(
        r.got.map((f) => f.header.id),
        [0, 1],
      );
      assert.ok(r.got[0]!.payload.equals(payloads[1]!) && r.got[1]!.payload.equals(payloads[0]!));
    });
  }

  it('refuses a chunk whose header was damaged in flight (its offset or its length), its payload intact', () => {
    // A bit flip TCP's checksum missed, on a plaintext connection: the payload's CRC-32 still holds, and before, the
    // chunk was written at the offset the damaged header named
    for (const damage of [(h: Chunk) => (h.offset ^= CHUNK), (h: Chunk) => (h.len ^= 1)]) {
      const r = feed(Buffer.concat([frame(0, randomBytes(100), damage), encodeHeader({ t: 'end' })]), 4096);
      assert.deepEqual(r.got, []);
      assert.deepEqual(r.errors, ['a chunk header damaged in flight (its hcrc does not match)']);
    }
  });

  it("takes an older sender's chunk header, which has no hcrc, on its payload's digest alone", () => {
    const payload = randomBytes(100);
    const r = feed(
      Buffer.concat([frame(0, payload, (h) => delete h.hcrc), encodeHeader({ t: 'end' })]),
      4096,
    );
    assert.deepEqual(r.errors, []);
    assert.ok(r.got[0]?.payload.equals(payload));
  });

  it('refuses a frame header that is too large or not JSON', () => {
    const big = Buffer.alloc(4);
    big.writeUInt32BE(10_000_000);
    assert.match(feed(big, 100).errors[0] ?? '', /frame header of 10000000 bytes/);
    const junk = Buffer.concat([Buffer.from([0, 0, 0, 3]), Buffer.from('{{{')]);
    assert.match(feed(junk, 100).errors[0] ?? '', /not JSON/);
    const empty = encodeHeader({ t: 'chunk', id: 1, path: 'x', offset: 0, len: 0, crc32: 0 });
    assert.match(feed(empty, 100).errors[0] ?? '', /bad frame header/);
  });

  it('refuses a frame header that is JSON but not an object (null, a number, a list), without throwing', () => {
    for (const text of ['null', '7', '"chunk"', '[]']) {
      const wire = Buffer.concat([encodeLength(text.length), Buffer.from(text)]);
      assert.match(feed(wire, 100).errors[0] ?? '', /frame header is not a JSON object/, text);
    }
  });
});
