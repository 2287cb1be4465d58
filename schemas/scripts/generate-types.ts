import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderTypes, generatedTypesPath } from './render-types.ts';

const out = await renderTypes();
writeFileSync(generatedTypesPath, out);
console.log(`wrote ${join('schemas', 'generated', 'messages.ts')}`);
