import { _, Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';

// ajv-formats ships CommonJS with a default export object.
const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => Ajv2020;

/**
 * haul's Ajv: strict, the first error only, discriminated unions, no defaults written into messages, and the formats.
 * `source` keeps each function's code, for the standalone validators generated at build time
 * (scripts/render-validators.ts).
 */
export function createAjv(o: { source?: boolean } = {}): Ajv2020 {
  const ajv = new Ajv2020({
    strict: true,
    allErrors: false,
    discriminator: true,
    useDefaults: false,
    // The formats' code as the generated module requires it (said here: ajv-formats would say it with the `_` of its
    // own copy of Ajv, which this one does not recognise as code).
    ...(o.source
      ? { code: { source: true, formats: _`require("ajv-formats/dist/formats").fullFormats` } }
      : {}),
  });
  addFormats(ajv);
  // Annotations without validation meaning: a type-generation hint, and where a service setting comes from in the
  // environment (packages/bus/src/settings).
  ajv.addVocabulary(['tsType', 'haulEnv', 'haulEnvSeparator', 'haulDefaultFrom']);
  return ajv;
}
