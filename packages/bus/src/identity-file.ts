import { readFileSync } from 'node:fs';

/*
 * The file holding an identity's secret, in either of NATS's two standard formats:
 *
 * - an nkey seed file (`<name>.nk`, `nkeySeedFile`): the user seed `SU…` on one line, what `haul init-cluster` writes
 *   for a server with nkey users, `nsc` writes under `keys/`, and `nats --nkey` reads;
 * - a `.creds` file (`<name>.creds`, `credsFile`): a user JWT signed by an account key, then the same kind of seed,
 *   each between `-----BEGIN …-----` / `------END …------` lines, what `haul init-cluster --auth jwt` and `nsc
 *   generate creds` write and `nats --creds` reads, for a server in operator mode.
 *
 * Either way the seed is the identity: it answers the server's nonce at connect and signs haul's commands and events.
 * A message about such a file never quotes its content.
 */

/** Which setting named the file: the error names it, as the operator wrote it. */
export type IdentitySetting = 'nkeySeedFile' | 'credsFile';

/** The setting's environment variable (the CLI and tests name it; a service's config file names the key). */
export const identityEnv: Record<IdentitySetting, string> = {
  nkeySeedFile: 'HAUL_NKEY_SEED_FILE',
  credsFile: 'HAUL_CREDS_FILE',
};

/** An identity file that cannot be used: unreadable, of the wrong format, or the setting is ambiguous. */
export class IdentityFileError extends Error {
  readonly setting: IdentitySetting;
  constructor(setting: IdentitySetting, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'IdentityFileError';
    this.setting = setting;
  }
}

/** What an identity file holds: its seed (SU…), and for a `.creds` file the user JWT the server checks. */
export type IdentitySecret = { seed: string; jwt?: string };

/** The blocks of a `.creds` file, in order (nats.js credsAuthenticator reads them the same way). */
const credsBlock = /-{3,}[^\n]*BEGIN[^\n]*-{3,}\r?\n([\w\-.=]+)\r?\n-{3,}[^\n]*END[^\n]*-{3,}/g;

/** The seed and JWT of a `.creds` file's text, or why it is not one. */
function parseCreds(text: string): IdentitySecret | string {
  const blocks = [...text.matchAll(credsBlock)].map((m) => m[1]!);
  if (blocks.length !== 2) return `holds ${blocks.length} BEGIN/END blocks, not a user JWT and a seed`;
  const [jwt, seed] = blocks as [string, string];
  if (jwt.split('.').length !== 3) return 'its first block is not a JWT';
  if (!seed.startsWith('SU')) return 'its second block is not a user nkey seed (SU…)';
  return { seed, jwt };
}

/** The secret in `file`, named by `setting`; an nkey seed file must hold a seed, a `.creds` file a JWT and a seed. */
export function readIdentityFile(file: string, setting: IdentitySetting): IdentitySecret {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new IdentityFileError(setting, `cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
  if (setting === 'credsFile') {
    const creds = parseCreds(text);
    if (typeof creds === 'string')
      throw new IdentityFileError(setting, `${file} is not a NATS .creds file: ${creds}`);
    return creds;
  }
  const seed = text.trim();
  if (seed.includes('BEGIN NATS USER JWT'))
    throw new IdentityFileError(
      setting,
      `${file} is a .creds file: set credsFile (HAUL_CREDS_FILE) to it instead`,
    );
  if (!seed.startsWith('SU') || /\s/.test(seed))
    throw new IdentityFileError(setting, `${file} does not hold an nkey user seed (SU…)`);
  return { seed };
}

/** The identity file of a process's settings: a seed file or a `.creds` file, not both. */
export type IdentityFileSettings = { nkeySeedFile?: string | undefined; credsFile?: string | undefined };

/** The one identity file the settings name, and by which setting; undefined when neither is set. */
export function identityFileOf(
  s: IdentityFileSettings,
): { file: string; setting: IdentitySetting } | undefined {
  if (s.nkeySeedFile && s.credsFile)
    throw new IdentityFileError(
      'credsFile',
      'nkeySeedFile (HAUL_NKEY_SEED_FILE) and credsFile (HAUL_CREDS_FILE) are both set: an identity is one seed, ' +
        'in a seed file or in a .creds file',
    );
  if (s.credsFile) return { file: s.credsFile, setting: 'credsFile' };
  if (s.nkeySeedFile) return { file: s.nkeySeedFile, setting: 'nkeySeedFile' };
  return undefined;
}
