export * from './nats-server.ts';
export * from './emulated-cluster.ts';
export * from './await-event.ts';
export * from './processes.ts';
export * from './world.ts';
export * from './faults.ts';
export * from './invariants.ts';
export * from './identities.ts';
