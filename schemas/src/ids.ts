import common from '../json/common.schema.json' with { type: 'json' };

/**
 * A migration id as the schemas define it (common.schema.json, $defs.MigrationId): its pattern is read from there, so
 * a subject or a name can be checked without a validator and without a second copy of the rule.
 */
const migrationIdPattern = new RegExp(common.$defs.MigrationId.pattern);

export const isMigrationId = (s: string): boolean => migrationIdPattern.test(s);
