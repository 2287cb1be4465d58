// Baseline (a): send every file of a folder over one TCP connection, no integrity; wait for the receiver's ack.
import { connect } from 'node:net';
import { createReadStream, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
const [host, port, dir] = process.argv.slice(2);
const files = [];
const walk = (d) => {
  for (const f of readdirSync(d)) {
    const p = join(d, f);
    const s = statSync(p);
    if (s.isDirectory()) walk(p);
    else files.push([relative(dir, p), s.size]);
  }
};
walk(dir);
const sock = connect(Number(port), host);
await new Promise((r) => sock.once('connect', r));
for (const [name, size] of files) {
  const h = Buffer.from(JSON.stringify({ name, size }) + '\n');
  if (!sock.write(h)) await new Promise((r) => sock.once('drain', r));
  for await (const chunk of createReadStream(join(dir, name), { highWaterMark: 1 << 20 })) {
    if (!sock.write(chunk)) await new Promise((r) => sock.once('drain', r));
  }
}
sock.end();
await new Promise((r) => sock.once('data', r));
sock.destroy();
