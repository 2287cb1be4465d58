import { permissionsFor, type Grant, type Identity } from './permissions.ts';

export type ServerConfigInput = {
  cluster: string;
  /** host:port the server listens on for clients. */
  listen: string;
  storeDir: string;
  /** Paths as the server will read them: its certificate and key, and the CA its clients' certificates are signed by. */
  tls: { certFile: string; keyFile: string; caFile: string };
  users: { identity: Identity; publicKey: string }[];
};

/** A string in the server's config syntax: quoted, so `$JS…` is not read as a variable reference. */
const q = (s: string): string => JSON.stringify(s);

const list = (grants: Grant[]): string => `[${grants.map((gr) => q(gr.subject)).join(', ')}]`;

function section(name: string, p: { allow: Grant[]; deny: Grant[] }): string {
  const parts = [`allow: ${list(p.allow)}`];
  if (p.deny.length) parts.push(`deny: ${list(p.deny)}`);
  return `${name}: { ${parts.join(', ')} }`;
}

function user(identity: Identity, publicKey: string): string {
  const p = permissionsFor(identity, publicKey);
  const perms = [section('publish', p.publish), section('subscribe', p.subscribe)];
  // One answer per request received, with no time limit: haul's answers are single replies.
  if (p.allowResponses) perms.push('allow_responses: true');
  return [
    `    # ${identity.name}`,
    `    { nkey: ${q(publicKey)}, permissions: {`,
    ...perms.map((line) => `        ${line}`),
    `    } }`,
  ].join('\n');
}

/**
 * The nats-server configuration of a haul cluster: JetStream, mutual TLS (the cluster's server certificate; every
 * client presents a certificate the cluster CA signed) and one nkey user per identity with its permissions
 * (permissions.ts). Users live in the server's `authorization` block (the global account); docs/decisions.md says why
 * not accounts or JWTs, and why the client certificates protect the transport while the nkeys say who a client is.
 */
export function renderServerConfig(c: ServerConfigInput): string {
  return [
    `# nats-server configuration of the haul cluster ${q(c.cluster)}, written by \`haul init-cluster\`.`,
    '# Regenerate it rather than editing: the permissions come from packages/bus/src/permissions.ts.',
    `listen: ${q(c.listen)}`,
    `jetstream { store_dir: ${q(c.storeDir)} }`,
    '# Mutual TLS: clients check this certificate against the cluster CA (HAUL_TLS_CA_FILE) and present one the',
    "# cluster CA signed (verify: their identity's <name>-cert.pem, HAUL_NATS_TLS_CERT_FILE). The certificate keeps",
    '# clients without one off the port; the nkey below says who a client is.',
    'tls {',
    `  cert_file: ${q(c.tls.certFile)}`,
    `  key_file: ${q(c.tls.keyFile)}`,
    `  ca_file: ${q(c.tls.caFile)}`,
    '  verify: true',
    '  # Seconds for the handshake (the default, 0.5, is short for a loaded host).',
    '  timeout: 5',
    '}',
    'authorization {',
    '  users = [',
    ...c.users.map((u) => user(u.identity, u.publicKey)),
    '  ]',
    '}',
    '',
  ].join('\n');
}
