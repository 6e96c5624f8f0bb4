#!/usr/bin/env python3
"""Assemble the hybrid-training experiment table and plots from `mlr train` runs and `mlr eval` reports.

Usage:
  $MLR_CACHE/venv/bin/python scripts/train_report.py --runs-dir ~/.cache/mlr/runs \
      --run x-x-mono --run x-y --run hybrid [--run hybrid-a0.25 ...] --out results/train

Reads, for every run NAME:
  <runs-dir>/NAME/summary.json           written by `mlr train` (config, loss history, dev evaluations)
  <out>/runs/NAME-test.json              `mlr eval --model <runs-dir>/NAME/best --split test --out ...`
and the training-free rows:
  results/eval/e5-small-xquad-r-test.json    the base model (`mlr eval --split test`)
  <out>/runs/base-centered-test.json         `mlr eval --split test --center-langs train`
  <out>/runs/base-dev.json                   `mlr eval --split dev` (step 0 of the dev curves)
Writes <out>/hybrid-xquad-r.{json,md}, <out>/runs/NAME-train.json (the run's summary), and the SVG plots
<out>/training-curves.svg and <out>/rank-distance-per-language.svg. Nothing here computes a metric: every
number comes from mlr's JSON, so the table is reproducible from the recorded commands.
"""
import argparse
import json
import os
import shlex
import shutil
import sys

import matplotlib

matplotlib.use("svg")
import matplotlib.pyplot as plt  # noqa: E402

ZERO_SHOT = {"el", "vi"}
KEYS = ["mAP_mono", "mAP_cross", "mAP_multi", "R@1_mono", "R@1_cross", "R@10_multi", "rank_distance", "rank_correlation"]


def load(path):
    with open(path) as f:
        return json.load(f)


