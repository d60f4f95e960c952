/** Reading a notebook file and writing its flow next to it (CLI and `%export`). */
import { closeSync, openSync, readFileSync, readSync, renameSync, writeFileSync } from "node:fs";
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
  refuseToClobber(path, nbPath);
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

/**
 * A flow file is written over only an earlier flow: never over the notebook
 * it comes from, nor over a file of the user's own (a helper `.ts` module),
 * nor under a name that is not TypeScript.
 */
function refuseToClobber(path: string, nbPath: string): void {
  const refuse = (message: string) => {
    throw new ExportError([{ cell: 0, message }]);
  };
  if (path.includes("\0")) refuse(`the flow file path ${JSON.stringify(path)} holds a NUL byte`);
  if (path === nbPath) refuse(`${path} is the notebook itself; the flow goes to a .ts file (default: ${defaultFlowPath(nbPath)})`);
  if (!/\.ts$/i.test(path)) refuse(`${path}: a flow file is TypeScript; give a path ending in .ts (default: ${defaultFlowPath(nbPath)})`);
  let head = "";
  try {
    const fd = openSync(path, "r");
    try {
      const buf = Buffer.alloc(512);
      head = buf.subarray(0, readSync(fd, buf, 0, 512, 0)).toString("utf8");
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
    refuse(`cannot write ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (!/: a flow exported by nbscale from /.test(head)) {
    refuse(`${path} exists and is not a flow nbscale exported; choose another path (or delete that file) so nothing of yours is overwritten`);
  }
}
