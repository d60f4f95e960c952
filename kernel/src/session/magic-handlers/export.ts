/**
 * `%export [PATH]` — writes the notebook's flow file (see flow/export.ts)
 * and prints its path. PATH is relative to the notebook's folder; the
 * default is NOTEBOOK.flow.ts next to the notebook.
 *
 * The kernel exports the notebook *file*, so what is exported is the
 * notebook as last saved. The kernel knows the file from JupyterLab's
 * `JPY_SESSION_NAME` (or `NBSCALE_NOTEBOOK`); headless clients don't say,
 * and then `nbscale export NOTEBOOK.ipynb` is the way.
 */
import { existsSync } from "node:fs";
import { isAbsolute, relative, resolve } from "node:path";
import type { CellMagics } from "../magic-dispatch";
import { magicFailure } from "../magic-dispatch";
import type { Recorder } from "../recording";
import { ExportError } from "../../flow/export";
import { exportNotebookFile } from "../../flow/export-file";

export interface ExportServices {
  recorder: Recorder;
}

export function register(magics: CellMagics, services: ExportServices): void {
  magics.onLine("export", async (magic) => {
    const nb = services.recorder.notebook;
    if (!/\.ipynb$/i.test(nb) || !existsSync(nb)) {
      return magicFailure(
        "ExportError",
        `this kernel doesn't know which notebook file it runs (headless clients don't say). ` +
          `Export from a terminal with \`nbscale export NOTEBOOK.ipynb\`, or set NBSCALE_NOTEBOOK for the kernel.`,
      );
    }
    try {
      const dir = services.recorder.notebookDir;
      const out = magic.path !== undefined ? resolve(dir, magic.path) : undefined;
      // The kernel writes only in the notebook's folder, whoever sends the line; a terminal can write anywhere.
      if (out !== undefined && (magic.path!.includes("\0") || /^\.\.(\/|$)/.test(relative(dir, out)) || isAbsolute(relative(dir, out)))) {
        return magicFailure(
          "ExportError",
          `%export ${JSON.stringify(magic.path)}: the flow file must be inside the notebook's folder ${dir} (a relative path without .. and NUL bytes); ` +
            `to write elsewhere, run \`nbscale export ${nb} -o PATH\` in a terminal`,
        );
      }
      const r = exportNotebookFile(nb, out);
      for (const w of r.warnings) process.stderr.write(`warning: cell ${w.cell}: ${w.message}\n`);
      process.stdout.write(
        `${r.path}\n${r.steps.length} step${r.steps.length === 1 ? "" : "s"} (from the notebook as last saved); run it with: nbscale run ${r.path}\n`,
      );
      return { ok: true, hasValue: false };
    } catch (e) {
      if (e instanceof ExportError) return magicFailure("ExportError", e.message);
      throw e;
    }
  });
}
