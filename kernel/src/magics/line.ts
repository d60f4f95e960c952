import { MagicError } from "./errors";
import { didYouMean } from "./suggest";
import { quote, tokenize } from "./tokenize";

export type LineMagic =
  | { magic: "history"; name?: string }
  | { magic: "restore"; name: string; version?: string }
  | { magic: "export"; path?: string }
  | { magic: "workers" }
  | { magic: "lsmagic" };

export const LINE_MAGICS = ["history", "restore", "export", "workers", "lsmagic"] as const;

const USAGE: Record<LineMagic["magic"], string> = {
  history: "%history [NAME]",
  restore: "%restore NAME[@VERSION]",
  export: "%export [PATH]",
  workers: "%workers",
  lsmagic: "%lsmagic",
};

/** Artifact and step names: variable names plus step names (which allow -). */
const ARTIFACT_NAME_RE = /^[A-Za-z0-9_$][A-Za-z0-9_$-]*$/;
const VERSION_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]*$/;

export function lineMagicUsage(): string[] {
  return LINE_MAGICS.map((m) => USAGE[m]);
}

/**
 * True for a line the kernel must treat as a line magic: `%` directly
 * followed by a letter. (`% 2` on its own line is the tail of a modulo
 * expression in TypeScript and stays code; `%%` is a cell magic.)
 */
export function isLineMagicLine(line: string): boolean {
  return /^\s*%[A-Za-z]/.test(line);
}

/** Parses one `%name args` line; null when the line is not a line magic. */
export function parseLineMagic(line: string): LineMagic | null {
  if (!isLineMagicLine(line)) return null;
  const text = line.replace(/\s+$/, "");
  const start = text.indexOf("%");
  const m = /^%([A-Za-z][\w-]*)/.exec(text.slice(start));
  const name = m![1];
  const argsStart = start + m![0].length;
  if (!(LINE_MAGICS as readonly string[]).includes(name)) {
    const known = LINE_MAGICS.map((k) => `%${k}`);
    throw new MagicError(`unknown line magic %${name}${didYouMean(`%${name}`, known)}; known line magics: ${known.join(", ")}`, start);
  }
  const magic = name as LineMagic["magic"];
  const args = tokenize(text.slice(argsStart), argsStart);
  const tooMany = (max: number): void => {
    if (args.length > max) {
      throw new MagicError(`%${magic}: unexpected argument ${quote(args[max].value)}; usage: ${USAGE[magic]}`, args[max].column);
    }
  };
  switch (magic) {
    case "workers":
    case "lsmagic":
      tooMany(0);
      return { magic };
    case "history": {
      tooMany(1);
      if (args.length === 0) return { magic };
      checkName(magic, args[0].value, args[0].column);
      return { magic, name: args[0].value };
    }
    case "export": {
      tooMany(1);
      if (args.length === 0) return { magic };
      if (args[0].value === "") throw new MagicError(`%export: empty path; usage: ${USAGE.export}`, args[0].column);
      return { magic, path: args[0].value };
    }
    case "restore": {
      tooMany(1);
      if (args.length === 0) throw new MagicError(`%restore: missing NAME; usage: ${USAGE.restore}`, argsStart);
      const { value, column } = args[0];
      const at = value.indexOf("@");
      const artifact = at < 0 ? value : value.slice(0, at);
      checkName(magic, artifact, column);
      if (at < 0) return { magic, name: artifact };
      const version = value.slice(at + 1);
      if (!VERSION_RE.test(version)) {
        throw new MagicError(
          `%restore ${value}: version ${JSON.stringify(version)} is not a version; usage: ${USAGE.restore} ` + `(see %history ${artifact} for the versions)`,
          column + at + 1,
        );
      }
      return { magic, name: artifact, version };
    }
  }
}

function checkName(magic: LineMagic["magic"], name: string, column: number): void {
  if (!ARTIFACT_NAME_RE.test(name)) {
    throw new MagicError(`%${magic} ${JSON.stringify(name)}: a name is made of letters, digits, _, $ and -; usage: ${USAGE[magic]}`, column);
  }
}
