/**
 * What a check takes for a speed that no earlier migration measured, labelled `assumed` wherever it is used: a link
 * of 1 Gbit/s less protocol overhead, and criu writing and reading pages through the page cache at 500 MB/s. Round
 * figures, not measurements (the emulated hosts restore at about 20 MB/s): the first migration between two nodes
 * replaces all three. The frozen lease of a migration without pre-dumps takes the link's too (decide.ts leaseInput):
 * no transfer has measured it by the final dump.
 */
export const assumedSpeeds = {
  linkBytesPerSec: 100e6,
  dumpBytesPerSec: 500e6,
  restoreBytesPerSec: 500e6,
} as const;
