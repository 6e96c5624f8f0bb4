#!/usr/bin/env python3
"""End-to-end check of `mlr retrieve` against pytrec_eval, on synthetic MIRACL-format corpora
(scripts/miracl_synthetic.py), with the default model. Run by scripts/test.sh after crosscheck_eval.py.

Part 1, XQuAD-R corpus (355 passages, plain + gzip files, graded qrels): `mlr retrieve` writes the
  store, a TREC run, the JSON report and a .npy export. Every measure of the report (nDCG@10,
  Recall@100, MRR@10/@100, MAP, P@10, recip_rank and the counts), per query and mean, must equal
  pytrec_eval's on the produced run to 1e-6; the run must be in trec_eval's order with ranks 1..n
  and depth min(100, passages); the export must hold the store's rows (unit vectors) and the corpus's
  docids in reading order.
Part 2, slices: `--shard 0/2` and `--shard 1/2` into two directories, then `--merge` of both into a
  third with --topics: the merged store's files equal the one-machine store's byte for byte and the
  run is the same.
Part 3, real MIRACL files: data/miracl's Swahili dev topics and qrels, unmodified, against a corpus
  holding every docid they judge: they parse, every judged passage joins (the report's
  qrels_coverage), and the measures equal pytrec_eval's.

Usage:
  crosscheck_retrieve.py --mlr target/release/mlr [--model DIR]
Needs numpy and pytrec_eval-terrier (scripts/setup.sh installs them into a venv).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytrec_eval

sys.dont_write_bytecode = True  # importing crosscheck_eval leaves no __pycache__ in scripts/
sys.path.insert(0, str(Path(__file__).resolve().parent))
from crosscheck_eval import read_qrels, read_run, trec_order  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TOL = 1e-6


def sh(cmd, **kwargs):
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run([str(c) for c in cmd], check=True, **kwargs)


def reference(qrels, run):
    """Per-query measures of pytrec_eval under the names of mlr's report; MRR@k by truncation."""
    measures = {"map", "recip_rank", "ndcg_cut.10", "recall.100", "P.10", "num_ret", "num_rel", "num_rel_ret"}
    per_query = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    for k in (10, 100):
        cut = {q: dict(trec_order(d)[:k]) for q, d in run.items()}
        for q, v in pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(cut).items():
            per_query[q][f"recip_rank_{k}"] = v["recip_rank"]
    return per_query


def compare(label, report, qrels, run):
    theirs = reference(qrels, run)
    trec = report["trec"]
    ours = {m["qid"]: m["values"] for m in trec["per_query"]}
    assert set(ours) == set(theirs), f"{label}: queries differ: {sorted(set(ours) ^ set(theirs))[:5]}"
    assert trec["num_q"] == len(theirs), f"{label}: num_q {trec['num_q']} vs {len(theirs)}"
    worst, checked = 0.0, 0
    names = next(iter(theirs.values())).keys()
    assert set(names) <= set(next(iter(ours.values()))), f"{label}: measures {sorted(names)}"
    for q, values in theirs.items():
        for name, v in values.items():
            d = abs(ours[q][name] - v)
            worst, checked = max(worst, d), checked + 1
            assert d <= TOL, f"{label}: query {q} {name}: mlr {ours[q][name]} pytrec_eval {v}"
    for name in names:
        total = sum(v[name] for v in theirs.values())
        mean = total if name.startswith("num_") else total / len(theirs)
        d = abs(trec["mean"]["values"][name] - mean)
        worst, checked = max(worst, d), checked + 1
        assert d <= TOL, f"{label}: mean {name}: mlr {trec['mean']['values'][name]} pytrec_eval {mean}"
    for name in ("ndcg_cut_10", "recall_100", "recip_rank_10", "map"):
        v = trec["mean"]["values"][name]
        assert np.isfinite(v), f"{label}: {name} {v}"
    print(f"{label}: {len(theirs)} queries, {checked} values agree with pytrec_eval (max |diff| {worst:.2e}); "
          f"nDCG@10 {trec['mean']['values']['ndcg_cut_10']:.4f}, R@100 {trec['mean']['values']['recall_100']:.4f}")


def check_run_file(path, depth):
    """Ranks 1..n, trec_eval's order (score descending, docid descending), n = depth."""
    by_query = {}
    for line in Path(path).read_text().splitlines():
        qid, q0, doc, rank, score, tag = line.split()
        assert q0 == "Q0" and tag == "mlr", line
        by_query.setdefault(qid, []).append((doc, int(rank), float(score)))
    for qid, rows in by_query.items():
        assert [r for _, r, _ in rows] == list(range(1, len(rows) + 1)), f"{qid}: ranks"
        assert len(rows) == depth, f"{qid}: {len(rows)} passages, expected {depth}"
        docs = {d: s for d, _, s in rows}
        assert [d for d, _ in trec_order(docs)] == [d for d, _, _ in rows], f"{qid}: not in trec_eval's order"
    return by_query


