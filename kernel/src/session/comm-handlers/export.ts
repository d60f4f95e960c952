/**
 * Comm target `nbscale.export`: the JupyterLab "Export Notebook to Flow"
 * command asks the kernel to export a notebook file in its folder. The
 * frontend names the file because it knows the notebook's current name; the
 * kernel's own idea of it (JPY_SESSION_NAME) goes stale after a rename.
 */
import { existsSync } from "node:fs";
import { basename, join } from "node:path";
import type { CommManager } from "../comms";
import type { Recorder } from "../recording";
import { ExportError } from "../../flow/export";
import { exportNotebookFile } from "../../flow/export-file";

export const EXPORT_TARGET = "nbscale.export";

export function register(comms: CommManager, services: { recorder: Recorder }): void {
  comms.registerTarget(EXPORT_TARGET, (comm) => {
    comm.onMessage = (data) => {
      const req = data.req;
      const name = typeof data.notebook === "string" ? data.notebook : "";
      // Only a file name: the export stays in the kernel's notebook folder.
      if (!name || name !== basename(name) || !/\.ipynb$/i.test(name)) {
        comm.send({ req, error: `expected a notebook file name like analysis.ipynb, got ${JSON.stringify(name)}` });
        return;
      }
      const file = join(services.recorder.notebookDir, name);
      if (!existsSync(file)) {
        comm.send({ req, error: `${name} is not in the kernel's folder ${services.recorder.notebookDir}; save the notebook first` });
        return;
      }
      try {
        const r = exportNotebookFile(file);
        comm.send({
          req,
          path: r.path,
          file: basename(r.path),
          steps: r.steps.length,
          warnings: r.warnings.map((w) => `cell ${w.cell}: ${w.message}`),
        });
      } catch (e) {
        comm.send({ req, error: e instanceof ExportError ? e.message : `export failed: ${(e as Error).message}` });
      }
    };
  });
}
