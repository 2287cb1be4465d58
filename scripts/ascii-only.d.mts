/** `text` (a bundle written to `file`) in ASCII, each other character escaped; see ascii-only.mjs. */
export function asciiOnly(text: string, file: string): string;
