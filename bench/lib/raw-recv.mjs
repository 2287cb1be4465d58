// Baseline raw_tcp, receiving end (see raw-send.mjs), written as well as Node allows: every read lands where it
// belongs (onread with a buffer chosen per read, so no buffer per read and no copy in JavaScript): a header into a
// small buffer, a file's bytes into one reused 1 MiB block, which is written once full (or at the file's end) in
// writes of <write-KiB>, aligned to the file's offsets — as haul writes. Prints "ready", connects when a line arrives
// on stdin, acks with one byte once every file is closed, exits when stdin closes.
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';

const [host, port, dir, writeKiB] = process.argv.slice(2);
const SLICE = Number(writeKiB) * 1024;
const BLOCK = 1 << 20;
const fail = (err) => {
  process.stderr.write(`raw-recv: ${err.stack ?? err}\n`);
  process.exit(1);
};

const head = Buffer.alloc(12 + 65536); // u32 LE name length, name, u64 LE size
const block = Buffer.allocUnsafe(BLOCK);
let headFill = 0;
let headNeed = 4;
let fd = -1;
let left = 0; // bytes of the current file not yet written
let fill = 0; // bytes of the current block read
let want = 0; // size of the current block
let sock;
let ended = false;

const nextBuffer = () =>
  ended ? head : left > 0 ? block.subarray(fill, want) : head.subarray(headFill, headNeed);

function received(n) {
  if (left > 0) {
    fill += n;
    if (fill < want) return;
    for (let at = 0; at < want; at += SLICE) writeSync(fd, block, at, Math.min(SLICE, want - at));
    left -= want;
    fill = 0;
    want = Math.min(BLOCK, left);
    if (left === 0) closeSync(fd);
    return;
  }
  headFill += n;
  if (headFill < headNeed) return;
  const nlen = head.readUInt32LE(0);
  if (nlen === 0) {
    ended = true;
    return void sock.end('k');
  }
  if (headNeed === 4) {
    headNeed = 12 + nlen;
    return;
  }
  const p = join(dir, head.toString('utf8', 4, 4 + nlen));
  left = Number(head.readBigUInt64LE(4 + nlen));
  want = Math.min(BLOCK, left);
  headFill = 0;
  headNeed = 4;
  mkdirSync(dirname(p), { recursive: true });
  fd = openSync(p, 'w');
  if (left === 0) closeSync(fd);
}

process.stderr.write('ready\n');
process.stdin.once('data', () => {
  sock = connect({
    host,
    port: Number(port),
    noDelay: true,
    onread: { buffer: nextBuffer, callback: (n) => void received(n) },
  });
  sock.on('error', fail);
});
process.stdin.on('end', () => process.exit(0));
