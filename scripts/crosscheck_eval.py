#!/usr/bin/env python3
"""Independent cross-check of mlr's evaluator against pytrec_eval (trec_eval's own C code) and numpy.

Part 1, synthetic: random graded qrels and runs full of tied scores, odd docnos, queries missing from
the run, run queries without qrels and queries without any relevant document. `mlr trec-eval --json`
must agree with pytrec_eval on every query and on the means, with and without -c, -M and -l.

Part 2, a real run (optional, --real-run/--real-qrels/--real-json): the pooled ranking written by
`mlr eval --trec-run RUN --trec-depth 0 --out JSON`. pytrec_eval's per-query AP of the pooled run gives
the Mul. mAP; the same run restricted to one corpus language gives every Mo./Cr. pair; the ranks of
the relevant documents give rank distance, Recall@k and the top-k language share; scipy's spearmanr
gives the rank correlation of parallel queries. All must equal the JSON of `mlr eval` to 1e-6.

Usage:
  crosscheck_eval.py --mlr target/release/mlr [--real-run R --real-qrels Q --real-json J]
Needs numpy, scipy and pytrec_eval-terrier (scripts/setup.sh installs them into a venv).
"""

import argparse
import json
import random
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytrec_eval
from scipy.stats import spearmanr

TOL = 1e-6
CUTS = {"ndcg": [5, 10], "recall": [5, 100], "precision": [5, 10], "mrr": [3, 10]}


def trec_order(docs):
    """trec_eval's ranking of {docno: score}: score descending, then docno descending (bytes)."""
    by_docno = sorted(docs.items(), key=lambda kv: kv[0].encode(), reverse=True)
    return sorted(by_docno, key=lambda kv: -kv[1])  # stable: equal scores keep docno descending


def read_run(path):
    run = defaultdict(dict)
    for line in Path(path).read_text().splitlines():
        if line.strip():
            qid, _, doc, _, score, _ = line.split()
            run[qid][doc] = float(score)
    return dict(run)


def read_qrels(path):
    qrels = defaultdict(dict)
    for line in Path(path).read_text().splitlines():
        if line.strip():
            qid, _, doc, rel = line.split()
            qrels[qid][doc] = int(rel)
    return dict(qrels)


def write_run(path, run):
    with open(path, "w") as f:
        for qid, docs in run.items():
            for rank, (doc, score) in enumerate(trec_order(docs), 1):
                f.write(f"{qid} Q0 {doc} {rank} {score!r} syn\n")


def write_qrels(path, qrels):
    with open(path, "w") as f:
        for qid, docs in qrels.items():
            for doc, rel in docs.items():
                f.write(f"{qid} 0 {doc} {rel}\n")


def mlr_trec_eval(mlr, qrels_path, run_path, extra):
    cmd = [mlr, "trec-eval", str(qrels_path), str(run_path), "--json"]
    for name, ks in CUTS.items():
        cmd += [f"--{name}", ",".join(map(str, ks))]
    out = subprocess.run(cmd + extra, check=True, capture_output=True, text=True).stdout
    report = json.loads(out)
    return {m["qid"]: m["values"] for m in report["per_query"]}, report["mean"]["values"], report["num_q"]


def reference(qrels, run, level=1, complete=False, max_docs=None):
    """Per-query measures from pytrec_eval; MRR@k and -M emulated by truncating the trec order."""
    measures = {
        "map", "recip_rank",
        "ndcg_cut." + ",".join(map(str, CUTS["ndcg"])),
        "recall." + ",".join(map(str, CUTS["recall"])),
        "P." + ",".join(map(str, CUTS["precision"])),
    }
    def cut(docs, k):
        return dict(trec_order(docs)[:k]) if k is not None else docs
    run = {q: cut(d, max_docs) for q, d in run.items()}
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, measures, relevance_level=level)
    per_query = evaluator.evaluate(run)
    for k in CUTS["mrr"]:
        truncated = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}, relevance_level=level).evaluate(
            {q: cut(d, k) for q, d in run.items()})
        for q, v in truncated.items():
            per_query[q][f"recip_rank_{k}"] = v["recip_rank"]
    if complete:
        names = next(iter(per_query.values())).keys() if per_query else []
        for q in qrels:
            per_query.setdefault(q, {n: 0.0 for n in names})
    return per_query


