import { permissionsFor, type Grant, type Identity } from './permissions.ts';

/** An account of operator mode: its public key and its JWT, signed by the operator. */
export type AccountJwt = { publicKey: string; jwt: string };

/**
 * Who may log in, and as what: nkey users with their permissions in the configuration (the default), or operator
 * mode, where the users are JWTs in their .creds files (signed by the haul account, permissions included:
 * userJwtPermissions) and the server trusts the operator and preloads the accounts' JWTs.
 */
export type ServerAuth =
  | { kind: 'nkey'; users: { identity: Identity; publicKey: string }[] }
  | { kind: 'operator'; operatorJwtFile: string; systemAccount: AccountJwt; account: AccountJwt };

export type ServerConfigInput = {
  cluster: string;
  /** host:port the server listens on for clients. */
  listen: string;
  storeDir: string;
  /** Paths as the server will read them: its certificate and key, and the CA its clients' certificates are signed by. */
  tls: { certFile: string; keyFile: string; caFile: string };
  auth: ServerAuth;
};

/** The permissions of a user JWT (nats-server's `pub`, `sub`, `resp` claims). */
export type UserJwtPermissions = {
  pub: { allow: string[]; deny: string[] };
  sub: { allow: string[]; deny: string[] };
  resp?: { max: number; ttl: number };
};

/**
 * An identity's permissions (permissions.ts) as the claims of its user JWT: the same subjects as the configuration's
 * nkey users get. An empty allow list means "everything" in a JWT, so none is ever written (every role allows
 * something; a test keeps it so). `resp` with 0 and 0 is what `allow_responses: true` means to the server: one
 * answer per request received, within its default time.
 */
export function userJwtPermissions(identity: Identity, publicKey: string): UserJwtPermissions {
  const p = permissionsFor(identity, publicKey);
  const subjectsOf = (grants: Grant[]) => grants.map((g) => g.subject);
  for (const [what, allow] of [
    ['publish', p.publish.allow],
    ['subscribe', p.subscribe.allow],
  ] as const)
    if (allow.length === 0) throw new Error(`${identity.name} may ${what} nothing: a JWT cannot say so`);
  return {
    pub: { allow: subjectsOf(p.publish.allow), deny: subjectsOf(p.publish.deny) },
    sub: { allow: subjectsOf(p.subscribe.allow), deny: subjectsOf(p.subscribe.deny) },
    ...(p.allowResponses ? { resp: { max: 0, ttl: 0 } } : {}),
  };
}

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
  // One answer per request received (within the server's default of 2 minutes): haul's answers are single replies.
  if (p.allowResponses) perms.push('allow_responses: true');
  return [
    `    # ${identity.name}`,
    `    { nkey: ${q(publicKey)}, permissions: {`,
    ...perms.map((line) => `        ${line}`),
    `    } }`,
  ].join('\n');
}

/** The configuration's users: nkey users with their permissions, or operator mode's trust and accounts. */
function authLines(auth: ServerAuth): string[] {
  if (auth.kind === 'nkey')
    return [
      'authorization {',
      '  users = [',
      ...auth.users.map((u) => user(u.identity, u.publicKey)),
      '  ]',
      '}',
    ];
  return [
    '# Operator mode: users log in with their .creds files (a user JWT the haul account signed, with its permissions).',
    '# The operator is trusted; the system and haul accounts are preloaded. A revoked user key is in the haul',
    "# account's JWT: render this file again and reload the server (haul rotate-key does both but the reload).",
    `operator: ${q(auth.operatorJwtFile)}`,
    `system_account: ${q(auth.systemAccount.publicKey)}`,
    'resolver: MEMORY',
    'resolver_preload: {',
    `  ${auth.systemAccount.publicKey}: ${q(auth.systemAccount.jwt)}`,
    `  ${auth.account.publicKey}: ${q(auth.account.jwt)}`,
    '}',
  ];
}

/**
 * The nats-server configuration of a haul cluster: JetStream, mutual TLS (the cluster's server certificate; every
 * client presents a certificate the cluster CA signed) and its users (authLines): by default one nkey user per
 * identity with its permissions (permissions.ts) in the server's `authorization` block (the global account), or
 * operator mode. docs/decisions.md says why nkey users are the default, and why the client certificates protect the
 * transport while the nkeys say who a client is.
 */
export function renderServerConfig(c: ServerConfigInput): string {
  return [
    `# nats-server configuration of the haul cluster ${q(c.cluster)}, written by \`haul init-cluster\`.`,
    '# Regenerate it rather than editing: the permissions come from packages/bus/src/permissions.ts.',
    `listen: ${q(c.listen)}`,
    `jetstream { store_dir: ${q(c.storeDir)} }`,
    '# Mutual TLS: clients check this certificate against the cluster CA (HAUL_TLS_CA_FILE) and present one the',
    "# cluster CA signed (verify: their identity's <name>-cert.pem, HAUL_NATS_TLS_CERT_FILE). The certificate keeps",
    '# clients without one off the port; the nkey says who a client is.',
    'tls {',
    `  cert_file: ${q(c.tls.certFile)}`,
    `  key_file: ${q(c.tls.keyFile)}`,
    `  ca_file: ${q(c.tls.caFile)}`,
    '  verify: true',
    '  # Seconds for the handshake (the default, 0.5, is short for a loaded host).',
    '  timeout: 5',
    '}',
    ...authLines(c.auth),
    '',
  ].join('\n');
}
