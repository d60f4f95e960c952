/** What a failed cell reports: the fields of a Jupyter `error` message. */
export interface CellError {
  ename: string;
  evalue: string;
  traceback: string[];
}

const RED = "\x1b[31m";
const BOLD = "\x1b[1m";
const DIM = "\x1b[2m";
const RESET = "\x1b[0m";

/** A source excerpt with a caret under the culprit, as compilers print it. */
export function excerpt(source: string, line: number, column: number, lineOffset: number): string[] {
  const lines = source.split("\n");
  const text = lines[line] ?? "";
  const num = String(line + 1 + lineOffset);
  return [`${DIM}${num} |${RESET} ${text}`, `${" ".repeat(num.length)} ${DIM}|${RESET} ${" ".repeat(Math.max(0, column))}${RED}^${RESET}`];
}

export function heading(ename: string, evalue: string): string {
  return `${RED}${BOLD}${ename}${RESET}: ${evalue}`;
}

export function interruptedError(): CellError {
  return {
    ename: "KeyboardInterrupt",
    evalue: "execution interrupted",
    traceback: [heading("KeyboardInterrupt", "execution interrupted")],
  };
}
