import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TlsMaterial } from '../src/tls.ts';

/** A CA and one certificate per name, made with the openssl CLI in a temporary folder (tests and the bench). */
export type TestPki = {
  dir: string;
  /** The material of `name` (CN = name, or the CN an impostor claims; signed by `ca` or by the other CA). */
  material: (name: string) => TlsMaterial;
  /** Files as a streamer's environment names them. */
  env: (name: string) => Record<string, string>;
};

const openssl = (cwd: string, args: string[]) => execFileSync('openssl', args, { cwd, stdio: 'pipe' });
const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function makeCa(dir: string, name: string): void {
  openssl(dir, [
    'req',
    '-x509',
    ...ec,
    '-keyout',
    `${name}-key.pem`,
    '-out',
    `${name}.pem`,
    '-days',
    '2',
    '-subj',
    `/CN=${name}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
}

function makeCert(dir: string, ca: string, name: string, cn = name): void {
  writeFileSync(join(dir, 'ext.cnf'), 'basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n');
  openssl(dir, ['req', ...ec, '-keyout', `${name}-key.pem`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`]);
  openssl(dir, [
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    `${ca}.pem`,
    '-CAkey',
    `${ca}-key.pem`,
    '-CAcreateserial',
    '-out',
    `${name}-cert.pem`,
    '-days',
    '2',
    '-extfile',
    'ext.cnf',
  ]);
}

/**
 * Certificates for `names` from one CA (`ca`), and from another CA the first does not trust: for `foreign` names, and
 * for each of `impostors` (its material's name → the CN it claims, e.g. a trusted node's).
 */
export function makeTestPki(
  names: string[],
  foreign: string[] = [],
  impostors: Record<string, string> = {},
): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'haul-pki-'));
  makeCa(dir, 'ca');
  for (const n of names) makeCert(dir, 'ca', n);
  if (foreign.length || Object.keys(impostors).length) {
    makeCa(dir, 'other-ca');
    for (const n of foreign) makeCert(dir, 'other-ca', n);
    for (const [n, cn] of Object.entries(impostors)) makeCert(dir, 'other-ca', n, cn);
  }
  const files = (name: string) => ({
    HAUL_TLS_CERT_FILE: join(dir, `${name}-cert.pem`),
    HAUL_TLS_KEY_FILE: join(dir, `${name}-key.pem`),
    HAUL_TLS_CA_FILE: join(dir, 'ca.pem'),
  });
  return {
    dir,
    env: files,
    material: (name) => {
      const f = files(name);
      return {
        cert: readFileSync(f.HAUL_TLS_CERT_FILE),
        key: readFileSync(f.HAUL_TLS_KEY_FILE),
        ca: readFileSync(f.HAUL_TLS_CA_FILE),
      };
    },
  };
}
