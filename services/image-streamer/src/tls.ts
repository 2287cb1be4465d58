import { readFileSync } from 'node:fs';
import { createSecureContext, type PeerCertificate, type SecureContext } from 'node:tls';

/** A streamer's certificate, its key and the cluster's CA: the data connection is mutual TLS with them. */
export type TlsMaterial = { cert: Buffer; key: Buffer; ca: Buffer };

const clientContexts = new WeakMap<TlsMaterial, SecureContext>();

/**
 * The one TLS context of a streamer's outgoing data connections, made when tlsOf reads the material: Node would
 * otherwise make one per connection from `cert`, `key` and `ca` (parse the key and both certificates, set up an
 * OpenSSL context), and a migration opens one connection per transfer. The listener's side has one context already
 * (its server's).
 */
export function clientContextOf(tls: TlsMaterial): SecureContext {
  let context = clientContexts.get(tls);
  if (!context) {
    context = createSecureContext({ cert: tls.cert, key: tls.key, ca: tls.ca });
    clientContexts.set(tls, context);
  }
  return context;
}

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
  /** The setting to fix. */
  readonly field: string;
  constructor(message: string, field = 'data.tls') {
    super(message);
    this.name = 'TlsConfigError';
    this.field = field;
  }
}

/** The settings the data connection's TLS comes from (image-streamer-config.schema.json). */
export type DataTlsSettings = {
  insecure: boolean;
  data: { plaintext: boolean; tls?: { certFile?: string; keyFile?: string; caFile?: string } };
};

/**
 * The data connection's TLS from the settings data.tls.certFile, keyFile and caFile (made by `haul init-cluster` as
 * DIR/streamer@<node>-cert.pem, -key.pem and DIR/ca.pem). Without them the streamer refuses to start unless insecure
 * (nothing secured) or data.plaintext (only the data connections in plaintext; commands and events still signed)
 * asks for plaintext (undefined is returned then).
 */
export function tlsOf(s: DataTlsSettings): TlsMaterial | undefined {
  const files = s.data.tls ?? {};
  const given = [files.certFile, files.keyFile, files.caFile].filter(Boolean).length;
  if (given === 0 && (s.insecure || s.data.plaintext)) return undefined;
  if (!files.certFile || !files.keyFile || !files.caFile)
    throw new TlsConfigError(
      'the data connection needs data.tls.certFile, keyFile and caFile (HAUL_TLS_CERT_FILE, HAUL_TLS_KEY_FILE, ' +
        'HAUL_TLS_CA_FILE), or insecure / data.plaintext',
    );
  const read = (key: string, file: string) => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new TlsConfigError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? ''}`, key);
    }
  };
  const material: TlsMaterial = {
    cert: read('data.tls.certFile', files.certFile),
    key: read('data.tls.keyFile', files.keyFile),
    ca: read('data.tls.caFile', files.caFile),
  };
  // The outgoing connections' context, made now: a key or certificate OpenSSL refuses fails here, not a transfer.
  try {
    clientContextOf(material);
  } catch (err) {
    throw new TlsConfigError(`the certificate, key or CA cannot be used: ${(err as Error).message}`);
  }
  return material;
}

/** tlsOf from the environment alone (the benchmarks' senders; a service reads its settings). */
export function tlsFromEnv(env: NodeJS.ProcessEnv): TlsMaterial | undefined {
  return tlsOf({
    insecure: env['HAUL_INSECURE'] === '1',
    data: {
      plaintext: env['HAUL_STREAM_PLAINTEXT'] === '1',
      tls: {
        ...(env['HAUL_TLS_CERT_FILE'] ? { certFile: env['HAUL_TLS_CERT_FILE'] } : {}),
        ...(env['HAUL_TLS_KEY_FILE'] ? { keyFile: env['HAUL_TLS_KEY_FILE'] } : {}),
        ...(env['HAUL_TLS_CA_FILE'] ? { caFile: env['HAUL_TLS_CA_FILE'] } : {}),
      },
    },
  });
}
