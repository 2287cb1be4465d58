// Baseline raw_tcp, sending end: every file of a folder over one TCP connection, no integrity check, written as
// well as Node allows: synchronous page-cache reads into a few reused 1 MiB buffers (a buffer goes back to the pool
// once the socket has handed its bytes to the kernel), no copies in JavaScript. Listens on 127.0.0.1, prints
// "listening <port>"; after the receiver's one-byte ack prints "DONE <ns>" (process.hrtime, CLOCK_MONOTONIC), then
// exits when stdin closes. Wire format (shared with native-copy.c): per file u32 LE name length, name, u64 LE size,
// bytes; a zero name length ends.
import { closeSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, relative } from 'node:path';

const [dir] = process.argv.slice(2);
const CHUNK = 1 << 20;
const fail = (err) => {
  process.stderr.write(`raw-send: ${err.stack ?? err}\n`);
  process.exit(1);
};

function files(root) {
  const out = [];
  const walk = (d) => {
    for (const f of readdirSync(d).sort()) {
      const p = join(d, f);
      const s = statSync(p);
      if (s.isDirectory()) walk(p);
      else if (s.isFile()) out.push([relative(root, p), s.size]);
    }
  };
  walk(root);
  return out;
}

function header(name, size) {
  const n = Buffer.from(name);
  const h = Buffer.allocUnsafe(12 + n.length);
  h.writeUInt32LE(n.length, 0);
  n.copy(h, 4);
  h.writeBigUInt64LE(BigInt(size), 4 + n.length);
  return h;
}

async function send(sock) {
  const pool = Array.from({ length: 8 }, () => Buffer.allocUnsafe(CHUNK));
  let wake;
  const wait = () => new Promise((r) => (wake = r));
  const signal = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  sock.on('drain', signal);
  for (const [name, size] of files(dir)) {
    sock.write(header(name, size));
    const fd = openSync(join(dir, name), 'r');
    for (let off = 0; off < size;) {
      while (pool.length === 0) await wait();
      const buf = pool.pop();
      const n = readSync(fd, buf, 0, Math.min(CHUNK, size - off), off);
      off += n;
      const flushed = sock.write(buf.subarray(0, n), () => {
        pool.push(buf);
        signal();
      });
      if (!flushed) await wait();
    }
    closeSync(fd);
  }
  sock.write(Buffer.alloc(4));
  await new Promise((r) => sock.once('data', r));
  process.stderr.write(`DONE ${process.hrtime.bigint()}\n`);
  sock.destroy();
}

const srv = createServer({ noDelay: true }, (sock) => {
  srv.close();
  sock.on('error', fail);
  send(sock).catch(fail);
});
srv.listen(0, '127.0.0.1', () => process.stderr.write(`listening ${srv.address().port}\n`));
process.stdin.on('end', () => process.exit(0)).resume();
