import { readFileSync } from 'node:fs';
import { connect as connectTcp, isIP, type Socket } from 'node:net';
import { connect as connectTls, type TLSSocket } from 'node:tls';

/** A TLS alert the peer sent, as Node names it (ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE, ERR_SSL_TLSV13_ALERT_…). */
export const isTlsAlert = (code: unknown): code is string =>
  typeof code === 'string' && /^ERR_SSL_\w*ALERT_/.test(code);

/** The files of a client's TLS: the CA the server's certificate is checked with, and its own certificate and key. */
export type ProbeTls = { caFile?: string; certFile?: string; keyFile?: string };

/** The host and port of a NATS server URL as nats.js reads one (nats://, tls:// or host:port; port 4222 by default). */
export function serverAddress(server: string): { host: string; port: number } {
  const url = new URL(server.includes('://') ? server : `nats://${server}`);
  return { host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: url.port ? Number(url.port) : 4222 };
}

/**
 * The TLS alert with which a nats-server refuses this client's certificate (or the lack of one), or undefined when it
 * accepts it or cannot tell. A TLS 1.3 server refuses a client's certificate only after the client has finished its
 * side of the handshake; a NATS client has sent its CONNECT by then, and the server, closing with that unread, may reset
 * the connection before its alert is read. This handshake is followed by nothing, so the alert arrives: undefined on
 * the server's session ticket (sent once it accepted the certificate), a close without an alert, an error before the
 * handshake, or after `timeoutMs`.
 */
export function probeClientCertificate(
  server: string,
  files: ProbeTls,
  timeoutMs = 5000,
): Promise<string | undefined> {
  return new Promise((resolve) => {
    let tlsOptions: { ca?: Buffer; cert?: Buffer; key?: Buffer };
    let address: { host: string; port: number };
    try {
      address = serverAddress(server);
      tlsOptions = {
        ...(files.caFile ? { ca: readFileSync(files.caFile) } : {}),
        ...(files.certFile && files.keyFile
          ? { cert: readFileSync(files.certFile), key: readFileSync(files.keyFile) }
          : {}),
      };
    } catch {
      resolve(undefined);
      return;
    }
    let tls: TLSSocket | undefined;
    const socket: Socket = connectTcp(address.port, address.host);
    const finish = (code?: string) => {
      clearTimeout(timer);
      tls?.destroy();
      socket.destroy();
      resolve(code);
    };
    const timer = setTimeout(finish, timeoutMs);
    const ended = () => finish();
    socket.once('error', ended);
    socket.once('close', ended);
    // The server's INFO line comes first, in plaintext; then the client starts TLS.
    let head = '';
    const onData = (data: Buffer) => {
      head += data.toString('latin1');
      const end = head.indexOf('\r\n');
      if (end < 0) return head.length > 1 << 16 ? finish() : undefined;
      socket.off('data', onData);
      socket.pause();
      let info: { tls_required?: boolean; tls_available?: boolean };
      try {
        info = JSON.parse(head.slice('INFO '.length, end)) as typeof info;
      } catch {
        return finish();
      }
      if (!head.startsWith('INFO ') || (!info.tls_required && !info.tls_available)) return finish();
      // From here the TLS socket says how it ended (an alert is its error, not the plain socket's).
      socket.off('close', ended);
      socket.off('error', ended).on('error', () => {});
      tls = connectTls({
        socket,
        ...(isIP(address.host) ? {} : { servername: address.host }),
        ...tlsOptions,
      });
      tls.once('session', () => finish());
      tls.on('error', (err: NodeJS.ErrnoException) => finish(isTlsAlert(err.code) ? err.code : undefined));
      tls.once('close', () => finish());
    };
    socket.on('data', onData);
  });
}
