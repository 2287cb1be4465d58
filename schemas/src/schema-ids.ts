/** The $id of every top-level message schema, by a short name used in code. */
export const schemaIds = {
  migrateRequest: 'https://haul.dev/schemas/migrate-request.schema.json',
  migrateReply: 'https://haul.dev/schemas/migrate-reply.schema.json',
  cancelRequest: 'https://haul.dev/schemas/cancel-request.schema.json',
  retryRequest: 'https://haul.dev/schemas/retry-request.schema.json',
  resolveRequest: 'https://haul.dev/schemas/resolve-request.schema.json',
  statusRequest: 'https://haul.dev/schemas/status-request.schema.json',
  listRequest: 'https://haul.dev/schemas/list-request.schema.json',
  statusReply: 'https://haul.dev/schemas/status-reply.schema.json',
  migrationStatus: 'https://haul.dev/schemas/migration-status.schema.json',
  command: 'https://haul.dev/schemas/command.schema.json',
  event: 'https://haul.dev/schemas/events.schema.json',
  nodeHeartbeat: 'https://haul.dev/schemas/node-heartbeat.schema.json',
  streamOffer: 'https://haul.dev/schemas/stream-offer.schema.json',
  streamOfferReply: 'https://haul.dev/schemas/stream-offer-reply.schema.json',
  deadLetter: 'https://haul.dev/schemas/dead-letter.schema.json',
  discoveryInfo: 'https://haul.dev/schemas/discovery-info.schema.json',
  streamerRegistration: 'https://haul.dev/schemas/streamer-registration.schema.json',
  transferProgress: 'https://haul.dev/schemas/transfer-progress.schema.json',
  inspectRequest: 'https://haul.dev/schemas/inspect-request.schema.json',
  inspectReply: 'https://haul.dev/schemas/inspect-reply.schema.json',
  checkReply: 'https://haul.dev/schemas/check-reply.schema.json',
} as const;

export type SchemaName = keyof typeof schemaIds;

/** The $id of each service's settings schema (config file + environment + defaults; not a message on the bus). */
export const configSchemaIds = {
  coordinatorConfig: 'https://haul.dev/schemas/coordinator-config.schema.json',
  nodeAgentConfig: 'https://haul.dev/schemas/node-agent-config.schema.json',
  imageStreamerConfig: 'https://haul.dev/schemas/image-streamer-config.schema.json',
} as const;

export type ConfigSchemaName = keyof typeof configSchemaIds;

/** The settings shared by every service (the others refer to its $defs). */
export const serviceConfigSchemaId = 'https://haul.dev/schemas/service-config.schema.json';

/** Is this schema about a service's settings rather than a message (the AsyncAPI document leaves these out)? */
export const isSettingsSchema = (id: string): boolean =>
  id === serviceConfigSchemaId || (Object.values(configSchemaIds) as string[]).includes(id);