def compare(label, ours, theirs, ours_mean, num_q):
    assert set(ours) == set(theirs), f"{label}: queries differ: {sorted(set(ours) ^ set(theirs))[:5]}"
    worst = 0.0
    for q, values in theirs.items():
        for name, v in values.items():
            d = abs(ours[q][name] - v)
            worst = max(worst, d)
            assert d <= TOL, f"{label}: query {q} {name}: mlr {ours[q][name]} pytrec_eval {v}"
    for name in next(iter(theirs.values())):
        mean = sum(v[name] for v in theirs.values()) / len(theirs)
        d = abs(ours_mean[name] - mean)
        worst = max(worst, d)
        assert d <= TOL, f"{label}: mean {name}: mlr {ours_mean[name]} pytrec_eval {mean}"
    assert num_q == len(theirs), f"{label}: num_q {num_q} vs {len(theirs)}"
    return worst


def synthetic(mlr, tmp, seeds=12):
    worst = 0.0
    cases = 0
    for seed in range(seeds):
        rng = random.Random(seed)
        docs = [rng.choice(["d", "D", "doc-", "a", "z"]) + str(rng.randint(0, 60)) for _ in range(80)]
        docs = sorted(set(docs))
        qrels, run = {}, {}
        for q in range(25):
            qid = f"q{q}"
            judged = rng.sample(docs, rng.randint(1, 12))
            # Graded relevance 0..3; some queries end up with no relevant document at all.
            qrels[qid] = {d: rng.choice([0, 0, 1, 2, 3]) if q % 7 else 0 for d in judged}
            if q % 5 == 4:
                continue  # a qrels query missing from the run
            retrieved = rng.sample(docs, rng.randint(1, 40))
            # Coarse scores: many ties, negative values too.
            run[qid] = {d: round(rng.uniform(-1, 1), 1) for d in retrieved}
        run["not-in-qrels"] = {docs[0]: 1.0}
        qrels_path, run_path = tmp / f"syn{seed}.qrels", tmp / f"syn{seed}.run"
        write_qrels(qrels_path, qrels)
        write_run(run_path, run)
        for extra, kwargs in [([], {}), (["-c"], {"complete": True}), (["-M", "7"], {"max_docs": 7}),
                              (["-l", "2"], {"level": 2})]:
            ours, mean, num_q = mlr_trec_eval(mlr, qrels_path, run_path, extra)
            theirs = reference(qrels, run, **kwargs)
            worst = max(worst, compare(f"seed {seed} {extra}", ours, theirs, mean, num_q))
            cases += 1
    print(f"synthetic: {cases} run/qrels/option cases agree with pytrec_eval (max |diff| {worst:.2e})")


def lang_of(identifier):
    return identifier.split("-", 1)[0]


