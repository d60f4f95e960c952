/** `%workers`: the local pool, one line per worker. */
import type { LineHandler } from "../magic-dispatch";
import type { LocalPool } from "../../backends/local-pool";
import { humanBytes } from "../../backends/memory";

export function workersHandler(pool: LocalPool): LineHandler {
  return async () => {
    const rows = pool.list().sort((a, b) => a.startedAt - b.startedAt);
    const header = ["worker", "pid", "memory limit", "rss", "state", "step", "steps run"];
    const table = rows.map((w) => [
      w.id,
      String(w.pid),
      w.memory !== undefined ? humanBytes(w.memory) : "none (V8 default)",
      w.rss !== null ? humanBytes(w.rss) : "-",
      w.state,
      w.step ?? "-",
      String(w.steps),
    ]);
    const widths = header.map((h, i) => Math.max(h.length, ...table.map((r) => r[i].length)));
    const line = (r: string[]) =>
      r
        .map((c, i) => c.padEnd(widths[i]))
        .join("  ")
        .trimEnd();
    const out = [
      `local workers: ${rows.length}; memory reserved by running steps ${humanBytes(pool.reserved())} of ${humanBytes(pool.totalMemory)}`,
      line(header),
      ...table.map(line),
    ];
    process.stdout.write(out.join("\n") + "\n");
    return { ok: true, hasValue: false };
  };
}