def corpus_docids(corpus_dir):
    import gzip
    ids = []
    for f in sorted(Path(corpus_dir).iterdir(), key=lambda p: os.fsencode(p)):
        opener = gzip.open if f.name.endswith(".gz") else open
        with opener(f, "rt", encoding="utf-8") as lines:
            ids.extend(json.loads(line)["docid"] for line in lines if line.strip())
    return ids


def store_files(store):
    return {p.name: p.read_bytes() for p in sorted(Path(store).iterdir()) if p.name != ".lock"}


def retrieve(mlr, model, corpus, *extra):
    return [mlr, "retrieve", "--model", model, "--corpus", corpus, "--shard-size", "64", "--batch-size", "16", *extra]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mlr", required=True, help="the mlr binary")
    ap.add_argument("--model", default=os.environ.get(
        "MLR_MODEL_DIR", str(Path.home() / ".cache/mlr/models/multilingual-e5-small")))
    args = ap.parse_args()
    gen = [sys.executable, ROOT / "scripts/miracl_synthetic.py"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # Part 1.
        syn = tmp / "xquad"
        sh(gen + ["--out", syn])
        corpus = syn / "corpus"
        store, run, out, npy = tmp / "store", tmp / "run.trec", tmp / "report.json", tmp / "npy"
        sh(retrieve(args.mlr, args.model, corpus, "--store", store, "--topics", syn / "topics.tsv",
                    "--qrels", syn / "qrels.tsv", "--run", run, "--out", out, "--export-npy", npy))
        report = json.loads(out.read_text())
        assert out.with_suffix(".md").exists()
        docids = corpus_docids(corpus)
        assert report["n_passages"] == len(docids)
        check_run_file(run, min(100, len(docids)))
        compare("xquad-r corpus", report, read_qrels(syn / "qrels.tsv"), read_run(run))
        cov = report["qrels_coverage"]
        assert cov["judged_found"] == cov["judged"] and cov["relevant_found"] == cov["relevant"], cov
        vectors = np.load(npy / "vectors.npy")
        assert vectors.dtype == np.float16 and vectors.shape == (len(docids), 384), (vectors.dtype, vectors.shape)
        norms = np.linalg.norm(vectors.astype(np.float32), axis=1)
        assert np.all(np.abs(norms - 1) < 2e-3), norms.min()
        assert (npy / "docids.txt").read_text().splitlines() == docids
        print(f"export: vectors.npy {vectors.shape} float16, unit rows, docids.txt in corpus order")
        # Part 2.
        slices = [tmp / "slice0", tmp / "slice1"]
        for i, s in enumerate(slices):
            sh(retrieve(args.mlr, args.model, corpus, "--store", s, "--shard", f"{i}/2"))
        merged, run2 = tmp / "merged", tmp / "run2.trec"
        sh(retrieve(args.mlr, args.model, corpus, "--store", merged, "--merge", *slices,
                    "--topics", syn / "topics.tsv", "--run", run2))
        assert store_files(merged) == store_files(store), "the merged slices differ from the one-machine store"
        assert run2.read_text() == run.read_text(), "the merged store ranks differently"
        print(f"slices: 0/2 + 1/2 merged equal the one-machine store ({len(store_files(store))} files) and its run")
        # Part 3.
        sw = tmp / "sw"
        sh(gen + ["--out", sw, "--miracl-lang", "sw"])
        topics = ROOT / "data/miracl/topics.miracl-v1.0-sw-dev.tsv"
        qrels = ROOT / "data/miracl/qrels.miracl-v1.0-sw-dev.tsv"
        run3, out3 = tmp / "sw.trec", tmp / "sw.json"
        sh(retrieve(args.mlr, args.model, sw / "corpus", "--store", tmp / "sw-store", "--topics", topics,
                    "--qrels", qrels, "--run", run3, "--out", out3))
        report = json.loads(out3.read_text())
        cov = report["qrels_coverage"]
        assert cov["judged_found"] == cov["judged"] and cov["relevant_found"] == cov["relevant"], cov
        n_topics = sum(1 for line in topics.read_text().splitlines() if line.strip())
        assert report["n_topics"] == n_topics, (report["n_topics"], n_topics)
        check_run_file(run3, 100)
        compare("MIRACL sw topics + qrels", report, read_qrels(qrels), read_run(run3))
        print(f"MIRACL sw: {n_topics} topics and {cov['judged']} judged passages ({cov['relevant']} relevant) "
              f"parse and join with the corpus")
    return 0


if __name__ == "__main__":
    sys.exit(main())
