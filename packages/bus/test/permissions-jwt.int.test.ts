/**
 * permissions.int.test.ts against a nats-server in operator mode (`haul init-cluster --auth jwt`): every identity
 * logs in with its .creds file, its permissions in its user JWT, and the server must grant and refuse exactly as it
 * does for the nkey users of the default configuration.
 */
process.env['HAUL_TEST_AUTH'] = 'jwt';
await import('./permissions.int.test.ts');