def real(mlr, tmp, run_path, qrels_path, json_path):
    run, qrels = read_run(run_path), read_qrels(qrels_path)
    report = json.loads(Path(json_path).read_text())
    langs = report["langs"]
    n_candidates = report["n_candidates"]
    for q, docs in run.items():
        assert len(docs) == n_candidates, f"{q}: the run must hold the whole pool (--trec-depth 0)"
    # 1. The trec measures of the real run.
    ours, mean, num_q = mlr_trec_eval(mlr, qrels_path, run_path, [])
    worst = compare("real run", ours, reference(qrels, run), mean, num_q)
    # 2. Mul.: AP of the pooled run, per query language.
    pooled = pytrec_eval.RelevanceEvaluator(qrels, {"map", "recall.10"}).evaluate(run)
    by_lang = {x: [q for q in run if lang_of(q) == x] for x in langs}
    per_lang = {row["lang"]: row for row in report["per_lang"]}
    checks = 0
    def close(label, a, b):
        nonlocal worst, checks
        d = abs(a - b)
        worst = max(worst, d)
        checks += 1
        assert d <= TOL, f"{label}: mlr {a} reference {b}"
    for x, queries in by_lang.items():
        close(f"Mul. mAP {x}", per_lang[x]["multi"]["map"], np.mean([pooled[q]["map"] for q in queries]))
        close(f"Mul. R@10 {x}", per_lang[x]["multi"]["recall"]["10"], np.mean([pooled[q]["recall_10"] for q in queries]))
    close("Mul. mAP macro", report["mAP_multi"], np.mean([per_lang[x]["multi"]["map"] for x in langs]))
    # 3. Mo./Cr.: the pooled run restricted to one corpus language is that language's ranking.
    pairs = {(p["query_lang"], p["corpus_lang"]): p["score"] for p in report["pairs"]}
    cross = []
    for y in langs:
        sub_qrels = {q: {d: r for d, r in docs.items() if lang_of(d) == y} for q, docs in qrels.items()}
        sub_qrels = {q: docs for q, docs in sub_qrels.items() if docs}
        sub_run = {q: {d: s for d, s in docs.items() if lang_of(d) == y} for q, docs in run.items() if q in sub_qrels}
        sub = pytrec_eval.RelevanceEvaluator(sub_qrels, {"map", "recall.1"}).evaluate(sub_run)
        for x in langs:
            queries = [q for q in sub if lang_of(q) == x]
            if not queries:
                continue
            close(f"pair {x}->{y} mAP", pairs[(x, y)]["map"], np.mean([sub[q]["map"] for q in queries]))
            close(f"pair {x}->{y} R@1", pairs[(x, y)]["recall"]["1"], np.mean([sub[q]["recall_1"] for q in queries]))
            if x != y:
                cross.append(np.mean([sub[q]["map"] for q in queries]))
    close("Cr. mAP macro over pairs", report["mAP_cross"], np.mean(cross))
    # 4. Rank distance, top-k language share and rank correlation from the full rankings.
    k = report["options"]["preference_at"]
    order = {q: [d for d, _ in trec_order(docs)] for q, docs in run.items()}
    rank = {q: {d: i + 1 for i, d in enumerate(o)} for q, o in order.items()}
    for x, queries in by_lang.items():
        distances = [max(rank[q][d] for d in qrels[q]) - min(rank[q][d] for d in qrels[q])
                     for q in queries if len(qrels[q]) >= 2]
        if distances:
            close(f"rank distance {x}", per_lang[x]["rank_distance"], np.mean(distances))
        share = np.mean([sum(lang_of(d) == x for d in order[q][:k]) / k for q in queries])
        close(f"top-{k} own-language share {x}", per_lang[x]["preference"]["own_share"], share)
    if report.get("correlation_pairs"):
        groups = defaultdict(dict)
        for q in run:
            groups[q.split("-", 1)[1]][lang_of(q)] = q
        docs = sorted(next(iter(rank.values())))
        for pair in report["correlation_pairs"]:
            rhos = []
            for members in groups.values():
                if pair["a"] in members and pair["b"] in members:
                    ra = [rank[members[pair["a"]]][d] for d in docs]
                    rb = [rank[members[pair["b"]]][d] for d in docs]
                    rhos.append(spearmanr(ra, rb).statistic)
            close(f"rank correlation {pair['a']}-{pair['b']}", pair["rho"], np.mean(rhos))
    print(f"real run: {len(run)} queries × {n_candidates} candidates; {checks} LAReQA numbers and every trec "
          f"measure agree with pytrec_eval/numpy/scipy (max |diff| {worst:.2e})")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mlr", required=True, help="the mlr binary")
    ap.add_argument("--real-run")
    ap.add_argument("--real-qrels")
    ap.add_argument("--real-json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        synthetic(args.mlr, Path(tmp))
        if args.real_run:
            real(args.mlr, Path(tmp), args.real_run, args.real_qrels, args.real_json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
