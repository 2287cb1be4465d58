// Baseline tar, receiving end — P.Haul's way: `tar -xf - -C <dir>` reads straight from the TCP socket. Listens on
// 127.0.0.1 (the socket is never read by Node: paused from the start), prints "listening <port>"; once tar exited
// acks with one byte; exits when stdin closes.
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';

const [dir] = process.argv.slice(2);
const fail = (err) => {
  process.stderr.write(`pipe-recv: ${err.stack ?? err}\n`);
  process.exit(1);
};

const srv = createServer({ pauseOnConnect: true, noDelay: true }, (sock) => {
  srv.close();
  sock.on('error', fail);
  const tar = spawn('tar', ['-xf', '-', '-C', dir], { stdio: [sock, 'ignore', 'inherit'] });
  tar.once('exit', (code) => {
    if (code !== 0) return fail(new Error(`tar -x exited ${code}`));
    sock.end('k');
  });
});
srv.listen(0, '127.0.0.1', () => process.stderr.write(`listening ${srv.address().port}\n`));
process.stdin.on('end', () => process.exit(0)).resume();
