import { readFileSync } from 'node:fs';

/** The page's files by URL path, with their content types. */
export type PageFiles = { files: Record<string, { type: string; body: string }> };

/** The files of packages/cli/web/ the server serves, by URL path. */
export const pageFileNames = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/app.js': ['app.js', 'text/javascript; charset=utf-8'],
  '/style.css': ['style.css', 'text/css; charset=utf-8'],
} as const;

// scripts/build.mjs puts the files into the CLI's bundle (esbuild `define`), which so stays one file needing nothing
// but Node.js; run from source (tests, tsx) there is no such constant and they are read from packages/cli/web/.
declare const HAUL_WEB_PAGE: Record<string, string> | undefined;

/** The page: the bundle's copy, or the files beside src/ (this module sits directly in src/, as the bundle in dist/). */
export function loadPage(): PageFiles {
  const embedded = typeof HAUL_WEB_PAGE === 'undefined' ? undefined : HAUL_WEB_PAGE;
  const files: PageFiles['files'] = {};
  for (const [path, [name, type]] of Object.entries(pageFileNames)) {
    const body = embedded?.[name] ?? readFileSync(new URL(`../web/${name}`, import.meta.url), 'utf8');
    files[path] = { type, body };
  }
  return { files };
}
