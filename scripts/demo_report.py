"""Summarises results/demo/ (written by scripts/demo_results.sh) as results/demo/README.md and
results/demo/summary.json: the accuracy cost of the f16 download, and the page's size and times."""
import json
import pathlib

root = pathlib.Path(__file__).resolve().parent.parent
out = root / "results" / "demo"


def load(path):
    return json.loads(path.read_text())


rows = []
for split in ["all", "test"]:
    for label, path in [
        ("f32 weights, f32 vectors (mlr eval)", root / "results" / "eval" / f"e5-small-xquad-r-{split}.json"),
        ("f16 weights, f32 vectors", out / f"e5-small-f16-weights-xquad-r-{split}.json"),
        ("f16 weights, f16 vectors (the page)", out / f"e5-small-page-xquad-r-{split}.json"),
    ]:
        r = load(path)
        rows.append({
            "split": split, "setting": label, "file": str(path.relative_to(root)), "command": r["command"],
            **{k: r[k] for k in ["mAP_mono", "mAP_cross", "mAP_multi", "R@1_mono", "R@1_cross", "R@10_multi", "rank_distance"]},
        })
e2e = load(out / "e2e.json")
summary = {"accuracy": rows, "page": e2e}
(out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")

keys = ["mAP_mono", "mAP_cross", "mAP_multi", "R@1_mono", "R@1_cross", "R@10_multi"]
md = ["# The demo: f16 download and page measurements", "",
      "Made by `bash scripts/demo_results.sh` (which runs the commands below and the end-to-end test, then "
      "`scripts/demo_report.py`).", "",
      "## Accuracy of the f16 download (multilingual-e5-small, XQuAD-R, sentence candidates)", "",
      "| split | weights / vectors | Mo. | Cr. | Mul. | R@1 Mo. | R@1 Cr. | R@10 Mul. | rank distance |",
      "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
for r in rows:
    md.append(f"| {r['split']} | {r['setting']} | " + " | ".join(f"{r[k]:.4f}" for k in keys) + f" | {r['rank_distance']:.1f} |")
md += ["", "Largest change against f32, per split:", ""]
for split in ["all", "test"]:
    base = next(r for r in rows if r["split"] == split and r["setting"].startswith("f32"))
    page = next(r for r in rows if r["split"] == split and "page" in r["setting"])
    worst = max(keys, key=lambda k: abs(page[k] - base[k]))
    md.append(f"- {split}: {worst} {page[worst] - base[worst]:+.1e}; rank distance {page['rank_distance'] - base['rank_distance']:+.2f}")
md += ["", "Commands:", ""] + [f"- `{r['command']}`" for r in rows]
md += ["", "## The page in headless Chromium (this machine; `tests/tests/e2e.rs`)", "",
       "| what | value |", "|---|---|",
       f"| first visit's download (default model f16, every model's corpus vectors f16, XQuAD-R JSON) | {e2e['download_bytes'] / 1e6:.1f} MB |",
       f"| backend | {e2e['cpu_backend']} |",
       f"| cold start: model ready | {e2e['cold_ready_s']:.1f} s |",
       f"| cold start: first result (page opened → ranked list) | {e2e['cold_first_result_s']:.1f} s |",
       f"| one search on the wasm CPU backend (encode + rank 13,014) | {e2e['cpu_search_s']:.2f} s |",
       f"| reload (Cache API, nothing downloaded): model ready | {e2e['cached_ready_s']:.1f} s |",
       f"| reload: first result of a query in the URL | {e2e['cached_first_result_s']:.1f} s |",
       f"| {e2e['gpu_backend']}: model ready | {e2e['gpu_ready_s']:.1f} s |",
       f"| WebGPU (software adapter): one one-word search | {e2e['gpu_search_s']:.1f} s |",
       f"| browser evaluator vs `mlr eval --vectors` ({e2e['evaluator_queries']} queries) | max abs diff {e2e['evaluator_max_abs_diff']:.1e} |",
       f"| 22 sentences re-embedded in the browser vs the precomputed vectors | min cosine {e2e['reembed_min_cosine']:.7f} |",
       ""]
(out / "README.md").write_text("\n".join(md))
print((out / "README.md").read_text())
