"""Summarises results/demo/ (written by scripts/demo_results.sh) as results/demo/README.md and
results/demo/summary.json: what each shipped file weighs and in which format (from the demo's
manifest.json in $MLR_DEMO_DIR), the accuracy cost of those formats, and the page's size and times."""
import json
import os
import pathlib

root = pathlib.Path(__file__).resolve().parent.parent
out = root / "results" / "demo"
demo = pathlib.Path(os.environ.get("MLR_DEMO_DIR", pathlib.Path.home() / ".cache" / "mlr" / "demo"))
KEYS = ["mAP_mono", "mAP_cross", "mAP_multi", "R@1_mono", "R@1_cross", "R@10_multi"]


def load(path):
    return json.loads(path.read_text())


manifest = load(demo / "manifest.json")
files = []
for f in manifest["dataset"]["files"] + [manifest["dataset"]["split"]]:
    files.append({"what": "corpus", **{k: f.get(k) for k in ["path", "bytes", "format", "encoding"]}})
pieces = []
for m in manifest["models"]:
    for f in m["files"] + [m["vectors"]]:
        files.append({"what": m["name"], **{k: f.get(k) for k in ["path", "bytes", "format", "encoding"]}})
    if m.get("words"):
        w = m["words"]
        pieces.append({"what": m["name"], "path": f"{w[0]['path']} … {w[-1]['path'].rsplit('/', 1)[-1]}",
                       "pieces": len(w), "bytes": sum(f["bytes"] for f in w), "format": w[0].get("format")})
first = manifest["models"][0]
# A first visit: the default model's files, every model's vectors (the bias view compares
# models), the corpus; a later model's weights (and its base's, already there) when it is chosen.
first_visit = sum(f["bytes"] for f in first["files"]) + sum(m["vectors"]["bytes"] for m in manifest["models"]) \
    + sum(f["bytes"] for f in manifest["dataset"]["files"]) + manifest["dataset"]["split"]["bytes"]
every_model = first_visit + sum(f["bytes"] for m in manifest["models"][1:] for f in m["files"]
                                if f["sha256"] not in {g["sha256"] for g in first["files"]})

rows = []
for m in manifest["models"]:
    name = m["name"]
    for split in ["all", "test"]:
        reference = (root / "results" / "eval" / f"e5-small-xquad-r-{split}.json") if name == "e5-small" \
            else out / f"{name}-f32-xquad-r-{split}.json"
        settings = [("f32 weights, f32 vectors (mlr eval)", reference),
                    ("shipped weights, f32 vectors", out / f"{name}-shipped-weights-xquad-r-{split}.json"),
                    ("shipped weights, shipped vectors (the page)", out / f"{name}-page-xquad-r-{split}.json")]
        if not all(p.exists() for _, p in settings):
            continue
        for label, path in settings:
            r = load(path)
            rows.append({"model": name, "split": split, "setting": label, "file": str(path.relative_to(root)),
                         "command": r["command"], **{k: r[k] for k in KEYS + ["rank_distance"]}})

e2e = load(out / "e2e.json") if (out / "e2e.json").exists() else None
summary = {"files": files, "word_pieces": pieces, "first_visit_bytes": first_visit, "every_model_bytes": every_model,
           "accuracy": rows, "page": e2e}
