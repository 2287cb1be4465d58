import { randomBytes } from 'node:crypto';
import { createServer as createTcpServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { limits, type Logger } from '@haul/bus';
import { errorCodes } from '@haul/domain';
import { namesStreamer, type TlsMaterial } from './tls.ts';

/** Thrown when the connection breaks or never comes: the caller offers again and resumes from what was verified. */
export class ConnectionLost extends Error {}

/** The ports the data listener may bind (both included). */
export type PortRange = { from: number; to: number };

/** Every port of the configured range is taken: the streamer cannot listen, and says which range to widen or free. */
export class PortRangeExhaustedError extends Error {
  readonly code = errorCodes.streamPortsExhausted;
  readonly range: PortRange;
  constructor(range: PortRange, host: string) {
    super(
      `no free port in ${range.from}-${range.to} on ${host}: each is in use (data.ports / HAUL_STREAM_PORTS; ` +
        'widen the range or stop what holds it)',
    );
    this.name = 'PortRangeExhaustedError';
    this.range = range;
  }
}

/** `7400-7409` or `7400` as a range of valid ports, or an error saying why not (the setting's format is the schema's). */
export function parsePortRange(text: string): PortRange {
  const [a, b = a] = text.split('-');
  const from = Number(a);
  const to = Number(b);
  if (!(from >= 1 && to <= 65535)) throw new RangeError(`${text}: ports are 1 to 65535`);
  if (from > to) throw new RangeError(`${text}: the first port is above the last`);
  return { from, to };
}

export type DataServerOptions = {
  host: string;
  /** The ports it may listen on: the first free one is taken. Absent: a port the system picks. */
  ports?: PortRange;
  /** Mutual TLS; absent: plaintext (HAUL_INSECURE=1). */
  tls?: TlsMaterial;
  log?: Logger;
  handshakeMs?: number;
  perPeer?: number;
};

/** One expected connection: the receiver of one transfer attempt, presenting a one-time token. */
export type DataListener = {
  token: string;
  /** The connection that presented the token (and, with TLS, the peer's certificate); ConnectionLost on timeout. */
  accept: (timeoutMs: number) => Promise<Socket>;
  /** Forget the token (a connection presenting it later is closed). */
  close: () => void;
};

export type DataServer = {
  port: number;
  /** Expect one connection from `peerNode`'s streamer presenting a fresh token. */
  expect: (peerNode: string) => DataListener;
  /** Sockets open on this server, accepted ones included (for tests and status). */
  openSockets: () => number;
  /** Tokens expected and not presented yet (for tests and status). */
  tokensWaiting: () => number;
  close: () => Promise<void>;
};

/** A token line is 32 hex digits; anything longer without a newline is not one. */
const MAX_TOKEN_LINE = 130;

type Waiting = { peer: string; resolve: (s: Socket) => void };
type Pending = { raw: Socket; timer: NodeJS.Timeout; peer: string };

/**
 * The streamer's one data listener, registered in haul-streamers. A connection must finish its TLS handshake and
 * present a token the server expects within `handshakeMs`, or it is closed; a token is good once and only from the
 * node it was made for (its certificate names streamer@<node>). A peer (address) holds at most `perPeer` connections
 * that are not past their token: a new one closes the oldest, so held sockets cannot keep a real receiver out.
 */
export async function createDataServer(o: DataServerOptions): Promise<DataServer> {
  const st: State = {
    handshakeMs: o.handshakeMs ?? limits.streamHandshakeMs,
    perPeer: o.perPeer ?? limits.streamConnectionsPerPeer,
    tls: o.tls !== undefined,
    waiting: new Map(),
    pending: new Map(),
    all: new Set(),
    ...(o.log ? { log: o.log } : {}),
  };
  const server: Server = o.tls
    ? createTlsServer({
        cert: o.tls.cert,
        key: o.tls.key,
        ca: o.tls.ca,
        requestCert: true,
        rejectUnauthorized: true,
        handshakeTimeout: st.handshakeMs,
      })
    : createTcpServer({ noDelay: true });
  server.on('connection', (raw: Socket) => admit(st, raw));
  if (o.tls) {
    server.on('secureConnection', (sock: TLSSocket) => readToken(st, sock));
    server.on('tlsClientError', (_err: Error, s: TLSSocket) => s.destroy());
  } else server.on('connection', (sock: Socket) => readToken(st, sock));
  await listenInRange(server, o.host, o.ports);

  return {
    port: (server.address() as { port: number }).port,
    expect: (peerNode) => expectOne(st.waiting, peerNode),
    openSockets: () => st.all.size,
    tokensWaiting: () => st.waiting.size,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of st.all) s.destroy();
        server.close(() => resolve());
      }),
  };
}

