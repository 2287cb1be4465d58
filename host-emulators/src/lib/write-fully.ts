import { writeSync } from 'node:fs';

/**
 * Write all of `text` to a file descriptor now, as the real tools do with write(2). The emulators write their output
 * this way rather than through `process.stdout`, whose first use builds a stream (and loads Node's stream modules):
 * about 5 ms of CPU of a call that prints a line. A descriptor left non-blocking by whoever shares it may refuse for a
 * moment (EAGAIN): the write waits a millisecond and goes on.
 */
export function writeFully(fd: number, text: string): void {
  let bytes = Buffer.from(text);
  while (bytes.length > 0) {
    try {
      bytes = bytes.subarray(writeSync(fd, bytes));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
    }
  }
}
