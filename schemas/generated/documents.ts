/* Generated from schemas/json/*.schema.json by `npm run gen:types`. Do not edit: add the schema and regenerate. */
import s0 from '../json/cancel-request.schema.json' with { type: 'json' };
import s1 from '../json/check-reply.schema.json' with { type: 'json' };
import s2 from '../json/command.schema.json' with { type: 'json' };
import s3 from '../json/common.schema.json' with { type: 'json' };
import s4 from '../json/coordinator-config.schema.json' with { type: 'json' };
import s5 from '../json/dead-letter.schema.json' with { type: 'json' };
import s6 from '../json/discovery-info.schema.json' with { type: 'json' };
import s7 from '../json/events.schema.json' with { type: 'json' };
import s8 from '../json/image-streamer-config.schema.json' with { type: 'json' };
import s9 from '../json/inspect-reply.schema.json' with { type: 'json' };
import s10 from '../json/inspect-request.schema.json' with { type: 'json' };
import s11 from '../json/list-request.schema.json' with { type: 'json' };
import s12 from '../json/migrate-reply.schema.json' with { type: 'json' };
import s13 from '../json/migrate-request.schema.json' with { type: 'json' };
import s14 from '../json/migration-status.schema.json' with { type: 'json' };
import s15 from '../json/node-agent-config.schema.json' with { type: 'json' };
import s16 from '../json/node-heartbeat.schema.json' with { type: 'json' };
import s17 from '../json/resolve-request.schema.json' with { type: 'json' };
import s18 from '../json/retry-request.schema.json' with { type: 'json' };
import s19 from '../json/service-config.schema.json' with { type: 'json' };
import s20 from '../json/status-reply.schema.json' with { type: 'json' };
import s21 from '../json/status-request.schema.json' with { type: 'json' };
import s22 from '../json/steps.schema.json' with { type: 'json' };
import s23 from '../json/stream-offer-reply.schema.json' with { type: 'json' };
import s24 from '../json/stream-offer.schema.json' with { type: 'json' };
import s25 from '../json/streamer-registration.schema.json' with { type: 'json' };
import s26 from '../json/transfer-progress.schema.json' with { type: 'json' };

/** Every schema file with its name, imported (so bundles carry them). */
export const schemaDocuments: readonly (readonly [string, unknown])[] = [
  ['cancel-request.schema.json', s0],
  ['check-reply.schema.json', s1],
  ['command.schema.json', s2],
  ['common.schema.json', s3],
  ['coordinator-config.schema.json', s4],
  ['dead-letter.schema.json', s5],
  ['discovery-info.schema.json', s6],
  ['events.schema.json', s7],
  ['image-streamer-config.schema.json', s8],
  ['inspect-reply.schema.json', s9],
  ['inspect-request.schema.json', s10],
  ['list-request.schema.json', s11],
  ['migrate-reply.schema.json', s12],
  ['migrate-request.schema.json', s13],
  ['migration-status.schema.json', s14],
  ['node-agent-config.schema.json', s15],
  ['node-heartbeat.schema.json', s16],
  ['resolve-request.schema.json', s17],
  ['retry-request.schema.json', s18],
  ['service-config.schema.json', s19],
  ['status-reply.schema.json', s20],
  ['status-request.schema.json', s21],
  ['steps.schema.json', s22],
  ['stream-offer-reply.schema.json', s23],
  ['stream-offer.schema.json', s24],
  ['streamer-registration.schema.json', s25],
  ['transfer-progress.schema.json', s26],
];
