/**
 * An error in a `%%` or `%` line, meant to be shown to the user verbatim.
 * `column` is a 0-based offset into the magic line when the culprit has a
 * position, so the kernel can underline it.
 */
export class MagicError extends Error {
  readonly column: number | undefined;
  constructor(message: string, column?: number) {
    super(message);
    this.name = "MagicError";
    this.column = column;
  }
}
