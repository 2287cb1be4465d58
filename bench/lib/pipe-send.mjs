// Baseline (b), P.Haul's way: stdin (a tar stream) to one TCP connection.
import { connect } from 'node:net';
const [host, port] = process.argv.slice(2);
const sock = connect(Number(port), host);
sock.once('connect', () => process.stdin.pipe(sock));
