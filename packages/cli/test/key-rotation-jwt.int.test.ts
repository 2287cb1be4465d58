/**
 * key-rotation.int.test.ts in NATS operator mode (`haul init-cluster --auth jwt`): the identities log in with .creds
 * files, and the retired key is revoked in the haul account's JWT that the reloaded server preloads.
 */
process.env['HAUL_TEST_AUTH'] = 'jwt';
await import('./key-rotation.int.test.ts');
