// Baseline (b): one TCP connection to stdout (into tar -x).
import { createServer } from 'node:net';
const [port] = process.argv.slice(2);
const srv = createServer((sock) => {
  sock.pipe(process.stdout);
  sock.on('end', () => srv.close());
});
srv.listen(Number(port), '127.0.0.1', () => process.stderr.write('listening\n'));
