import { MagicError } from "./errors";

export interface Token {
  /** The word with quotes removed and escapes resolved. */
  value: string;
  /** Offset of the token's first character in the magic line. */
  column: number;
  /**
   * True when the token starts with an unquoted `--`, i.e. it is written as an
   * option. A quoted "--x" is a value, so `--foreach "--weird"` stays possible.
   */
  isOption: boolean;
  /** Offset of an unquoted `=` inside an option token, relative to `value`. */
  equalsAt: number;
}

/**
 * Shell-like word splitting: whitespace separates words, "double" and
 * 'single' quotes group (and may sit inside a word, as in `--env K="a b"`),
 * a backslash escapes the next character outside single quotes.
 */
export function tokenize(text: string, baseColumn = 0): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    while (i < text.length && /\s/.test(text[i])) i++;
    if (i >= text.length) break;
    const start = i;
    let value = "";
    let equalsAt = -1;
    const isOption = text.startsWith("--", i);
    while (i < text.length && !/\s/.test(text[i])) {
      const ch = text[i];
      if (ch === '"' || ch === "'") {
        const quoteColumn = baseColumn + i;
        i++;
        let closed = false;
        while (i < text.length) {
          const c = text[i];
          if (c === ch) {
            closed = true;
            i++;
            break;
          }
          if (c === "\\" && ch === '"' && i + 1 < text.length) {
            value += text[i + 1];
            i += 2;
            continue;
          }
          value += c;
          i++;
        }
        if (!closed) {
          throw new MagicError(`unterminated ${ch} quote starting at column ${quoteColumn + 1}`, quoteColumn);
        }
        continue;
      }
      if (ch === "\\" && i + 1 < text.length) {
        value += text[i + 1];
        i += 2;
        continue;
      }
      if (ch === "=" && isOption && equalsAt < 0) equalsAt = value.length;
      value += ch;
      i++;
    }
    tokens.push({ value, column: baseColumn + start, isOption, equalsAt });
  }
  return tokens;
}

/** Quotes a value only when reading it back would otherwise change it. */
export function quote(value: string): string {
  if (value !== "" && /^[A-Za-z0-9_\-.,:/@+=%^]+$/.test(value) && !value.startsWith("--")) return value;
  return `"${value.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}
