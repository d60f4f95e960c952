/**
 * `is_complete` for terminal clients: code is incomplete while the parser
 * stops at its end expecting more (an open bracket, block or template), and
 * finished by a blank line, as in IPython.
 */
import { ts } from "../../step/typescript";

export interface Completeness {
  status: "complete" | "incomplete" | "invalid";
  indent?: string;
}

export function isCompleteCell(src: string): Completeness {
  if (/(^|\n)\s*\n\s*$/.test(src) && src.trim().length > 0) return { status: "complete" };
  const sf = ts.createSourceFile("cell.tsx", src, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const diags = (sf as unknown as { parseDiagnostics?: ts.DiagnosticWithLocation[] }).parseDiagnostics ?? [];
  const end = src.length;
  for (const d of diags) {
    if (d.start < end - 1 || (d.length ?? 0) > 1) continue;
    const text = ts.flattenDiagnosticMessageText(d.messageText, "\n");
    if (/expected\.$|Unterminated/.test(text)) return { status: "incomplete", indent: indentOnEnter(src) };
  }
  return { status: "complete" };
}

/** The indent of the next line: one step deeper after an opening bracket, as editors do. */
function indentOnEnter(src: string): string {
  const line = /[^\n]*$/.exec(src)?.[0] ?? "";
  const current = /^\s*/.exec(line)?.[0] ?? "";
  if (/[{([]\s*$/.test(line)) return current + "  ";
  return current;
}
