// Baseline (a): receive files written by raw-send.mjs into a folder, then ack with one byte.
import { createServer } from 'node:net';
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
const [port, dir] = process.argv.slice(2);
const srv = createServer((sock) => {
  let buf = Buffer.alloc(0);
  let fd = -1;
  let left = 0;
  sock.on('data', (d) => {
    buf = buf.length ? Buffer.concat([buf, d]) : d;
    for (;;) {
      if (left === 0) {
        if (fd >= 0) {
          closeSync(fd);
          fd = -1;
        }
        const nl = buf.indexOf(10);
        if (nl < 0) return;
        const h = JSON.parse(buf.subarray(0, nl).toString());
        buf = buf.subarray(nl + 1);
        mkdirSync(dirname(join(dir, h.name)), { recursive: true });
        fd = openSync(join(dir, h.name), 'w');
        left = h.size;
        if (left === 0) continue;
      }
      if (buf.length === 0) return;
      const n = Math.min(left, buf.length);
      writeSync(fd, buf, 0, n);
      buf = buf.subarray(n);
      left -= n;
    }
  });
  sock.on('end', () => {
    if (fd >= 0) closeSync(fd);
    sock.end('k');
    srv.close();
  });
});
srv.listen(Number(port), '127.0.0.1', () => process.stderr.write('listening\n'));