function listenOn(server: Server, host: string, port: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/**
 * Listen on the first free port of the range, in order (so a firewall opens a fixed range and a restarted streamer
 * usually gets its old port back), or on a port the system picks when there is no range. A range with every port
 * in use is a PortRangeExhaustedError; any other failure (an address not on this host, no permission) is thrown as is.
 */
async function listenInRange(server: Server, host: string, range: PortRange | undefined): Promise<void> {
  if (!range) return listenOn(server, host, 0);
  for (let port = range.from; port <= range.to; port++) {
    try {
      return await listenOn(server, host, port);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    }
  }
  throw new PortRangeExhaustedError(range, host);
}

/** A data server's connections: expected tokens, connections not past their token yet, every open socket. */
type State = {
  handshakeMs: number;
  perPeer: number;
  tls: boolean;
  log?: Logger;
  waiting: Map<string, Waiting>;
  pending: Map<string, Pending>;
  all: Set<Socket>;
};

const keyOf = (s: Socket) => `${s.remoteAddress ?? '?'}:${s.remotePort ?? 0}`;

/** A new TCP connection: counted, given `handshakeMs` to present its token, and the oldest of its peer's goes. */
function admit(st: State, raw: Socket): void {
  const key = keyOf(raw);
  const peer = raw.remoteAddress ?? '?';
  st.all.add(raw);
  const mine = [...st.pending.values()].filter((p) => p.peer === peer);
  if (mine.length >= st.perPeer) mine[0]!.raw.destroy();
  st.pending.set(key, { raw, peer, timer: setTimeout(() => raw.destroy(), st.handshakeMs) });
  raw.on('error', () => raw.destroy());
  raw.once('close', () => {
    st.all.delete(raw);
    const p = st.pending.get(key);
    if (p?.raw === raw) {
      clearTimeout(p.timer);
      st.pending.delete(key);
    }
  });
}

/** Read the token line; hand the socket to the transfer that expects it, or close it. */
function readToken(st: State, sock: Socket): void {
  let line = '';
  const onData = (d: Buffer) => {
    line += d.toString('latin1');
    const nl = line.indexOf('\n');
    if (nl < 0) {
      if (line.length > MAX_TOKEN_LINE) sock.destroy();
      return;
    }
    sock.off('data', onData);
    const token = line.slice(0, nl);
    const w = nl === line.length - 1 ? st.waiting.get(token) : undefined;
    if (!w) return void sock.destroy();
    if (st.tls && !namesStreamer((sock as TLSSocket).getPeerCertificate(), w.peer)) {
      // The token stays good for the node it was made for: another identity cannot spend it.
      st.log?.warn({ peer: keyOf(sock), expected: w.peer }, 'data connection from another identity refused');
      return void sock.destroy();
    }
    st.waiting.delete(token);
    const p = st.pending.get(keyOf(sock));
    if (p) {
      clearTimeout(p.timer);
      st.pending.delete(keyOf(sock));
    }
    sock.pause();
    w.resolve(sock);
  };
  sock.on('data', onData);
  sock.on('error', () => sock.destroy());
}

function expectOne(waiting: Map<string, Waiting>, peer: string): DataListener {
  const token = randomBytes(16).toString('hex');
  /** The receiver's connection once it came with the token, until accept takes it. */
  let came: Socket | undefined;
  let taken = false;
  let closed = false;
  let resolveSock: (s: Socket) => void = () => {};
  const arrived = new Promise<Socket>((r) => (resolveSock = r));
  waiting.set(token, {
    peer,
    resolve: (sock) => {
      // Closed meanwhile (the offer's request gave up, or the transfer did): nobody will take it. It is paused, with
      // no timer of its own: left alone it stays open until the streamer stops.
      if (closed) return void sock.destroy();
      came = sock;
      resolveSock(sock);
    },
  });
  return {
    token,
    accept: (timeoutMs) =>
      new Promise<Socket>((resolve, reject) => {
        const t = setTimeout(() => {
          waiting.delete(token);
          reject(new ConnectionLost(`the receiver did not connect within ${timeoutMs} ms`));
        }, timeoutMs);
        void arrived.then((sock) => {
          clearTimeout(t);
          taken = true;
          resolve(sock);
        });
      }),
    close: () => {
      closed = true;
      waiting.delete(token);
      if (came && !taken) came.destroy();
    },
  };
}
