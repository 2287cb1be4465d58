import { writeFileSync } from 'node:fs';
import { relative } from 'node:path';
import {
  asyncApiMarkdownPath,
  asyncApiPath,
  renderAsyncApi,
  renderAsyncApiMarkdown,
} from './render-asyncapi.ts';

writeFileSync(asyncApiPath, await renderAsyncApi());
writeFileSync(asyncApiMarkdownPath, await renderAsyncApiMarkdown());
for (const p of [asyncApiPath, asyncApiMarkdownPath]) console.log(`wrote ${relative(process.cwd(), p)}`);
