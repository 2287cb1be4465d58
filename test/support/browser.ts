import { existsSync } from 'node:fs';
import type { Browser } from 'puppeteer-core';

/**
 * Debian's Chromium (scripts/bootstrap.sh installs it when missing); HAUL_CHROMIUM names another. puppeteer-core
 * never downloads a browser of its own.
 */
export function chromiumBinary(): string {
  const path = process.env['HAUL_CHROMIUM'] ?? '/usr/bin/chromium';
  if (!existsSync(path))
    throw new Error(
      `${path} not found: install it with \`sudo apt-get install -y chromium\` (or run \`npm run bootstrap\`)`,
    );
  return path;
}

/** A headless Chromium for one test file; close() it in `after`. puppeteer is loaded only by a test that needs it. */
export async function launchBrowser(): Promise<Browser> {
  const { default: puppeteer } = await import('puppeteer-core');
  return puppeteer.launch({
    executablePath: chromiumBinary(),
    headless: true,
    // Tests run as root in CI, where Chromium's sandbox cannot start; the page is our own, served on loopback.
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--font-render-hinting=none'],
  });
}
