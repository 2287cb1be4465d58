/**
 * A program's bundle with no character beyond Latin-1 (scripts/build.mjs writes every bundle through this), so that
 * V8 holds its source as a one-byte string: one character beyond Latin-1 anywhere, a dash in a comment, makes it a
 * two-byte string, which Node decodes and V8 compiles more slowly (docs/decisions.md 2).
 *
 * esbuild escapes strings, untagged template literals and identifiers (its default `charset`), but prints comments,
 * regular expression literals and tagged templates (whose raw text the tag reads) as they are. Only comments are
 * escaped here: on a line esbuild prints as a comment (it starts with `//`, `/*` or `*`), a character beyond Latin-1
 * becomes `\uXXXX`, which in a comment is text like any other. Anywhere else the build fails, naming the file, the line
 * and the character, rather than guess whether an escape keeps the meaning (in a tagged template it would not), and
 * so do U+2028 and U+2029, which end a `//` comment. A Latin-1 character (the µ of a duration pattern in nats.js) stays
 * as it is: V8 keeps it in one byte. What this cannot tell is a line inside a multi-line tagged template that begins
 * like a comment; no bundle has a tagged template with such a character.
 */
export function oneByteSource(text, file) {
  const lines = text.split('\n');
  return lines
    .map((line, i) => {
      if (!/[^\x00-\xff]/.test(line)) return line;
      const where = (c) =>
        `${file}:${i + 1}: U+${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}`;
      const separator = /[\u2028\u2029]/.exec(line);
      if (separator)
        throw new Error(`${where(separator[0])}, a line separator, cannot be escaped in a comment`);
      if (!/^\s*(\/\/|\/\*|\*)/.test(line))
        throw new Error(`${where(/[^\x00-\xff]/.exec(line)[0])} is beyond Latin-1 outside a comment`);
      return line.replace(/[^\x00-\xff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
    })
    .join('\n');
}
