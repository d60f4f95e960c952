/**
 * Parsing and validation of the magic lines of a cell. The kernel calls
 * `classifyCell` (or the finer functions) before handing any code to
 * TypeScript, so a bad option fails before anything runs.
 */
import { MagicError } from "./errors";
import { isLineMagicLine, LineMagic, parseLineMagic } from "./line";
import { didYouMean } from "./suggest";
import { ParsedStepLine, parseStepArguments, StepOptions, StepParseConfig } from "./step";

export { MagicError } from "./errors";
export { formatStepLine, isValidStepName, STEP_OPTIONS, TARGETS } from "./step";
export type { StepOptions, StepParseConfig, Target } from "./step";
export { LINE_MAGICS, isLineMagicLine, lineMagicUsage, parseLineMagic } from "./line";
export type { LineMagic } from "./line";
export { formatDuration, formatSize, parseDuration, parseSize } from "./units";

export const CELL_MAGICS = ["step"] as const;

export interface CellMagic {
  magic: "step";
  options: StepOptions;
  /** Options that parse but have no effect for the chosen target. */
  warnings: string[];
  /** The cell without its magic line (and the blank lines before it). */
  body: string;
  /** Lines of the cell before `body`: body line n is cell line n + bodyLineOffset. */
  bodyLineOffset: number;
  /** Characters of the cell before `body`: `source.slice(bodyOffset) === body`. */
  bodyOffset: number;
  /** The magic line itself, for error messages that point into it. */
  line: string;
}

/**
 * Reads a cell's `%%` magic. Returns null for a cell without one. Blank lines
 * before the magic are tolerated (they are common after editing); a `%%`
 * line anywhere after code is an error rather than a TypeScript syntax error.
 */
export function parseCellMagic(source: string, config: StepParseConfig = {}): CellMagic | null {
  const lines = source.split(/\r?\n/);
  let first = 0;
  while (first < lines.length && lines[first].trim() === "") first++;
  if (first === lines.length || !/^\s*%%/.test(lines[first])) {
    const late = lines.findIndex((l) => /^\s*%%[A-Za-z]/.test(l));
    if (late >= 0) {
      throw new MagicError(`line ${late + 1}: ${lines[late].trim().split(/\s+/)[0]} must be the first line of the cell`);
    }
    return null;
  }
  const line = lines[first];
  const start = line.indexOf("%%");
  const m = /^%%([A-Za-z][\w-]*)?/.exec(line.slice(start))!;
  const name = m[1] ?? "";
  if (!(CELL_MAGICS as readonly string[]).includes(name)) {
    const known = CELL_MAGICS.map((k) => `%%${k}`);
    throw new MagicError(`unknown cell magic %%${name}${didYouMean(`%%${name}`, known)}; known cell magics: ${known.join(", ")}`, start);
  }
  const argsStart = start + m[0].length;
  if (argsStart < line.length && !/\s/.test(line[argsStart])) {
    throw new MagicError(`unknown cell magic ${line.slice(start).split(/\s/)[0]}; known cell magics: %%step`, start);
  }
  const parsed: ParsedStepLine = parseStepArguments(line, argsStart, config);
  const rest = lines.slice(first + 1);
  const late = rest.findIndex((l) => /^\s*%%[A-Za-z]/.test(l));
  if (late >= 0) {
    throw new MagicError(`line ${first + late + 2}: a cell has at most one %% magic, on its first line`);
  }
  // Slice the original text so offsets (completion, inspection) stay exact.
  let bodyOffset = 0;
  for (let i = 0; i <= first; i++) {
    const nl = source.indexOf("\n", bodyOffset);
    bodyOffset = nl < 0 ? source.length : nl + 1;
  }
  return {
    magic: "step",
    options: parsed.options,
    warnings: parsed.warnings,
    body: source.slice(bodyOffset),
    bodyLineOffset: first + 1,
    bodyOffset,
    line,
  };
}

export type ClassifiedCell =
  { kind: "code"; code: string } | { kind: "step"; step: CellMagic } | { kind: "line-magics"; magics: Array<{ line: number; magic: LineMagic }> };

/**
 * What the kernel should do with a cell: plain code, a step, or line magics
 * only. Line magics must stand alone (one per line, blank lines and `//`
 * comments allowed) because mixing them into TypeScript would be ambiguous.
 */
export function classifyCell(source: string, config: StepParseConfig = {}): ClassifiedCell {
  const step = parseCellMagic(source, config);
  if (step !== null) {
    const lineMagic = step.body.split("\n").findIndex(isLineMagicLine);
    if (lineMagic >= 0) {
      throw new MagicError(`line ${step.bodyLineOffset + lineMagic + 1}: line magics cannot run inside a %%step cell; put them in their own cell`);
    }
    return { kind: "step", step };
  }
  const lines = source.split(/\r?\n/);
  const magicLines = lines.map((l, i) => [l, i] as const).filter(([l]) => isLineMagicLine(l));
  if (magicLines.length === 0) return { kind: "code", code: source };
  const codeLine = lines.findIndex((l) => l.trim() !== "" && !isLineMagicLine(l) && !/^\s*\/\//.test(l));
  if (codeLine >= 0) {
    const [, at] = magicLines[0];
    throw new MagicError(`line ${at + 1}: ${lines[at].trim().split(/\s+/)[0]} must be in a cell of its own ` + `(line ${codeLine + 1} is code)`);
  }
  return {
    kind: "line-magics",
    magics: magicLines.map(([l, i]) => ({ line: i, magic: parseLineMagic(l)! })),
  };
}