(out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")

md = ["# The demo: its compact download and the page's measurements", "",
      "Made by `bash scripts/demo_results.sh` (which runs the commands below and the end-to-end test, then "
      "`scripts/demo_report.py`).", "",
      "## What is shipped", "",
      "| file | model | format | MB |", "|---|---|---|---:|"]
for f in files:
    fmt = (f["format"] or "") + (" (gzip)" if f["encoding"] == "gzip" else "")
    md.append(f"| {f['path']} | {f['what']} | {fmt} | {f['bytes'] / 1e6:.2f} |")
for p in pieces:
    md.append(f"| {p['path']} ({p['pieces']} pieces, fetched as texts need them) | {p['what']} | {p['format']} | "
              f"{p['bytes'] / 1e6:.2f} |")
md += ["", f"Every visit downloads the default model's files, every model's vectors and the corpus: "
       f"**{first_visit / 1e6:.1f} MB**, {every_model / 1e6:.1f} MB with every model's weights (a later model's "
       f"copy of a file the first has is fetched from the first). The word table's pieces come on top, as "
       f"the texts encoded need them: the end-to-end test's count of a first visit is below.", ""]
md += ["## Accuracy of the shipped formats (XQuAD-R, sentence candidates)", "",
       "| model | split | weights / vectors | Mo. | Cr. | Mul. | R@1 Mo. | R@1 Cr. | R@10 Mul. | rank distance |",
       "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
for r in rows:
    md.append(f"| {r['model']} | {r['split']} | {r['setting']} | " + " | ".join(f"{r[k]:.4f}" for k in KEYS)
              + f" | {r['rank_distance']:.1f} |")
md += ["", "Largest change of the page's numbers against f32 (every mAP and R@k; rank distance relative):", ""]
for r in rows:
    if "page" not in r["setting"]:
        continue
    ref = next(x for x in rows if x["model"] == r["model"] and x["split"] == r["split"] and x["setting"].startswith("f32"))
    worst = max(KEYS, key=lambda k: abs(r[k] - ref[k]))
    rel = (r["rank_distance"] - ref["rank_distance"]) / ref["rank_distance"]
    md.append(f"- {r['model']}, {r['split']}: {worst} {r[worst] - ref[worst]:+.1e}; rank distance {rel:+.2%}")
md += ["", "Commands:", ""] + [f"- `{r['command']}`" for r in rows]
if e2e:
    md += ["", "## The page in headless Chromium (this machine; `tests/tests/e2e.rs`)", "",
           "| what | value |", "|---|---|",
           f"| first visit: the files every visit needs (the manifest's sizes) | {e2e['download_bytes'] / 1e6:.1f} MB |",
           *([f"| first visit, as the page counts it (those files + the word-table pieces of the warm-up and one "
              f"mixed es+zh query) | {e2e['first_visit_bytes'] / 1e6:.1f} MB |"] if "first_visit_bytes" in e2e else []),
           f"| backend | {e2e['cpu_backend']} |",
           *([f"| CPU threads on the cross-origin isolated page (one per core) | {e2e['threads']} |"] if "threads" in e2e else []),
           f"| cold start: model ready | {e2e['cold_ready_s']:.1f} s |",
           f"| cold start: first result (page opened → ranked list) | {e2e['cold_first_result_s']:.1f} s |",
           f"| one search on the wasm CPU backend (encode + rank 13,014) | {e2e['cpu_search_s']:.2f} s |",
           f"| reload (Cache API, nothing downloaded): model ready | {e2e['cached_ready_s']:.1f} s |",
           f"| reload: first result of a query in the URL | {e2e['cached_first_result_s']:.1f} s |",
           f"| {e2e['gpu_backend']}: model ready | {e2e['gpu_ready_s']:.1f} s |",
           f"| WebGPU (software adapter): one one-word search | {e2e['gpu_search_s']:.1f} s |",
           f"| browser evaluator vs `mlr eval --vectors` ({e2e['evaluator_queries']} queries) | max abs diff {e2e['evaluator_max_abs_diff']:.1e} |",
           f"| 22 sentences re-embedded in the browser vs the precomputed vectors | min cosine {e2e['reembed_min_cosine']:.7f} |",
           *([f"| those 22 sentences' encoding time: {e2e['threads']} threads (isolated page) vs one thread (static host, no isolation) | "
              f"{e2e['reembed_ms'] / 1000:.2f} s vs {e2e['reembed_one_thread_ms'] / 1000:.2f} s: "
              f"{e2e['reembed_one_thread_ms'] / e2e['reembed_ms']:.2f}× |"] if "reembed_one_thread_ms" in e2e else []),
           *([f"| your documents: a collection of {e2e['docs_passages']} passages (XQuAD-R paragraphs, en + de, 128-token budget) "
              f"embedded in the browser, wasm CPU on {e2e['threads']} thread(s); the pace of the job that resumed it after a cancel "
              f"(its longer passages: they are embedded shortest first) | {e2e['docs_passages_per_s']:.1f} passages/s, "
              f"{e2e['docs_tokens_per_s']:.0f} tokens/s |",
              f"| your documents: storage per 1,000 passages (the `.mlrc` file in OPFS: texts, places, Q8_0 vectors) | "
              f"{e2e['docs_bytes_per_1000_passages'] / 1e6:.2f} MB |"] if "docs_passages_per_s" in e2e else [])]
md.append("")
(out / "README.md").write_text("\n".join(md))
print((out / "README.md").read_text())
