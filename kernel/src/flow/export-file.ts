/** Reading a notebook file and writing its flow next to it (CLI and `%export`). */
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { ExportError, exportNotebook, ExportResult } from "./export";

export function defaultFlowPath(notebookPath: string): string {
  return join(dirname(notebookPath), `${basename(notebookPath).replace(/\.ipynb$/i, "")}.flow.ts`);
}

export function exportNotebookFile(notebookFile: string, outFile?: string, cwd = process.cwd()): ExportResult & { path: string } {
  const nbPath = resolve(cwd, notebookFile);
  let text: string;
  try {
    text = readFileSync(nbPath, "utf8");
  } catch (e) {
    throw new ExportError([{ cell: 0, message: `cannot read ${notebookFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` }]);
  }
  let nb: unknown;
  try {
    nb = JSON.parse(text);
  } catch (e) {
    throw new ExportError([{ cell: 0, message: `${notebookFile} is not valid JSON (${(e as Error).message}); is it a .ipynb notebook?` }]);
  }
  const result = exportNotebook(nb, { notebookPath: nbPath });
  const path = outFile !== undefined ? resolve(cwd, outFile) : defaultFlowPath(nbPath);
  // Whole file or nothing: an editor watching it never sees half a flow.
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, result.source);
    renameSync(tmp, path);
  } catch (e) {
    throw new ExportError([{ cell: 0, message: `cannot write ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` }]);
  }
  return { ...result, path };
}
