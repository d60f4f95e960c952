/** What `nbscale run`/`resume` can tell from their arguments before loading anything else. */

/** False when every step goes elsewhere (`--on slurm|batch`) or only help is asked for. */
export function wantsLocalWorker(argv: readonly string[]): boolean {
  if (argv.includes("--help") || argv.includes("-h")) return false;
  const i = argv.indexOf("--on");
  const on = i >= 0 ? argv[i + 1] : argv.find((a) => a.startsWith("--on="))?.slice(5);
  return on !== "slurm" && on !== "batch";
}
