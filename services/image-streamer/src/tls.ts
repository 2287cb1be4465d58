import { readFileSync } from 'node:fs';
import type { PeerCertificate } from 'node:tls';

/** A streamer's certificate, its key and the cluster's CA: the data connection is mutual TLS with them. */
export type TlsMaterial = { cert: Buffer; key: Buffer; ca: Buffer };

/** The name a streamer's certificate carries (CN or a subjectAltName), as in the cluster's identity registry. */
export const streamerIdentity = (node: string): string => `streamer@${node}`;

/** Every name a certificate gives: its CN and each subjectAltName value (DNS, URI, email: the type is not asked). */
export function certNames(cert: PeerCertificate | undefined): string[] {
  if (!cert || !cert.subject) return [];
  const cn = cert.subject.CN;
  const names = Array.isArray(cn) ? [...cn] : cn ? [cn] : [];
  for (const part of (cert.subjectaltname ?? '').split(',')) {
    const at = part.indexOf(':');
    if (at > 0) names.push(part.slice(at + 1).trim());
  }
  return names;
}

/** Does this certificate name the streamer of `node`? */
export const namesStreamer = (cert: PeerCertificate | undefined, node: string): boolean =>
  certNames(cert).includes(streamerIdentity(node));

/** The process is configured wrongly: neither TLS files nor HAUL_INSECURE=1. */
export class TlsConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TlsConfigError';
  }
}

/**
 * The data connection's TLS from the environment: HAUL_TLS_CERT_FILE, HAUL_TLS_KEY_FILE and HAUL_TLS_CA_FILE
 * (made by `haul init-cluster` as DIR/streamer@<node>-cert.pem, -key.pem and DIR/ca.pem). Without them the streamer
 * refuses to start unless HAUL_INSECURE=1 (nothing secured) or HAUL_STREAM_PLAINTEXT=1 (only the data connections in
 * plaintext; commands and events still signed) asks for plaintext (undefined is returned then).
 */
export function tlsFromEnv(env: NodeJS.ProcessEnv): TlsMaterial | undefined {
  const files = {
    cert: env['HAUL_TLS_CERT_FILE'],
    key: env['HAUL_TLS_KEY_FILE'],
    ca: env['HAUL_TLS_CA_FILE'],
  };
  const given = Object.values(files).filter(Boolean).length;
  if (given === 0 && (env['HAUL_INSECURE'] === '1' || env['HAUL_STREAM_PLAINTEXT'] === '1')) return undefined;
  if (given < 3 || !files.cert || !files.key || !files.ca)
    throw new TlsConfigError(
      'the data connection needs HAUL_TLS_CERT_FILE, HAUL_TLS_KEY_FILE and HAUL_TLS_CA_FILE (or HAUL_INSECURE=1 / HAUL_STREAM_PLAINTEXT=1)',
    );
  return { cert: readFileSync(files.cert), key: readFileSync(files.key), ca: readFileSync(files.ca) };
}
