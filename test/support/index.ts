export * from './nats-server.ts';
export * from './emulated-cluster.ts';
