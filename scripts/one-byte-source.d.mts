/** `text` (a bundle written to `file`) with its comments' characters beyond Latin-1 escaped; see one-byte-source.mjs. */
export function oneByteSource(text: string, file: string): string;
