import { writeSync } from 'node:fs';

/** Slept on while a non-blocking descriptor refuses a write (Atomics.wait, which Node allows on its main thread). */
const pause = new Int32Array(new SharedArrayBuffer(4));
/** The status a shell reports for a program that SIGPIPE ended (128 + 13). */
const brokenPipeStatus = 141;

/**
 * Write all of `text` to a file descriptor now, as a C program's write(2) does. The emulators write their output this
 * way rather than through `process.stdout`, whose first use builds a stream (for a pipe a socket, with Node's net and
 * stream modules): docs/decisions.md 9 has what that cost each call.
 *
 * - A descriptor made non-blocking by whoever shares it may refuse for a while (EAGAIN): the write sleeps 1 ms, then
 *   up to 20 ms at a time, and goes on, as long as the reader takes; a blocking write would wait as long.
 * - A reader that is gone (EPIPE) ends the tool at once with the status a shell gives a tool SIGPIPE killed: the real
 *   tools die of that signal, which Node ignores.
 */
export function writeFully(fd: number, text: string): void {
  let bytes = Buffer.from(text);
  let sleepMs = 1;
  while (bytes.length > 0) {
    try {
      bytes = bytes.subarray(writeSync(fd, bytes));
      sleepMs = 1;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EPIPE') process.exit(brokenPipeStatus);
      if (code !== 'EAGAIN') throw e;
      Atomics.wait(pause, 0, 0, sleepMs);
      sleepMs = Math.min(20, sleepMs * 2);
    }
  }
}
