// Baseline tar, sending end — P.Haul's way: tar writes straight into the TCP socket (no Node in the data path).
// Prints "ready"; on a line on stdin connects to the receiver and runs `tar -cf - -C <dir> .` with the socket as its
// stdout; after the receiver's one-byte ack prints "DONE <ns>" (process.hrtime, CLOCK_MONOTONIC); exits when stdin
// closes.
import { spawn } from 'node:child_process';
import { connect } from 'node:net';

const [host, port, dir] = process.argv.slice(2);
const fail = (err) => {
  process.stderr.write(`pipe-send: ${err.stack ?? err}\n`);
  process.exit(1);
};

process.stderr.write('ready\n');
process.stdin.once('data', () => {
  const sock = connect({ host, port: Number(port), noDelay: true });
  sock.on('error', fail);
  sock.once('connect', () => {
    const tar = spawn('tar', ['-cf', '-', '-C', dir, '.'], { stdio: ['ignore', sock, 'inherit'] });
    tar.once('exit', (code) => {
      if (code !== 0) return fail(new Error(`tar -c exited ${code}`));
      sock.end();
      sock.resume(); // Node stops reading a socket it hands to a child as stdio: read the ack now
    });
  });
  sock.once('data', () => {
    process.stderr.write(`DONE ${process.hrtime.bigint()}\n`);
    sock.destroy();
  });
});
process.stdin.on('end', () => process.exit(0));
