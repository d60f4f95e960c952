/**
 * Turns an exception thrown in a worker into the `error` a cell shows: the
 * stack's frames in the step program are mapped back to the cell's own
 * lines (body) or to the earlier cell a shipped function came from.
 */
import { excerpt, heading, type CellError } from "../session/errors";
import type { RemoteError } from "../worker/events";
import type { StepPackage } from "./package";

export function mapRemoteError(err: RemoteError, pkg: StepPackage, body: string, bodyLineOffset: number, where: string): CellError {
  const traceback = [heading(err.name, err.message)];
  const frames = (err.stack ?? "").split("\n").slice(1);
  let excerptShown = false;
  for (const frame of frames) {
    const m = /^\s*at (?:(.*?) \()?(.*?):(\d+):(\d+)\)?$/.exec(frame);
    if (!m) continue;
    const [, fn, file, lineStr] = m;
    if (file.endsWith(pkg.program.filename)) {
      const line = Number(lineStr) - 1;
      const region = pkg.regions.find((r) => line >= r.start && line < r.end);
      if (!region) continue; // the wrapper
      const label = fn && !/^(Object\.<anonymous>|<anonymous>|async <anonymous>)$/.test(fn) ? fn.replace(/^async /, "") : "<cell>";
      const local = region.map.tsLine(line - region.start);
      if (region.cellId === null) {
        traceback.push(`    at ${label} (cell, line ${local + 1 + bodyLineOffset})`);
        if (!excerptShown) {
          const col = (body.split("\n")[local] ?? "").search(/\S/);
          traceback.push(...excerpt(body, local, Math.max(0, col), bodyLineOffset).map((l) => "    " + l));
          excerptShown = true;
        }
      } else {
        traceback.push(`    at ${label} (from cell ${region.cellId}, line ${local + 1 + region.cellLine})`);
      }
    } else if (!file.includes("/nbscale/") && !file.includes("/kernel/dist/") && !file.startsWith("node:") && !/^(vm|evalmachine)/.test(file)) {
      traceback.push(frame.replace(/^\s*/, "    "));
    }
  }
  traceback.push(`    (raised ${where})`);
  return { ename: err.name, evalue: err.message, traceback: traceback.filter((l, i) => l !== traceback[i - 1]) };
}
