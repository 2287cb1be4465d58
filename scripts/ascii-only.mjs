/**
 * A program's bundle in ASCII (scripts/build.mjs writes every bundle through this). V8 holds a source that has any
 * character beyond Latin-1 as a two-byte string, which Node decodes and V8 compiles more slowly: for a few dashes in
 * comments, each service and the CLI took about 10 ms more CPU to start (`--help`, 40 interleaved pairs of starts per
 * program: the two-byte bundle took more in 26-29 of the 40, medians 200-280 ms against 190-240).
 *
 * esbuild escapes strings, template literals and identifiers (its default `charset`), but writes comments and regular
 * expression literals as they are: what is left is escaped here. `\uXXXX` is the same character in a comment, a
 * regular expression, a string or an identifier; a character beyond the BMP becomes its surrogate pair, which a `u`
 * regular expression reads as one character. Two cases would change the meaning, and none is expected, so they fail
 * the build: a backslash right before the character, and the line and paragraph separators (U+2028, U+2029), which
 * end a `//` comment.
 */
export function asciiOnly(text, file) {
  return text.replace(/[^\x00-\x7f]/g, (c, at) => {
    const hex = c.charCodeAt(0).toString(16).padStart(4, '0');
    if (text[at - 1] === '\\' || c === '\u2028' || c === '\u2029')
      throw new Error(
        `${file}: U+${hex.toUpperCase()} at ${at} cannot be escaped without changing its meaning`,
      );
    return `\\u${hex}`;
  });
}
