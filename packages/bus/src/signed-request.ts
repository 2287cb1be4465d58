import { headers, type Msg, type NatsConnection } from '@nats-io/transport-node';
import {
  signatureHeaders,
  type HeaderReader,
  type Identity,
  type SignatureHeaders,
  type Trust,
} from './trust/index.ts';

/**
 * A core NATS request whose signature (trust's Haul-Signer / Haul-Signature over the subject and the body) rides in
 * its headers, so the answering service knows which registered identity asked: the coordinator for a migrate
 * request (MigrationRequested.requestedBy), a node agent for an inspection (only coordinators may ask), a streamer
 * for an offer (only the streamer of the node it names). `extra` headers ride along.
 */
export function signedRequest(
  nc: NatsConnection,
  subject: string,
  body: Uint8Array,
  signature: SignatureHeaders | undefined,
  timeoutMs: number,
  extra: Record<string, string> = {},
): Promise<Msg> {
  const all = { ...extra, ...signature };
  const h = Object.keys(all).length > 0 ? headers() : undefined;
  for (const [k, v] of Object.entries(all)) h?.set(k, v);
  return nc.request(subject, body, { timeout: timeoutMs, ...(h ? { headers: h } : {}) });
}

/**
 * Who sent a signed request, as its responder learns it (NATS does not tell): nobody is checked in an insecure
 * cluster (`anyone`); otherwise it is `unsigned` or `forged` (a signature that does not verify: a key the registry
 * does not know, or bytes it was not made for), both recorded in the trust as a refused message, or `signed` by a
 * registered identity, whose role the responder then checks.
 */
export type RequestSigner =
  | { kind: 'anyone' }
  | { kind: 'unsigned' }
  | { kind: 'forged'; reason: string }
  | { kind: 'signed'; identity: Identity };

export function requestSigner(
  trust: Trust,
  subject: string,
  data: Uint8Array,
  headers: HeaderReader | undefined,
): RequestSigner {
  if (!trust.secure) return { kind: 'anyone' };
  if (!headers?.get(signatureHeaders.signer)) {
    trust.reject({ kind: 'command', subject, reason: 'unsigned' });
    return { kind: 'unsigned' };
  }
  const v = trust.verify(subject, data, headers);
  if (v.ok && v.identity) return { kind: 'signed', identity: v.identity };
  const reason = v.ok ? 'no identity' : v.reason;
  trust.reject({ kind: 'command', subject, reason, ...(!v.ok && v.claimed ? { claimed: v.claimed } : {}) });
  return { kind: 'forged', reason };
}
