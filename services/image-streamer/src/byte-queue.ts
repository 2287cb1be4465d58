/**
 * Bytes received from a socket, kept as the pieces they arrived in. Taking n bytes copies only when they span
 * pieces (once, exactly n bytes): no quadratic re-concatenation of a growing buffer.
 */
export class ByteQueue {
  private pieces: Buffer[] = [];
  private head = 0;
  length = 0;

  push(b: Buffer): void {
    if (b.length === 0) return;
    this.pieces.push(b);
    this.length += b.length;
  }

  /** The first n bytes without consuming them (n ≤ length). */
  peek(n: number): Buffer {
    const first = this.pieces[0]!;
    if (first.length - this.head >= n) return first.subarray(this.head, this.head + n);
    return this.copy(n, false);
  }

  /** Remove and return the first n bytes (n ≤ length). */
  take(n: number): Buffer {
    const first = this.pieces[0]!;
    if (first.length - this.head >= n) {
      const out = first.subarray(this.head, this.head + n);
      this.advance(n);
      return out;
    }
    return this.copy(n, true);
  }

  /** Remove the first n bytes as the pieces they arrived in (no copy): for hashing and writev. */
  takeParts(n: number): Buffer[] {
    const out: Buffer[] = [];
    let left = n;
    while (left > 0) {
      const first = this.pieces[0]!;
      const k = Math.min(left, first.length - this.head);
      out.push(first.subarray(this.head, this.head + k));
      left -= k;
      this.advance(k);
    }
    return out;
  }

  private copy(n: number, consume: boolean): Buffer {
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    let i = 0;
    let h = this.head;
    while (off < n) {
      const p = this.pieces[i]!;
      const k = Math.min(n - off, p.length - h);
      p.copy(out, off, h, h + k);
      off += k;
      h = 0;
      i++;
    }
    if (consume) this.advance(n);
    return out;
  }

  private advance(n: number): void {
    this.length -= n;
    while (n > 0) {
      const first = this.pieces[0]!;
      const left = first.length - this.head;
      if (n < left) {
        this.head += n;
        return;
      }
      n -= left;
      this.pieces.shift();
      this.head = 0;
    }
  }
}
