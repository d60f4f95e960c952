"""Gather bench/results/*.json into bench/results.json, a Markdown table (stdout) and a PNG chart.

Runs in the bench venv (matplotlib). Reads what step_bench.py, foreach_bench.py,
record_bench.js and metaflow_bench.py wrote in this run; computes nothing new
except ratios of numbers measured in the same run.

    bench/.venv/bin/python bench/report.py [--chart docs/benchmarks.png] [--kernels-chart docs/kernels.png]

bench/results/kernels.json (kernels_bench.py: nbscale vs Deno vs tslab) adds
its own table (also in bench/results/kernels_table.md) and docs/kernels.png.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def load(name: str) -> dict[str, Any]:
    with open(os.path.join(HERE, "results", name)) as f:
        return json.load(f)


def machine() -> dict[str, Any]:
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem_kb / (1 << 20), 1),
        "node": subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip(),
        "python": platform.python_version(),
        "os": platform.platform(),
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def fmt(x: float, nd: int = 2) -> str:
    return f"{x:.{nd}f}"


def main() -> None:
    chart = sys.argv[sys.argv.index("--chart") + 1] if "--chart" in sys.argv else os.path.join(ROOT, "docs", "benchmarks.png")
    step, fe, rec, mf = load("step_bench.json"), load("foreach_bench.json"), load("record_bench.json"), load("metaflow_bench.json")
    lin, res, mfe, mfa = mf["linear"], mf["resume"], mf["foreach"], mf["artifacts"]

    # name, value, target, "higher"/"lower" is better, spread, Metaflow's number (for the table)
    rows = [
        ("step_overhead_ms_p50", step["trivial_cell"]["extra_p50_ms"], 15, "lower",
         f"p50 of {step['trivial_cell']['n']} cells each way", "—"),
        ("metaflow_overhead_ratio", lin["ratio"]["median"], 30, "higher",
         f"min {fmt(lin['ratio']['min'])}, max {fmt(lin['ratio']['max'])}; per step {fmt(lin['metaflow_per_step_ms']['median'], 0)} ms (Metaflow) vs {fmt(lin['nbscale_per_step_ms']['median'], 0)} ms (nbscale)",
         f"{fmt(lin['metaflow_per_step_ms']['median'], 0)} ms/step"),
        ("foreach_efficiency", fe["median_parallel_efficiency"], 0.85, "higher",
         f"best {fmt(fe['parallel_efficiency'])} of {len(fe['runs'])} runs", f"{fmt(mfe['efficiency']['median'])} (min {fmt(mfe['efficiency']['min'])}, max {fmt(mfe['efficiency']['max'])})"),
        *([("foreach_item_overhead_ms", fe["item_overhead"]["cell_per_item_ms"]["median"], 2, "lower",
             f"{fe['item_overhead']['items']} trivial items vs 1, warm pool; runs {fe['item_overhead']['cell_per_item_ms']['runs']}", "—"),
            ("flow_foreach_item_overhead_ms", fe["item_overhead"]["flow_per_item_ms"]["median"], 2, "lower",
             f"`nbscale run`, {fe['item_overhead']['items']} trivial items vs 1; runs {fe['item_overhead']['flow_per_item_ms']['runs']}", "—")]
          if "item_overhead" in fe else []),
        ("artifact_write_vs_disk", rec["record_new_value_write_ratio"], 0.7, "higher",
         f"median of {rec['reps']} (min {fmt(rec['record_new_value_write_ratio_stats']['min'])}, max {fmt(rec['record_new_value_write_ratio_stats']['max'])}); {rec['record_new_value_MBps']} vs {rec['raw_write_fsync_MBps']} MB/s raw; changed value of same size: {rec['record_changed_same_size_ratio']}",
         f"{fmt(mfa['write_vs_disk']['median'])} (save {fmt(mfa['save_s']['median'], 1)} s)"),
        ("artifact_read_vs_disk", rec["restore_read_ratio"], 0.7, "higher",
         f"median of {rec['reps']} (min {fmt(rec['restore_read_ratio_stats']['min'])}, max {fmt(rec['restore_read_ratio_stats']['max'])}); {rec['restore_MBps']} vs {rec['raw_read_MBps']} MB/s raw", f"{fmt(mfa['read_vs_disk']['median'])} (load {fmt(mfa['load_s']['median'], 1)} s)"),
        ("resume_skip_ratio", res["ratio"]["median"], None, "lower",
         f"min {fmt(res['ratio']['min'])}, max {fmt(res['ratio']['max'])}; resume {fmt(res['resume_s']['median'])} s vs full {fmt(res['full_run_s']['median'])} s", "—"),
    ]

    if os.path.exists(os.path.join(HERE, "results", "return_bench.json")):
        ret = load("return_bench.json")
        per = ", ".join(f"{n} {fmt(r['vs_node'])}" for n, r in ret["shapes"].items())
        rows.append(("return_peak_rss_vs_value", ret["worst_vs_node"], 1.2, "lower",
                     f"worst of {len(ret['shapes'])} shapes of {fmt(ret['gib'], 0)} GiB (peak worker RSS / plain Node holding the value): {per}", "—"))
    # What `nbscale run` loads (bench/startup_modules.js): a count, with the heavy modules it must not need.
    if os.path.exists(os.path.join(HERE, "results", "startup_modules.json")):
        sm = load("startup_modules.json")
        heavy = [k for k in ("typescript", "aws_sdk", "zeromq") if sm["runner"][k] or any(w[k] for w in sm["workers"])]
        rows.append(("run_modules_at_start", sm["runner"]["modules"], None, "lower",
                     f"runner {sm['runner']['modules']} modules, each worker {sm['workers'][0]['modules'] if sm['workers'] else '?'}; "
                     f"TypeScript, AWS SDK, zeromq loaded: {', '.join(heavy) or 'none'}; a Slurm target adds {sm['slurm_target_adds']['modules']}; "
                     f"kernel at start {sm['kernel_at_start']['modules']} modules (TypeScript {'yes' if sm['kernel_at_start']['typescript'] else 'no'}, "
                     f"AWS SDK {'yes' if sm['kernel_at_start']['aws_sdk'] else 'no'})", "—"))

    # Timings the tests do not assert (they check what happens; these say how fast, here).
    if os.path.exists(os.path.join(HERE, "results", "responsiveness_bench.json")):
        resp = load("responsiveness_bench.json")
        for where in ("kernel", "step"):
            i, c = resp["interrupt_ms"][where], resp["control_kernel_info_ms_during_100_MB_flood"][where]
            rows.append((f"interrupt_ms_{where}", i["p50"], None, "lower", f"p50 of {i['n']}, max {fmt(i['max'], 0)} ms", "—"))
            rows.append((f"control_during_flood_ms_{where}", c["max"], None, "lower", f"max of {c['n']} kernel_info round trips, p50 {fmt(c['p50'], 1)} ms", "—"))

    def verdict(v: float, t: float | None, better: str) -> str:
        if t is None:
            return "reported"
        ok = v <= t if better == "lower" else v >= t
        if ok:
            return "meets"
        return f"misses by {fmt(v - t)}" if better == "lower" else f"misses by {fmt(t - v)} ({fmt(100 * (1 - v / t), 0)}% short)"

    m = machine()
    lines = [
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, Node {m['node']}, Python {m['python']}, {m['date_utc']}; "
        f"Metaflow {mf['metaflow_version']}, {mf['reps']} repetitions of each Metaflow/flow measurement (median, min, max).",
        "",
        "| metric | nbscale | target | verdict | Metaflow | detail |",
        "|---|---|---|---|---|---|",
    ]
    for name, v, t, better, detail, mfv in rows:
        tgt = "—" if t is None else ("≤ " if better == "lower" else "≥ ") + str(t)
        lines.append(f"| `{name}` | {fmt(v)} | {tgt} | {verdict(v, t, better)} | {mfv} | {detail} |")
    lines.append("")
    lines.append(f"Marginal per-step cost (10-step minus 2-step flow, /8): Metaflow {fmt(lin['metaflow_marginal_step_ms']['median'], 0)} ms, "
                 f"nbscale {fmt(lin['nbscale_marginal_step_ms']['median'], 0)} ms, ratio {fmt(lin['marginal_ratio']['median'])}. "
                 f"2-step flow wall: Metaflow {fmt(lin['metaflow_wall_2_steps_s']['median'])} s, nbscale {fmt(lin['nbscale_wall_2_steps_s']['median'])} s.")
    table = "\n".join(lines)
    print(table)

    out = {"machine": m, "metrics": {name: {"value": v, "target": t, "better": better, "verdict": verdict(v, t, better)} for name, v, t, better, _, _ in rows},
           "sources": {"step_bench": step, "foreach_bench": fe, "record_bench": rec, "metaflow_bench": mf}}
    with open(os.path.join(HERE, "results.json"), "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    with open(os.path.join(HERE, "results", "table.md"), "w") as f:
        f.write(table + "\n")

    # Chart: each metric as a fraction of its target, oriented so that >= 1 meets it
    # (lower-is-better metrics are plotted as target / value). resume has no target.
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    named = [(n, (t / v if better == "lower" else v / t)) for n, v, t, better, _, _ in rows if t is not None]
    fig, ax = plt.subplots(figsize=(8, 4))
    colors = ["tab:green" if s >= 1 else "tab:red" for _, s in named]
    ax.barh([n for n, _ in named], [s for _, s in named], color=colors)
    ax.axvline(1.0, color="black", linestyle="--", label="target")
    for i, (_, s) in enumerate(named):
        ax.text(s, i, f" {s:.2f}", va="center")
    ax.set_xlabel("measured / target (≥ 1 meets the target; step overhead plotted as target / measured)")
    ax.set_title(f"nbscale benchmarks — {m['cores']} cores, {m['date_utc']}")
    ax.invert_yaxis()
    ax.legend(loc="lower right")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(chart)), exist_ok=True)
    fig.savefig(chart, dpi=110)

    # nbscale's kernel vs Deno's and tslab's (bench/kernels_bench.py), when it ran.
    import kernels_report
    kres = kernels_report.load()
    if kres is not None:
        ktable = kernels_report.table(kres)
        print("\n## Kernel engine vs Deno and tslab\n\n" + ktable)
        with open(os.path.join(HERE, "results", "kernels_table.md"), "w") as f:
            f.write(ktable + "\n")
        kchart = sys.argv[sys.argv.index("--kernels-chart") + 1] if "--kernels-chart" in sys.argv else os.path.join(ROOT, "docs", "kernels.png")
        kernels_report.chart(kres, kchart)
        out["sources"]["kernels_bench"] = kres
        with open(os.path.join(HERE, "results.json"), "w") as f:
            json.dump(out, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
