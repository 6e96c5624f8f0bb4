#!/usr/bin/env python3
"""Writes results/bench/browser-threads.json and .md from the rows of scripts/bench_browser.py run
on the four wasm CPU engines (scripts/bench_threads.sh): tokens/s per shape, and the speed-ups of
every core over one thread (mlr, transformers.js) and of mlr over transformers.js at the same
threads, per shape and as geometric means over the shapes all four engines ran.

Usage: bench_threads_report.py --rows ROWS.json --out results/bench/browser-threads --command CMD
"""

import argparse
import json
import math
import os
import platform
from pathlib import Path

ENGINES = ["mlr-wasm-cpu", "mlr-wasm-cpu-threads", "transformersjs-wasm", "transformersjs-wasm-threads"]
RATIOS = [
    ("mlr, every core ÷ one thread", "mlr-wasm-cpu-threads", "mlr-wasm-cpu"),
    ("transformers.js, every core ÷ one thread", "transformersjs-wasm-threads", "transformersjs-wasm"),
    ("every core: mlr ÷ transformers.js", "mlr-wasm-cpu-threads", "transformersjs-wasm-threads"),
    ("one thread: mlr ÷ transformers.js", "mlr-wasm-cpu", "transformersjs-wasm"),
]


def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def geomean(values):
    if not values:
        raise SystemExit("no shape was run by every engine")
    return math.exp(sum(math.log(v) for v in values) / len(values))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", required=True)
    ap.add_argument("--out", required=True, help="path without extension")
    ap.add_argument("--command", required=True)
    args = ap.parse_args()
    try:
        data = json.loads(Path(args.rows).read_text())
        rows = [(r["engine"], r["backend"], int(r["batch"]), int(r["seq"]), r["tokens_per_s"]) for r in data["rows"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SystemExit(f"{args.rows}: not the rows of scripts/bench_browser.py ({type(e).__name__}: {e})")
    speed, backend = {}, {}
    for engine, label, batch, seq, tps in rows:
        if not (isinstance(tps, (int, float)) and math.isfinite(tps) and tps > 0):
            raise SystemExit(f"{engine} {batch}×{seq}: tokens/s {tps!r} cannot be right")
        speed[(engine, batch, seq)] = tps
        backend[engine] = label
    missing = [e for e in ENGINES if e not in backend]
    if missing:
        raise SystemExit(f"no rows for {', '.join(missing)}")
    shapes = sorted({(b, s) for (_, b, s) in speed}, key=lambda x: (x[1], x[0]))
    shapes = [sh for sh in shapes if all((e, *sh) in speed for e in ENGINES)]
    ratios = {}
    for label, a, b in RATIOS:
        per = {f"{bt}x{sq}": speed[(a, bt, sq)] / speed[(b, bt, sq)] for bt, sq in shapes}
        ratios[label] = {"engines": [a, b], "per_shape": per, "geomean": geomean(list(per.values()))}
    summary = {
        "command": args.command,
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "browser": data.get("browser", "")},
        "backends": backend,
        "tokens_per_s": {e: {f"{bt}x{sq}": speed[(e, bt, sq)] for bt, sq in shapes} for e in ENGINES},
        "ratios": ratios,
    }
    Path(args.out + ".json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    lines = [
        "# Threads in the browser: wasm CPU encode, one thread vs every core",
        "",
        f"Made by `{args.command}`: headless {summary['machine']['browser'] or 'Chromium'} on "
        f"{summary['machine']['cpu']} ({summary['machine']['cores']} cores, no GPU), one cross-origin isolated "
        "page server, one run; tokens/s from the median latency of each shape (batch × seq of "
        "e5-small's ids, every token real).",
        "",
        "Engines:",
        "",
    ]
    lines += [f"- `{e}`: {backend[e]}" for e in ENGINES]
    lines += ["", "| batch × seq | " + " | ".join(f"`{e}`" for e in ENGINES) + " |",
              "|---|" + "---:|" * len(ENGINES)]
    for bt, sq in shapes:
        lines.append(f"| {bt} × {sq} | " + " | ".join(f"{speed[(e, bt, sq)]:.0f}" for e in ENGINES) + " |")
    lines += ["", "Speed-ups (tokens/s ratios):", "",
              "| | " + " | ".join(f"{bt} × {sq}" for bt, sq in shapes) + " | geometric mean |",
              "|---|" + "---:|" * (len(shapes) + 1)]
    for label, r in ratios.items():
        cells = " | ".join(f"{r['per_shape'][f'{bt}x{sq}']:.2f}" for bt, sq in shapes)
        lines.append(f"| {label} | {cells} | **{r['geomean']:.2f}** |")
    Path(args.out + ".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
