import { headers, type Msg, type NatsConnection } from '@nats-io/transport-node';
import type { SignatureHeaders } from './trust/index.ts';

/**
 * A core NATS request whose signature (trust's Haul-Signer / Haul-Signature over the subject and the body) rides in
 * its headers, so the answering service knows which registered identity asked: the coordinator for a migrate
 * request (MigrationRequested.requestedBy), a node agent for an inspection (only coordinators may ask).
 */
export function signedRequest(
  nc: NatsConnection,
  subject: string,
  body: Uint8Array,
  signature: SignatureHeaders | undefined,
  timeoutMs: number,
): Promise<Msg> {
  const h = signature ? headers() : undefined;
  for (const [k, v] of Object.entries(signature ?? {})) h?.set(k, v);
  return nc.request(subject, body, { timeout: timeoutMs, ...(h ? { headers: h } : {}) });
}
