export {
  TrustConfigError,
  identityName,
  loadRegistry,
  parseRegistry,
  registryFile,
  retiredKeyBelieved,
  retireKey,
  retirementProblem,
  roles,
  type Identity,
  type Registry,
  type RetiredKey,
  type Role,
} from './registry.ts';
export {
  loadSeed,
  publicKeyOfPair,
  signWith,
  signatureHeaders,
  signedBytes,
  verifyWith,
  type HeaderReader,
  type SignatureHeaders,
  type Verdict,
} from './signature.ts';
export {
  authorizeEvent,
  learn,
  needsFacts,
  newFacts,
  type Authorization,
  type MigrationFacts,
} from './authority.ts';
export {
  createTrust,
  insecureTrust,
  trustFrom,
  trustFromEnv,
  trustFromEnvOrExit,
  type Expected,
  type Rejection,
  type Trust,
  type TrustSettings,
} from './trust.ts';
export { natsAuthenticator, seedKeyOf, type SeedKey } from './ed25519.ts';
export { extendChain, newChain, sealDataOf, sealMatches, type Chain, type SealData } from './seal.ts';
