/* Generated from schemas/json/*.schema.json by `npm run gen:types`. Do not edit: add the schema and regenerate. */
import s0 from '../json/cancel-request.schema.json' with { type: 'json' };
import s1 from '../json/command.schema.json' with { type: 'json' };
import s2 from '../json/common.schema.json' with { type: 'json' };
import s3 from '../json/dead-letter.schema.json' with { type: 'json' };
import s4 from '../json/discovery-info.schema.json' with { type: 'json' };
import s5 from '../json/events.schema.json' with { type: 'json' };
import s6 from '../json/list-request.schema.json' with { type: 'json' };
import s7 from '../json/migrate-reply.schema.json' with { type: 'json' };
import s8 from '../json/migrate-request.schema.json' with { type: 'json' };
import s9 from '../json/migration-status.schema.json' with { type: 'json' };
import s10 from '../json/node-heartbeat.schema.json' with { type: 'json' };
import s11 from '../json/resolve-request.schema.json' with { type: 'json' };
import s12 from '../json/retry-request.schema.json' with { type: 'json' };
import s13 from '../json/status-reply.schema.json' with { type: 'json' };
import s14 from '../json/status-request.schema.json' with { type: 'json' };
import s15 from '../json/steps.schema.json' with { type: 'json' };
import s16 from '../json/stream-offer-reply.schema.json' with { type: 'json' };
import s17 from '../json/stream-offer.schema.json' with { type: 'json' };
import s18 from '../json/streamer-registration.schema.json' with { type: 'json' };
import s19 from '../json/transfer-progress.schema.json' with { type: 'json' };

/** Every schema file with its name, imported (so bundles carry them). */
export const schemaDocuments: readonly (readonly [string, unknown])[] = [
  ['cancel-request.schema.json', s0],
  ['command.schema.json', s1],
  ['common.schema.json', s2],
  ['dead-letter.schema.json', s3],
  ['discovery-info.schema.json', s4],
  ['events.schema.json', s5],
  ['list-request.schema.json', s6],
  ['migrate-reply.schema.json', s7],
  ['migrate-request.schema.json', s8],
  ['migration-status.schema.json', s9],
  ['node-heartbeat.schema.json', s10],
  ['resolve-request.schema.json', s11],
  ['retry-request.schema.json', s12],
  ['status-reply.schema.json', s13],
  ['status-request.schema.json', s14],
  ['steps.schema.json', s15],
  ['stream-offer-reply.schema.json', s16],
  ['stream-offer.schema.json', s17],
  ['streamer-registration.schema.json', s18],
  ['transfer-progress.schema.json', s19],
];
