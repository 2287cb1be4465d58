import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** openssl is missing or refused to make a key or certificate. */
export class OpensslError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'OpensslError';
  }
}

/** A key pair and its certificate, as PEM text. */
export type Pem = { cert: string; key: string };

/** The cluster CA, nats-server's certificate, and one certificate per identity by its name. */
export type ClusterTls = { ca: Pem; server: Pem; identities: Map<string, Pem> };

/** Certificates are valid this long: the CA ten years, a leaf 825 days (the most browsers and Go accept). */
const caDays = 3650;
const leafDays = 825;

/** A host name or IP address for a certificate's subjectAltName, or an error: it goes into an openssl config. */
export function sanEntry(host: string): string {
  if (isIP(host)) return `IP:${host}`;
  if (
    /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(
      host,
    )
  )
    return `DNS:${host}`;
  throw new Error(`not a host name or IP address: ${JSON.stringify(host)}`);
}

async function openssl(args: string[], cwd: string): Promise<void> {
  try {
    await run('openssl', args, { cwd });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT')
      throw new OpensslError('openssl not found: install it (apt-get install openssl)');
    throw new OpensslError(`openssl ${args[0]} failed: ${(e.stderr ?? e.message).trim()}`, { cause: err });
  }
}

/** An openssl config: the subject and the extensions of one certificate (section `ext`). */
function config(cn: string, ext: string[]): string {
  return ['[req]', 'distinguished_name = dn', 'prompt = no', '[dn]', `CN = ${cn}`, '[ext]', ...ext, ''].join(
    '\n',
  );
}

/** A new P-256 key: small, fast, and accepted by nats-server (Go) and Node alike. */
const newKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

async function makeCa(dir: string, cluster: string): Promise<Pem> {
  const ext = [
    'basicConstraints = critical,CA:TRUE',
    'keyUsage = critical,keyCertSign,cRLSign',
    'subjectKeyIdentifier = hash',
  ];
  await writeFile(join(dir, 'ca.cnf'), config(`haul ${cluster} CA`, ext));
  await openssl(
    [
      'req',
      '-x509',
      '-new',
      '-config',
      'ca.cnf',
      '-extensions',
      'ext',
      ...newKey,
      '-keyout',
      'ca-key.pem',
      '-out',
      'ca.pem',
      '-days',
      String(caDays),
    ],
    dir,
  );
  return {
    cert: await readFile(join(dir, 'ca.pem'), 'utf8'),
    key: await readFile(join(dir, 'ca-key.pem'), 'utf8'),
  };
}

/** A leaf certificate signed by the CA in `dir`, for these subjectAltNames (none: the CN alone) and extended key usages. */
async function makeLeaf(dir: string, name: string, cn: string, san: string[], usage: string): Promise<Pem> {
  const ext = [
    'basicConstraints = critical,CA:FALSE',
    'keyUsage = critical,digitalSignature',
    `extendedKeyUsage = ${usage}`,
    ...(san.length ? [`subjectAltName = ${san.join(',')}`] : []),
    'authorityKeyIdentifier = keyid',
  ];
  const [cnf, key, csr, cert] = ['cnf', 'key.pem', 'csr', 'cert.pem'].map((s) => `${name}.${s}`) as [
    string,
    string,
    string,
    string,
  ];
  await writeFile(join(dir, cnf), config(cn, ext));
  await openssl(['req', '-new', '-config', cnf, ...newKey, '-keyout', key, '-out', csr], dir);
  await openssl(
    [
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca-key.pem',
      '-set_serial',
      `0x${randomBytes(16).toString('hex')}`,
      '-days',
      String(leafDays),
      '-extfile',
      cnf,
      '-extensions',
      'ext',
      '-out',
      cert,
    ],
    dir,
  );
  return { cert: await readFile(join(dir, cert), 'utf8'), key: await readFile(join(dir, key), 'utf8') };
}

/** An identity a certificate is made for: its name (`agent@node-a`) and role. */
export type CertifiedIdentity = { name: string; role: string };

/**
 * The cluster's CA, the nats-server certificate (for `hosts`, localhost and 127.0.0.1) and one certificate per identity,
 * CN its name, for its mutual TLS to nats-server (nats-server.conf `tls { verify: true }`). A streamer's is also for
 * server use and has subjectAltName `streamer@<node>`: the same certificate is the streamers' mutual TLS on their data
 * connections. Made with the openssl command in `workDir`, a private scratch folder (docs/decisions.md says why
 * openssl); the identities' in parallel (two openssl runs each).
 */
export async function makeClusterTls(
  workDir: string,
  cluster: string,
  hosts: readonly string[],
  identities: readonly CertifiedIdentity[],
): Promise<ClusterTls> {
  const ca = await makeCa(workDir, cluster);
  const names = [...new Set(['localhost', '127.0.0.1', ...hosts])].map(sanEntry);
  // clientAuth too: the servers of a cluster present it to each other on their routes (cluster { tls { verify: true } }).
  const leaves = [
    makeLeaf(workDir, 'server', 'nats-server', names, 'serverAuth,clientAuth'),
    ...identities.map(({ name, role }) =>
      role === 'streamer'
        ? makeLeaf(workDir, name, name, [`DNS:${name}`], 'serverAuth,clientAuth')
        : makeLeaf(workDir, name, name, [], 'clientAuth'),
    ),
  ];
  const [server, ...certs] = await Promise.all(leaves);
  return { ca, server: server!, identities: new Map(identities.map((id, i) => [id.name, certs[i]!])) };
}
