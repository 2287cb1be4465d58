export * from './types.ts';
export {
  configSchemaIds,
  isSettingsSchema,
  schemaIds,
  serviceConfigSchemaId,
  type ConfigSchemaName,
  type SchemaName,
} from './schema-ids.ts';
export {
  createValidators,
  describeError,
  type ValidationError,
  type ValidationResult,
  type Validators,
  wireError,
} from './validation.ts';
export { loadSchemaDocuments, schemaDir } from './schema-files.ts';
export { isMigrationId } from './ids.ts';
