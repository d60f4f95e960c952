"""Table (Markdown) and chart of bench/results/kernels.json: nbscale vs Deno vs tslab, one run.

Called by report.py (bench venv, matplotlib); also runs alone:

    bench/.venv/bin/python bench/kernels_report.py [--chart docs/kernels.png]

Targets are ratios against Deno's kernel measured in the same run, or the
loop against a plain Node module measured in the same run; the start target
is the one absolute number (1.5 s), as the product states it.
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
ORDER = [("nbscale", "nbscale"), ("deno", "Deno"), ("tslab", "tslab"), ("nbscale_node24", "nbscale (Node 24)")]


def load() -> dict[str, Any] | None:
    path = os.path.join(HERE, "results", "kernels.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def med(k: dict[str, Any], *path: str) -> float:
    v: Any = k
    for p in path:
        v = v[p]
    return float(v["median"])


def rows(res: dict[str, Any]) -> list[dict[str, Any]]:
    """Each row: label, value per kernel, target as a function of the Deno column, how to print."""
    K = res["kernels"]
    deno = K.get("deno")

    def rel(path: tuple[str, ...], factor: float):
        return (lambda: factor * med(deno, *path)) if deno else None

    def comp(label: str):
        def f(k: dict[str, Any]) -> str:
            c = k["completion"][label]
            return "" if c["found"] else " (expected match missing)"
        return f

    return [
        {"name": "top-level loop in a cell / same loop as a plain Node module (median)", "get": lambda k: med(k, "loop_ratio"),
         "target": lambda: 1.5, "tgt": "≤ 1.5", "nd": 2, "better": "lower", "chart": "loop: cell / plain Node module"},
        {"name": "… ratio of the fastest of each", "get": lambda k: med(k, "loop_ratio_of_mins"), "nd": 2},
        {"name": "loop's own time in the cell, ms (plain Node module)", "get": lambda k: med(k, "cell_loop_ms"),
         "extra": lambda k: f" ({med(k, 'node_module_loop_ms'):.0f})", "nd": 0},
        {"name": "loop cell round trip (execute → idle), ms", "get": lambda k: med(k, "loop_cell_round_trip_ms"), "nd": 0,
         "chart": "loop cell round trip, ms"},
        {"name": "trivial cell `1 + 1`, p50 round trip, ms", "get": lambda k: med(k, "trivial_p50_ms"),
         "target": rel(("trivial_p50_ms",), 1.5), "tgt": "≤ 1.5× Deno", "nd": 2, "better": "lower", "chart": "trivial cell p50, ms"},
        {"name": "trivial cell with a new text each time (`K + 1`), p50, ms", "get": lambda k: med(k, "trivial_varied_p50_ms"),
         "target": rel(("trivial_varied_p50_ms",), 1.5), "tgt": "≤ 1.5× Deno", "nd": 2, "better": "lower", "chart": "`K + 1` cell p50, ms"},
        {"name": "typed cell `const xK: number = K;`, p50, ms", "get": lambda k: med(k, "typed_p50_ms"),
         "target": rel(("typed_p50_ms",), 5), "tgt": "≤ 5× Deno", "nd": 2, "better": "lower", "chart": "typed cell p50, ms"},
        {"name": "start → first idle (kernel_info reply), ms", "get": lambda k: med(k, "start_to_ready_ms"),
         "target": lambda: 1500, "tgt": "≤ 1500", "nd": 0, "better": "lower", "chart": "start to ready, ms"},
        {"name": "start → first cell's idle, ms", "get": lambda k: med(k, "start_to_first_cell_idle_ms"), "nd": 0,
         "chart": "start to first cell done, ms"},
        {"name": "completion `Math.`, p50, ms", "get": lambda k: med(k, "completion", "math_dot", "p50_ms"), "extra": comp("math_dot"),
         "nd": 2, "chart": "complete `Math.` p50, ms"},
        {"name": "completion of an earlier cell's name, p50, ms", "get": lambda k: med(k, "completion", "earlier_name", "p50_ms"),
         "extra": comp("earlier_name"), "nd": 2},
        {"name": "kernel RSS at idle after 50 cells, MiB (process tree)", "get": lambda k: med(k, "rss_mib"),
         "extra": lambda k: f" ({med(k, 'rss_tree_mib'):.0f})", "nd": 0, "chart": "RSS after 50 cells, MiB"},
    ]


def verdict(v: float, t: float) -> str:
    return "meets" if v <= t else f"misses ({v / t:.2f}× the target)"


def table(res: dict[str, Any]) -> str:
    K = res["kernels"]
    cols = [(key, label) for key, label in ORDER if key in K]
    head = "| measure | " + " | ".join(label for _, label in cols) + " | target | nbscale verdict |"
    lines = [
        f"{res['reps']} fresh kernels each, interleaved; medians over them (per kernel: {res['n']} cells/completions after warm-up). "
        f"Load average {res['load_avg_before'][0]} before, {res['load_avg_after'][0]} after. "
        + "; ".join(f"{label}: {K[key]['runtime']}" for key, label in cols) + ".",
        "",
        head,
        "|" + "---|" * (len(cols) + 3),
    ]
    for row in rows(res):
        cells = []
        for key, _ in cols:
            v = row["get"](K[key])
            cells.append(f"{v:.{row['nd']}f}" + (row["extra"](K[key]) if "extra" in row else ""))
        tgt, verd = "—", "—"
        if row.get("target"):
            t = row["target"]()
            tgt = row["tgt"] + (f" (= {t:.{max(row['nd'], 1)}f})" if "Deno" in row["tgt"] else "")
            verd = "; ".join(f"{label}: {verdict(row['get'](K[key]), t)}" for key, label in cols if key.startswith("nbscale"))
        lines.append(f"| {row['name']} | " + " | ".join(cells) + f" | {tgt} | {verd} |")
    if "deno" in K and "deno_module_loop_ms" in K["deno"]:
        d = K["deno"]
        lines += ["", f"Deno's own loop as a module (`deno run loop.mjs`): {med(d, 'deno_module_loop_ms'):.0f} ms; "
                  f"its cell loop / its own module: {med(d, 'cell_loop_ms') / med(d, 'deno_module_loop_ms'):.2f}."]
    return "\n".join(lines)


def chart(res: dict[str, Any], path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    K = res["kernels"]
    cols = [(key, label) for key, label in ORDER if key in K]
    colors = {"nbscale": "tab:blue", "deno": "tab:gray", "tslab": "tab:orange", "nbscale_node24": "tab:cyan"}
    charted = [r for r in rows(res) if "chart" in r]
    fig, axes = plt.subplots(2, (len(charted) + 1) // 2, figsize=(14, 6.5))
    for ax, row in zip(axes.flat, charted):
        vals = [row["get"](K[key]) for key, _ in cols]
        ax.bar(range(len(cols)), vals, color=[colors[key] for key, _ in cols])
        ax.set_xticks(range(len(cols)), [label.replace(" (", "\n(") for _, label in cols], fontsize=8)
        if max(vals) / max(min(vals), 1e-9) > 30:
            ax.set_yscale("log")
        for i, v in enumerate(vals):
            ax.text(i, v, f"{v:.{row['nd']}f}", ha="center", va="bottom", fontsize=8)
        if row.get("target"):
            ax.axhline(row["target"](), color="black", linestyle="--", linewidth=1, label="target " + row["tgt"])
            ax.legend(fontsize=7, loc="best", framealpha=0.6)
        ax.set_title(row["chart"], fontsize=9)
        ax.margins(y=0.15)
    for ax in list(axes.flat)[len(charted):]:
        ax.axis("off")
    fig.suptitle(f"TypeScript kernels side by side, one run ({res['reps']} fresh kernels each, medians; lower is better; "
                 f"load avg {res['load_avg_before'][0]}–{res['load_avg_after'][0]})", fontsize=11)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)


def main() -> None:
    res = load()
    if res is None:
        sys.exit("bench/results/kernels.json is missing: run .venv/bin/python bench/kernels_bench.py")
    out = sys.argv[sys.argv.index("--chart") + 1] if "--chart" in sys.argv else os.path.join(ROOT, "docs", "kernels.png")
    print(table(res))
    chart(res, out)


if __name__ == "__main__":
    main()
