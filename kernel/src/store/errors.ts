/**
 * Errors the datastore throws. Each message is written for the user: it names
 * the culprit (artifact, variable, execution, file) and the fix.
 */

/** Base class so callers (CLI, magics) can print `message` without a stack. */
export class StoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** Stored bytes no longer match their SHA-256: never returned as data. */
export class CorruptArtifactError extends StoreError {
  constructor(
    readonly artifact: string,
    readonly sha256: string,
    readonly detail: string,
  ) {
    super(
      `Artifact ${artifact} is corrupt: blob sha256:${sha256} ${detail}. ` +
        `Its bytes were not returned. Run \`nbscale fsck\` to list every damaged blob; ` +
        `re-running the cell that produced it records the value again once the damaged blob file is deleted.`,
    );
  }
}

/** The bytes of a value changed while they were being written (live memory was mutated). */
export class ContentChangedError extends StoreError {
  constructor(
    readonly key: string,
    readonly expected: string,
    readonly actual: string,
  ) {
    super(
      `The value being written to ${key} changed while it was written ` +
        `(expected sha256:${expected}, wrote sha256:${actual}); the partial write was discarded.`,
    );
  }
}

/** A value can't be turned into bytes. Steps use this to refuse an input. */
export class UnserializableValueError extends StoreError {
  constructor(
    readonly variable: string,
    readonly type: string,
    readonly reason: string,
    /** Where inside the value the offending part sits, e.g. `opts.onEpoch`. */
    readonly path: string | null,
  ) {
    super(
      `Variable \`${variable}\` (${type}) can't be serialized: ${reason}` +
        (path ? ` (at \`${path}\`)` : "") +
        `. Make it plain data (objects, arrays, Maps, Sets, typed arrays, Dates), ` +
        `or recreate it inside the step from serializable inputs.`,
    );
  }
}

export class UnknownVariableError extends StoreError {
  constructor(
    readonly variable: string,
    readonly similar: string[],
    readonly known: number,
  ) {
    super(
      `No variable \`${variable}\` in the datastore.` +
        (similar.length > 0
          ? ` Did you mean: ${similar.map((s) => `\`${s}\``).join(", ")}?`
          : known === 0
            ? " The datastore has no recorded variables yet; run a cell that defines it first."
            : ` Run \`nbscale artifact list\` to see the ${known} recorded names.`),
    );
  }
}

export class NoSuchVersionError extends StoreError {
  constructor(
    readonly variable: string,
    readonly version: number,
    readonly existing: number[],
  ) {
    super(
      `\`${variable}\` has no version ${version}. Existing versions: ` + (existing.length > 0 ? formatVersions(variable, existing) : "(none committed)") + ".",
    );
  }
}

export class UnknownExecutionError extends StoreError {
  constructor(
    readonly id: string,
    readonly candidates: string[],
  ) {
    super(
      candidates.length > 1
        ? `Execution id \`${id}\` is ambiguous; it matches ${candidates.slice(0, 5).join(", ")}` +
            (candidates.length > 5 ? ` and ${candidates.length - 5} more` : "") +
            ". Give more characters."
        : `No execution \`${id}\` in the datastore. Run \`nbscale history\` to list executions.`,
    );
  }
}

export class NotInNotebookError extends StoreError {
  constructor(
    readonly variable: string,
    readonly notebook: string,
    readonly others: string[],
  ) {
    super(
      `\`${variable}\` has no versions recorded by notebook ${notebook}; ` +
        `it has versions from ${[...new Set(others)].join(", ")}. Give an explicit version (NAME@N) to restore one of those.`,
    );
  }
}

/** A variable spec or option value is malformed. */
export class InvalidSpecError extends StoreError {}

/** A stored value is a stub or source and can't become a live value here. */
export class NotRestorableError extends StoreError {}

/** The datastore location or setting is wrong or unsupported. */
export class DatastoreConfigError extends StoreError {}

function formatVersions(name: string, versions: number[]): string {
  const shown = versions.length > 12 ? [...versions.slice(0, 5), ...versions.slice(-5)] : versions;
  const parts = shown.map((v) => `${name}@${v}`);
  if (versions.length > 12) parts.splice(5, 0, "…");
  return parts.join(", ");
}

/** Edit distance counting a swap of neighbours as one edit ("modle" → "model"). */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 0; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

export function closeNames(target: string, names: Iterable<string>, max = 5): string[] {
  const lower = target.toLowerCase();
  const scored: Array<[number, string]> = [];
  for (const n of names) {
    const d = editDistance(lower, n.toLowerCase());
    const contains = n.toLowerCase().includes(lower) || lower.includes(n.toLowerCase());
    if (d <= Math.max(1, Math.floor(target.length / 3)) || contains) scored.push([contains ? Math.min(d, 1) : d, n]);
  }
  scored.sort((x, y) => x[0] - y[0] || x[1].localeCompare(y[1]));
  return scored.slice(0, max).map(([, n]) => n);
}

/** The datastore did not answer (network, outage, throttling) even after retries. */
export class DatastoreUnavailableError extends StoreError {}