def test_metrics(report):
    out = {k: report[k] for k in KEYS}
    out["n_queries"] = report["n_queries"]
    out["n_candidates"] = report["n_candidates"]
    out["model_sha256"] = report["model_sha256"]
    out["command"] = report["command"]
    out["per_lang"] = [
        {
            "lang": l["lang"],
            "zero_shot": l["lang"] in ZERO_SHOT,
            "mAP_mono": l["mono"]["map"],
            "mAP_cross": l["cross"]["map"],
            "mAP_multi": l["multi"]["map"],
            "rank_distance": l["rank_distance"],
            "own_share_top10": l["preference"]["own_share"],
        }
        for l in report["per_lang"]
    ]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs-dir", required=True)
    ap.add_argument("--run", action="append", required=True)
    ap.add_argument("--out", default="results/train")
    ap.add_argument("--base", default="results/eval/e5-small-xquad-r-test.json")
    ap.add_argument("--note", default="", help="a paragraph added under the table (e.g. the conditions of the runs)")
    args = ap.parse_args()
    os.makedirs(os.path.join(args.out, "runs"), exist_ok=True)

    rows = []
    base = load(args.base)
    rows.append({"name": "base", "alpha": None, "steps": 0, "batch_size": None, "tau": None, "train_seconds": 0.0,
                 "note": "multilingual-e5-small as converted, no training", "test": test_metrics(base)})
    centered = os.path.join(args.out, "runs", "base-centered-test.json")
    if os.path.exists(centered):
        rows.append({"name": "base + language centering", "alpha": None, "steps": 0, "batch_size": None, "tau": None,
                     "train_seconds": 0.0,
                     "note": "training-free: per-language mean query/candidate vector of the train articles subtracted, re-normalised",
                     "test": test_metrics(load(centered))})
    curves = {}
    for name in args.run:
        summary = load(os.path.join(args.runs_dir, name, "summary.json"))
        shutil.copyfile(os.path.join(args.runs_dir, name, "summary.json"), os.path.join(args.out, "runs", f"{name}-train.json"))
        c, run = summary["config"], summary["run"]
        alpha = {"x-x-mono": 1.0, "x-y": 0.0, "hybrid": c["alpha"]}.get(c["sampler"])
        seconds = run["train_seconds"]
        rows.append({
            "name": name,
            "sampler": c["sampler"],
            "alpha": alpha,
            "steps": run["step"],
            "batch_size": c["batch_size"],
            "tau": c["tau"],
            "lr": c["lr"],
            "train_seconds": seconds,
            "pairs_per_s": run["step"] * c["batch_size"] / seconds if seconds else None,
            "best_step": run["best"]["step"] if run["best"] else None,
            "dev": run["evals"],
            "config": c,
            "test": test_metrics(load(os.path.join(args.out, "runs", f"{name}-test.json"))),
        })
        curves[name] = (run["history"], run["evals"])

    result = {
        "dataset": "XQuAD-R, test articles of data/xquad-r/split.json (11 languages; el and vi never trained on)",
        "runs": rows,
        "command": "python scripts/train_report.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "commands": {
            "train": "mlr train --out $MLR_CACHE/runs/NAME --sampler SAMPLER --alpha ALPHA --steps 80 --batch-size 16 "
                     "--warmup-steps 8 --eval-every 40 --checkpoint-every 40 --max-query-tokens 32 --max-passage-tokens 64 --seed 42 "
                     "--mask-shared-answers false",
            "test": "mlr eval --model $MLR_CACHE/runs/NAME/best --split test --out results/train/runs/NAME-test.json",
            "centering": "mlr eval --split test --center-langs train --out results/train/runs/base-centered-test.json",
        },
    }
    # ---- markdown, in the paper's layout
    md = ["# Hybrid batch training on XQuAD-R (test articles)", "",
          "Generated by `" + result["command"] + "` from the JSON of `mlr train` and `mlr eval`; commands below.", "",
          "| model | α | steps × batch | Mo. mAP | Cr. mAP | Mul. mAP | R@1 Mo. | R@1 Cr. | R@10 Mul. | rank distance ↓ | rank corr. | train time |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        t = r["test"]
        a = "–" if r["alpha"] is None else f"{r['alpha']:g}"
        sb = "–" if not r["steps"] else f"{r['steps']} × {r['batch_size']}"
        tt = "–" if not r["train_seconds"] else f"{r['train_seconds'] / 60:.0f} min"
        md.append(f"| {r['name']} | {a} | {sb} | {t['mAP_mono']:.4f} | {t['mAP_cross']:.4f} | {t['mAP_multi']:.4f} | "
                  f"{t['R@1_mono']:.4f} | {t['R@1_cross']:.4f} | {t['R@10_multi']:.4f} | {t['rank_distance']:.1f} | "
                  f"{t['rank_correlation']:.3f} | {tt} |")
    if args.note:
        md += ["", args.note]
    result["note"] = args.note
    langs = [l["lang"] for l in rows[0]["test"]["per_lang"]]
    for key, title, fmt in [("mAP_multi", "Mul. mAP per query language", "{:.4f}"),
                            ("mAP_mono", "Mo. mAP per query language", "{:.4f}"),
                            ("rank_distance", "Rank distance per query language (lower is fairer)", "{:.1f}")]:
        md += ["", f"## {title}", "", "| model | " + " | ".join(l + (" (zero-shot)" if l in ZERO_SHOT else "") for l in langs) + " |",
               "|---|" + "---:|" * len(langs)]
        for r in rows:
            vals = {l["lang"]: l[key] for l in r["test"]["per_lang"]}
            md.append(f"| {r['name']} | " + " | ".join(fmt.format(vals[l]) for l in langs) + " |")
    md += ["", "## Runs", ""]
    for r in rows[2 if os.path.exists(centered) else 1:]:
        dev = ", ".join(f"step {e['step']}: Mul. {e['multi']:.4f}" for e in r["dev"])
        md.append(f"- **{r['name']}** ({r['sampler']}, α {r['alpha']}): {r['steps']} steps × {r['batch_size']} pairs, "
                  f"τ {r['tau']}, lr {r['lr']}; {r['train_seconds']:.0f} s of training ({r['pairs_per_s']:.2f} pairs/s); "
                  f"dev {dev}; tested: best (step {r['best_step']}).")
    md += ["", "Commands:", ""] + [f"- {k}: `{v}`" for k, v in result["commands"].items()]
    md += ["", "Plots: [training-curves.svg](training-curves.svg), [rank-distance-per-language.svg](rank-distance-per-language.svg)", ""]
    with open(os.path.join(args.out, "hybrid-xquad-r.md"), "w") as f:
        f.write("\n".join(md))
    with open(os.path.join(args.out, "hybrid-xquad-r.json"), "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")

    # ---- plots
    base_dev = load(os.path.join(args.out, "runs", "base-dev.json"))["mAP_multi"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for name, (history, evals) in curves.items():
        steps = [h["step"] for h in history]
        loss = [h["loss"] for h in history]
        k = 10
        smooth = [sum(loss[max(0, i - k + 1):i + 1]) / len(loss[max(0, i - k + 1):i + 1]) for i in range(len(loss))]
        ax1.plot(steps, smooth, label=name)
        ax2.plot([0] + [e["step"] for e in evals], [base_dev] + [e["multi"] for e in evals], marker="o", label=name)
    ax1.set_xlabel("step")
    ax1.set_ylabel("InfoNCE loss (mean of last 10 steps)")
    ax1.set_title("Training loss (mono and cross batches differ in difficulty)")
    ax1.legend()
    ax2.set_xlabel("step")
    ax2.set_ylabel("dev Mul. mAP")
    ax2.set_title("Dev multilingual (pooled) mAP; step 0 = base model")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "training-curves.svg"), metadata={"Date": None})
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(11, 4))
    width = 0.8 / len(rows)
    for i, r in enumerate(rows):
        vals = {l["lang"]: l["rank_distance"] for l in r["test"]["per_lang"]}
        ax.bar([j + i * width for j in range(len(langs))], [vals[l] for l in langs], width, label=r["name"])
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(langs))])
    ax.set_xticklabels([l + ("*" if l in ZERO_SHOT else "") for l in langs])
    ax.set_ylabel("mean rank distance (lower is fairer)")
    ax.set_title("Rank distance per query language, XQuAD-R test (* = zero-shot language)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "rank-distance-per-language.svg"), metadata={"Date": None})
    plt.close(fig)
    print(f"wrote {args.out}/hybrid-xquad-r.json, .md and two SVG plots")


if __name__ == "__main__":
    main()
