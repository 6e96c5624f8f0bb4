#!/usr/bin/env python3
"""Assemble the seeded hybrid-training experiment (tables, paired tests, plots) from mlr's JSON files.

Usage (what scripts/train_experiment.sh runs after its evaluations):
  $MLR_CACHE/venv/bin/python scripts/train_report.py --runs-dir $MLR_CACHE/runs \
      --run x-x-mono-s1 --run x-y-s1 --run hybrid-s1 [--run hybrid-a0.25-s1 ...] --out results/train \
      [--note 'a paragraph'] [--bootstrap 2000] [--bootstrap-seed 20240820] [--smooth 5]

A run NAME is `<sampler>-s<seed>` (sampler: x-x-mono, x-y, hybrid, hybrid-a0.25, hybrid-a0.75, ...); the
runs of one sampler are its seeds and are grouped in every table and plot.

Inputs, for every run NAME (REPORTS = --reports-dir, default <out>/runs):
  <runs-dir>/NAME/summary.json               `mlr train`: config, loss history, dev evaluations (required)
  REPORTS/NAME-test.json                     `mlr eval --model .../best --split test` (required)
  <runs-dir>/NAME/test-per-query.jsonl       its per-question scores, `--per-query` (required)
  REPORTS/NAME-tatoeba.json                  Tatoeba bitext retrieval (optional)
  REPORTS/NAME-centered-test.json            the run + language centering (optional; hybrid runs)
  <runs-dir>/NAME/centered-per-query.jsonl   its per-question scores (optional)
and the training-free rows (each optional: a missing file is skipped with a note):
  REPORTS/base-test.json + <runs-dir>/base-per-query.jsonl                       the base model
  REPORTS/base-centered-test.json [+ <runs-dir>/base-centered-per-query.jsonl]  base + language centering
  REPORTS/base-dev.json                      dev Mul. mAP of the base model (step 0 of the dev curves)
  REPORTS/base-tatoeba.json                  Tatoeba of the base model
  scripts/train_experiment.sh                its `budget=(...)` line is the train command shown

Outputs, in --out:
  hybrid-xquad-r.json, hybrid-xquad-r.md     main table (seed means ± 95 % t-intervals), paired bootstrap
                                             tests, per-language tables, runs list, commands
  alpha-sweep.svg, rank-distance-per-language.svg, training-curves.svg
  runs/NAME-train.json                       each run's summary.json (absolute cache paths replaced)

No metric is computed from embeddings here: every number comes from mlr's JSON. The per-question files
are first checked against the reports (Mo., Cr., Mul. mAP and rank distance recomputed, equal within
1e-9, or the script fails), then used for the paired bootstrap. No absolute path of this machine is
written: the runs directory appears as $MLR_CACHE/runs.
"""
import argparse
import json
import math
import os
import re
import shlex
import sys
from dataclasses import dataclass, field

import numpy as np
import matplotlib

matplotlib.use("svg")
matplotlib.rcParams["svg.hashsalt"] = "mlr"  # fixed element ids: the same inputs give the same SVG bytes
import matplotlib.pyplot as plt  # noqa: E402

# Two-sided 95 % Student t quantiles t(0.975, df) for df = 1..10, from the standard table
# (= scipy.stats.t.ppf(0.975, df), rounded to 3 decimals); scipy is not required.
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}

# Preferred row order of the samplers (others follow in name order).
SAMPLER_ORDER = ["x-x-mono", "x-y", "hybrid", "hybrid-a0.25", "hybrid-a0.75"]
TOLERANCE = 1e-9
CENTERED = " + language centering"

# Main-table columns: key, header, decimals.
COLUMNS = [
    ("mAP_mono", "Mo. mAP", 4),
    ("mAP_cross", "Cr. mAP", 4),
    ("mAP_multi", "Mul. mAP", 4),
    ("R@1_mono", "R@1 Mo.", 4),
    ("R@1_cross", "R@1 Cr.", 4),
    ("R@10_multi", "R@10 Mul.", 4),
    ("rank_distance", "rank distance ↓", 1),
    ("rank_correlation", "rank corr.", 3),
    ("own_share", "own-language share of top 10", 3),
    ("tatoeba", "Tatoeba acc.", 3),
    ("train_minutes", "train min", 1),
]
REPORT_KEYS = ["mAP_mono", "mAP_cross", "mAP_multi", "R@1_mono", "R@1_cross", "R@10_multi", "rank_distance",
               "rank_correlation"]
# Per-language tables: key, title, decimals.
PER_LANG = [
    ("mAP_multi", "Mul. mAP per query language", 4),
    ("mAP_mono", "Mo. mAP per query language", 4),
    ("rank_distance", "Rank distance per query language (lower is fairer)", 1),
]
# Metrics of the paired tests: key, label, decimals.
TESTED = [("mAP_mono", "Mo. mAP", 4), ("mAP_cross", "Cr. mAP", 4), ("mAP_multi", "Mul. mAP", 4),
          ("rank_distance", "rank distance", 1)]

BOOTSTRAP_METHOD = (
    "in each replicate the question ids are resampled with replacement (a drawn id brings its rows in every "
    "language, with multiplicity) and, independently for each model, its seeds are resampled with replacement (a "
    "model's per-question score is the mean over its drawn seeds); both models' macro metrics are computed with the "
    "same question weights and differenced. Interval: 2.5 and 97.5 percentiles of the differences; p = min(1, 2 "
    "min(share ≤ 0, share ≥ 0)). The questions-only bootstrap (second interval) keeps the seed means fixed and "
    "resamples the questions only.")
# The paired comparisons: (model, baseline), by row name.
COMPARISONS = [("hybrid", "x-x-mono"), ("hybrid", "x-y"), ("hybrid" + CENTERED, "base" + CENTERED)]


# ---------------------------------------------------------------- files and paths

def load_json(path):
    """The parsed JSON file at `path`, or None if it does not exist."""
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def require_json(path, what):
    """The parsed JSON file at `path`; exits with a message naming `what` if it is missing."""
    data = load_json(path)
    if data is None:
        sys.exit(f"error: {what} is missing: {path}")
    return data


class Sanitizer:
    """Replaces this machine's absolute paths in text: the runs dir by $MLR_CACHE/runs, the cache by
    $MLR_CACHE, the checkout by a relative path and the home directory by ~."""

    def __init__(self, runs_dir, repo_root):
        cache = os.environ.get("MLR_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "mlr")
        pairs = []
        for path, repl in [(runs_dir, "$MLR_CACHE/runs"), (cache, "$MLR_CACHE"), (repo_root, "."),
                           ("~", "~")]:
            for p in {os.path.abspath(os.path.expanduser(path)), os.path.realpath(os.path.expanduser(path))}:
                pairs.append((p, repl))
        self.pairs = sorted(pairs, key=lambda pr: -len(pr[0]))  # the longest (most specific) first
        self.forbidden = {p for p, _ in pairs if p != "/"}

    def __call__(self, text):
        for path, repl in self.pairs:
            text = text.replace(path + "/", "" if repl == "." else repl + "/").replace(path, repl)
        return text

    def check_file(self, path):
        """Fails if a written file still holds one of the replaced absolute paths."""
        with open(path, errors="replace") as f:
            text = f.read()
        for p in self.forbidden:
            if p in text:
                sys.exit(f"error: {path} contains the absolute path {p}")


# ---------------------------------------------------------------- per-question scores

@dataclass
class TestSet:
    """The test questions, in one fixed order shared by every per-query file: (id, lang) rows."""
    langs: list            # language codes, the order of the reports
    keys: list             # (question id, query language) of each row
    qlang: np.ndarray      # [Q] index into langs
    group: np.ndarray      # [Q] index of the question id (a question appears once per language)
    n_groups: int
    ap_mask: np.ndarray    # [Q, L] the query has a relevant candidate in that corpus language
    multi_mask: np.ndarray  # [Q]
    rd_mask: np.ndarray    # [Q]


@dataclass
class Scores:
    """Per-question scores of one model over its seeds, zero where the mask of the TestSet is off."""
    ap: np.ndarray          # [S, Q, L]
    multi: np.ndarray       # [S, Q]
    rank_distance: np.ndarray  # [S, Q]
    runs: list = field(default_factory=list)  # the run of each seed

    @property
    def n_seeds(self):
        return self.ap.shape[0]


def read_per_query(path):
    """The rows of a `mlr eval --per-query` JSON-lines file."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def make_testset(rows, langs):
    """The TestSet defined by one per-query file (rows sorted by question id, then language)."""
    keys = sorted((r["id"], r["lang"]) for r in rows)
    if len(set(keys)) != len(keys):
        sys.exit("error: a (question id, language) pair appears twice in a per-query file")
    lang_index = {l: i for i, l in enumerate(langs)}
    ids = sorted({k[0] for k in keys})
    id_index = {q: i for i, q in enumerate(ids)}
    by_key = {(r["id"], r["lang"]): r for r in rows}
    ap_mask = np.array([[by_key[k]["ap"].get(l) is not None for l in langs] for k in keys])
    return TestSet(
        langs=langs, keys=keys,
        qlang=np.array([lang_index[k[1]] for k in keys]),
        group=np.array([id_index[k[0]] for k in keys]),
        n_groups=len(ids),
        ap_mask=ap_mask,
        multi_mask=np.array([by_key[k]["multi"] is not None for k in keys]),
        rd_mask=np.array([by_key[k]["rank_distance"] is not None for k in keys]),
    )


def per_query_arrays(rows, ts, path):
    """(ap [Q, L], multi [Q], rank_distance [Q]) of one per-query file in the TestSet's order; fails if
    its questions or which scores exist differ from the TestSet (every model sees the same test set)."""
    by_key = {(r["id"], r["lang"]): r for r in rows}
    if len(by_key) != len(rows) or set(by_key) != set(ts.keys):
        sys.exit(f"error: {path} does not hold the same test questions as the other per-query files")
    ordered = [by_key[k] for k in ts.keys]
    ap = np.array([[r["ap"].get(l) for l in ts.langs] for r in ordered], dtype=float)
    multi = np.array([r["multi"] for r in ordered], dtype=float)
    rd = np.array([r["rank_distance"] for r in ordered], dtype=float)
    if ((~np.isnan(ap) != ts.ap_mask).any() or (~np.isnan(multi) != ts.multi_mask).any()
            or (~np.isnan(rd) != ts.rd_mask).any()):
        sys.exit(f"error: {path}: the scored settings of some questions differ from the other per-query files")
    return np.nan_to_num(ap), np.nan_to_num(multi), np.nan_to_num(rd)


def stack_scores(arrays, runs):
    """Scores of one model from the per-query arrays of its seeds."""
    return Scores(ap=np.stack([a[0] for a in arrays]), multi=np.stack([a[1] for a in arrays]),
                  rank_distance=np.stack([a[2] for a in arrays]), runs=runs)


# ---------------------------------------------------------------- the evaluator's macro averages

def cell_means(values, mask, weights, cells, n_cells):
    """Weighted mean of `values` per cell (query language or language pair), [B, n_cells], NaN for a
    cell without a weighted query. values: [B or 1, Q]; mask: [Q]; weights: [B or 1, Q]."""
    onehot = np.zeros((len(cells), n_cells))
    onehot[np.arange(len(cells)), cells] = 1.0
    num = (weights * values * mask) @ onehot
    den = (weights * mask) @ onehot
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def macro_metrics(ts, scores, seed_w, q_w):
    """Mo., Cr., Mul. mAP and rank distance as mlr's evaluator macro-averages them
    (core/eval/src/lareqa.rs), for B replicates at once.

    seed_w: [B, S] weights of the model's seeds (rows sum to 1): a query's score is their weighted mean.
    q_w: [B, Q] (or [1, Q]) weights of the questions (multiplicities of a resample).
    Mo.: per query language X, mean of ap[X] over X's queries; mean over languages. Cr.: per ordered
    pair (X, Y ≠ X), mean of ap[Y] over X's queries; mean over pairs. Mul., rank distance: per query
    language, mean over its scored queries; mean over languages. Returns {key: [B]}."""
    n_l = len(ts.langs)
    q_idx = np.arange(len(ts.keys))
    mono = seed_w @ scores.ap[:, q_idx, ts.qlang]
    out = {
        "mAP_mono": np.nanmean(cell_means(mono, ts.ap_mask[q_idx, ts.qlang], q_w, ts.qlang, n_l), axis=1),
        "mAP_multi": np.nanmean(cell_means(seed_w @ scores.multi, ts.multi_mask, q_w, ts.qlang, n_l), axis=1),
        "rank_distance": np.nanmean(
            cell_means(seed_w @ scores.rank_distance, ts.rd_mask, q_w, ts.qlang, n_l), axis=1),
    }
    pair_means = []
    for x in range(n_l):  # Cr. one query language at a time: [B, queries of X, L] stays small
        rows = np.flatnonzero(ts.qlang == x)
        others = [y for y in range(n_l) if y != x]
        values = np.einsum("bs,sqy->bqy", seed_w, scores.ap[:, rows][:, :, others])
        mask = ts.ap_mask[rows][:, others]
        w = q_w[:, rows, None]
        num = (w * values * mask).sum(axis=1)
        den = (w * mask).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            pair_means.append(np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan))
    out["mAP_cross"] = np.nanmean(np.concatenate(pair_means, axis=1), axis=1)
    return out


def point_metrics(ts, scores):
    """The macro metrics of a model's seed-averaged per-question scores (= the mean over seeds of the
    seeds' metrics: the macro averages are linear in the scores)."""
    s = scores.n_seeds
    m = macro_metrics(ts, scores, np.full((1, s), 1.0 / s), np.ones((1, len(ts.keys))))
    return {k: float(v[0]) for k, v in m.items()}


def verify_against_report(ts, arrays, report, path):
    """Fails loudly unless the metrics recomputed from one per-query file equal its report's."""
    single = stack_scores([arrays], [path])
    mine = point_metrics(ts, single)
    for key, value in mine.items():
        if report.get(key) is None or abs(value - report[key]) > TOLERANCE:
            sys.exit(f"error: {key} recomputed from {path} is {value!r}, the report says {report.get(key)!r}")
    return mine


# ---------------------------------------------------------------- bootstrap

def question_weights(rng, ts, n_boot):
    """[B, Q] weights of B resamples of the question ids with replacement: a drawn id brings all its
    language rows, as many times as it was drawn."""
    counts = rng.multinomial(ts.n_groups, np.full(ts.n_groups, 1.0 / ts.n_groups), size=n_boot)
    return counts[:, ts.group].astype(float)


def seed_weights(rng, n_seeds, n_boot):
    """[B, S] weights of B resamples of a model's seeds with replacement (each row sums to 1)."""
    return rng.multinomial(n_seeds, np.full(n_seeds, 1.0 / n_seeds), size=n_boot) / n_seeds


def summarize_bootstrap(diffs):
    """95 % percentile interval and two-sided p-value of bootstrap differences [B]."""
    low, high = np.percentile(diffs, [2.5, 97.5])
    p = min(1.0, 2.0 * min(float(np.mean(diffs <= 0)), float(np.mean(diffs >= 0))))
    return {"ci95": [float(low), float(high)], "p": p}


def paired_test(ts, a, b, n_boot, seed):
    """Differences a − b of the macro metrics with (1) the two-level bootstrap (questions and, per
    model independently, seeds resampled) and (2) the paired bootstrap over questions only (seed means
    fixed). Both use the same question resamples (numpy default_rng(seed))."""
    rng = np.random.default_rng(seed)
    q_w = question_weights(rng, ts, n_boot)
    wa, wb = seed_weights(rng, a.n_seeds, n_boot), seed_weights(rng, b.n_seeds, n_boot)
    two_a, two_b = macro_metrics(ts, a, wa, q_w), macro_metrics(ts, b, wb, q_w)
    mean_a = np.full((1, a.n_seeds), 1.0 / a.n_seeds)
    mean_b = np.full((1, b.n_seeds), 1.0 / b.n_seeds)
    one_a, one_b = macro_metrics(ts, a, mean_a, q_w), macro_metrics(ts, b, mean_b, q_w)
    pa, pb = point_metrics(ts, a), point_metrics(ts, b)
    out = {}
    for key, _, _ in TESTED:
        two = summarize_bootstrap(two_a[key] - two_b[key])
        out[key] = {
            "model": pa[key], "baseline": pb[key], "difference": pa[key] - pb[key],
            "two_level": two, "questions_only": summarize_bootstrap(one_a[key] - one_b[key]),
            "significant_5pct": not (two["ci95"][0] <= 0.0 <= two["ci95"][1]),
        }
    return out


# ---------------------------------------------------------------- seed statistics

def seed_stats(values):
    """Mean over seeds and the half-width of its 95 % t-interval (None for one value); None values are
    left out, an empty list gives None."""
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return None
    n = len(vals)
    mean = sum(vals) / n
    half = None
    if n > 1:
        if n - 1 not in T_975:
            sys.exit(f"error: {n} seeds: extend the t table T_975 to df {n - 1}")
        sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1))
        half = T_975[n - 1] * sd / math.sqrt(n)
    return {"mean": mean, "half_width": half, "n": n, "values": vals}


def report_metrics(report):
    """The main-table metrics of one `mlr eval` report (own_share: mean over languages)."""
    out = {k: report.get(k) for k in REPORT_KEYS}
    shares = [l["preference"]["own_share"] for l in report["per_lang"] if l.get("preference")]
    out["own_share"] = sum(shares) / len(shares) if shares else None
    return out


def lang_metrics(report):
    """{lang: {metric: value}} of one report's per-language rows."""
    def get(block):
        return block["map"] if block else None
    return {l["lang"]: {"mAP_mono": get(l.get("mono")), "mAP_cross": get(l.get("cross")),
                        "mAP_multi": get(l.get("multi")), "rank_distance": l.get("rank_distance"),
                        "own_share": (l.get("preference") or {}).get("own_share")}
            for l in report["per_lang"]}


def tatoeba_accuracy(report):
    """Mean Tatoeba accuracy of a report: the two directions' means averaged (None if no report)."""
    if report is None:
        return None
    return (report["mean_x_to_en"] + report["mean_en_to_x"]) / 2


def make_row(name, kind, reports, runs=(), tatoebas=(), summaries=(), alpha=None):
    """A table row: seed statistics of every metric over the given reports (one per seed)."""
    per_report = [report_metrics(r) for r in reports]
    metrics = {k: seed_stats([m[k] for m in per_report]) for k in REPORT_KEYS + ["own_share"]}
    metrics["tatoeba"] = seed_stats([tatoeba_accuracy(t) for t in tatoebas])
    metrics["tatoeba_x_to_en"] = seed_stats([t["mean_x_to_en"] for t in tatoebas if t])
    metrics["tatoeba_en_to_x"] = seed_stats([t["mean_en_to_x"] for t in tatoebas if t])
    metrics["train_minutes"] = seed_stats([s["run"]["train_seconds"] / 60 for s in summaries])
    langs = [l["lang"] for l in reports[0]["per_lang"]]
    per_lang_reports = [lang_metrics(r) for r in reports]
    per_lang = {l: {k: seed_stats([p[l][k] for p in per_lang_reports])
                    for k in ["mAP_mono", "mAP_cross", "mAP_multi", "rank_distance", "own_share"]}
                for l in langs}
    steps = sorted({s["run"]["step"] for s in summaries})
    batches = sorted({s["config"]["batch_size"] for s in summaries})
    return {"name": name, "kind": kind, "runs": list(runs), "n_seeds": len(reports) if runs else None,
            "alpha": alpha, "steps": steps, "batch_size": batches, "metrics": metrics, "per_lang": per_lang}


# ---------------------------------------------------------------- runs

@dataclass
class Run:
    """One trained run and its reports."""
    name: str
    group: str
    seed: int
    summary: dict
    test: dict
    tatoeba: dict
    centered: dict
    per_query: str
    centered_per_query: str

    @property
    def alpha(self):
        c = self.summary["config"]
        return {"x-x-mono": 1.0, "x-y": 0.0}.get(c["sampler"], c["alpha"])


def parse_name(name, summary):
    """(sampler group, seed) of a run name `<group>-s<seed>`; other names are their own group."""
    m = re.fullmatch(r"(.+)-s(\d+)", name)
    if m:
        return m.group(1), int(m.group(2))
    return name, summary["config"]["seed"]


def load_run(name, runs_dir, reports_dir):
    """The summary and reports of one run; the test report and per-query file are required."""
    summary = require_json(os.path.join(runs_dir, name, "summary.json"), f"the summary of run {name}")
    group, seed = parse_name(name, summary)
    per_query = os.path.join(runs_dir, name, "test-per-query.jsonl")
    if not os.path.exists(per_query):
        sys.exit(f"error: the per-query scores of run {name} are missing: {per_query}")
    return Run(name=name, group=group, seed=seed, summary=summary,
               test=require_json(os.path.join(reports_dir, f"{name}-test.json"), f"the test report of run {name}"),
               tatoeba=load_json(os.path.join(reports_dir, f"{name}-tatoeba.json")),
               centered=load_json(os.path.join(reports_dir, f"{name}-centered-test.json")),
               per_query=per_query,
               centered_per_query=os.path.join(runs_dir, name, "centered-per-query.jsonl"))


def group_runs(runs):
    """{group: [runs by seed]} in SAMPLER_ORDER, then other groups by name."""
    groups = {}
    for r in sorted(runs, key=lambda r: r.seed):
        groups.setdefault(r.group, []).append(r)
    order = [g for g in SAMPLER_ORDER if g in groups] + sorted(g for g in groups if g not in SAMPLER_ORDER)
    return {g: groups[g] for g in order}


def check_group(group, runs, notes):
    """The α of a group; notes seeds that differ in α, steps or batch size."""
    alphas = {r.alpha for r in runs}
    for what, values in [("α", alphas), ("steps", {r.summary["run"]["step"] for r in runs}),
                         ("batch size", {r.summary["config"]["batch_size"] for r in runs})]:
        if len(values) > 1:
            notes.append(f"the seeds of {group} differ in {what}: {sorted(values)}")
    return sorted(alphas)[0]


# ---------------------------------------------------------------- commands

def train_command(script_path, runs, notes):
    """The `mlr train` command of the experiment, with the budget line of train_experiment.sh; notes a
    budget that disagrees with the runs' configs."""
    if not os.path.exists(script_path):
        notes.append(f"{os.path.basename(script_path)} not found: no train command shown")
        return None
    with open(script_path) as f:
        m = re.search(r"^budget=\((.*?)\)", f.read(), re.S | re.M)
    if not m:
        notes.append("no budget=(...) line in train_experiment.sh: no train command shown")
        return None
    budget = " ".join(m.group(1).split())
    flags = dict(re.findall(r"--([a-z-]+) (\S+)", budget))
    for r in runs:
        c = r.summary["config"]
        for flag, key in [("steps", "steps"), ("batch-size", "batch_size"), ("mini-batch", "mini_batch")]:
            if flag in flags and key in c and str(c[key]) != flags[flag]:
                notes.append(f"run {r.name} has {key} {c[key]}, the budget line of train_experiment.sh --{flag} "
                             f"{flags[flag]}")
    return f"mlr train --out $MLR_CACHE/runs/NAME --sampler SAMPLER --alpha ALPHA --seed SEED {budget}"


def sampler_flags(groups):
    """The --sampler/--alpha of each sampler group, from the runs' configs."""
    return {g: f"--sampler {runs[0].summary['config']['sampler']} --alpha {runs[0].alpha:g}"
            for g, runs in groups.items()}


def eval_commands(runs, base_reports, sanitize):
    """The evaluation commands as recorded in the reports, a run's name replaced by NAME."""
    commands = {}
    for kind, attr in [("test", "test"), ("tatoeba", "tatoeba"), ("centered test (hybrid runs)", "centered")]:
        run = next((r for r in runs if getattr(r, attr)), None)
        if run:
            commands[kind] = sanitize(getattr(run, attr)["command"]).replace(run.name, "NAME")
    for kind, report in base_reports.items():
        if report:
            commands[kind] = sanitize(report["command"])
    return commands


# ---------------------------------------------------------------- markdown

def fmt(stats, digits, interval=True):
    """'mean ± half-width', the mean alone for one value, '–' for none."""
    if not stats:
        return "–"
    text = f"{stats['mean']:.{digits}f}"
    if interval and stats["half_width"] is not None:
        text += f" ± {stats['half_width']:.{digits}f}"
    return text


def fmt_p(p, n_boot):
    """A bootstrap p-value; 0 is shown as below the resolution 2/B."""
    return f"< {2 / n_boot:.4f}" if p == 0 else f"{p:.4f}"


def main_table(rows):
    """Markdown of the main table."""
    md = ["| model | seeds | α | steps × batch | " + " | ".join(h for _, h, _ in COLUMNS) + " |",
          "|---|---:|---:|---:|" + "---:|" * len(COLUMNS)]
    for r in rows:
        alpha = "–" if r["alpha"] is None else f"{r['alpha']:g}"
        sb = "–" if not r["steps"] else (
            "/".join(map(str, r["steps"])) + " × " + "/".join(map(str, r["batch_size"])))
        seeds = "–" if r["n_seeds"] is None else str(r["n_seeds"])
        cells = [fmt(r["metrics"][k], d) for k, _, d in COLUMNS]
        md.append(f"| {r['name']} | {seeds} | {alpha} | {sb} | " + " | ".join(cells) + " |")
    return md


def tests_markdown(tests, n_boot):
    """Markdown of the paired tests."""
    md = []
    for t in tests:
        md += ["", f"### {t['model']} − {t['baseline']} ({t['model_seeds']} vs {t['baseline_seeds']} seeds)", ""]
        if t["model_seeds"] == t["baseline_seeds"] == 1:
            md += ["One seed each: the two bootstraps coincide (there is nothing to resample over seeds).", ""]
        md += ["| metric | " + t["model"] + " | " + t["baseline"] + " | difference | 95 % interval (questions + seeds) "
               "| p | 95 % interval (questions only) | p | |",
               "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
        for key, label, d in TESTED:
            r = t["metrics"][key]
            two, one = r["two_level"], r["questions_only"]
            md.append(f"| {label} | {r['model']:.{d}f} | {r['baseline']:.{d}f} | {r['difference']:+.{d}f} | "
                      f"[{two['ci95'][0]:+.{d}f}, {two['ci95'][1]:+.{d}f}] | {fmt_p(two['p'], n_boot)} | "
                      f"[{one['ci95'][0]:+.{d}f}, {one['ci95'][1]:+.{d}f}] | {fmt_p(one['p'], n_boot)} | "
                      f"{'significant at 5 %' if r['significant_5pct'] else ''} |")
    return md


def per_lang_markdown(rows, langs, zero_shot):
    """Markdown of the per-language tables (seed means)."""
    md = []
    head = [l + (" (zero-shot)" if l in zero_shot else "") for l in langs]
    for key, title, d in PER_LANG:
        md += ["", f"### {title}", "", "| model | " + " | ".join(head) + " |", "|---|" + "---:|" * len(langs)]
        for r in rows:
            md.append(f"| {r['name']} | " + " | ".join(fmt(r["per_lang"].get(l, {}).get(key), d, False)
                                                      for l in langs) + " |")
    return md


def runs_markdown(run_records):
    """Markdown of the runs list."""
    md = ["| run | sampler | α | seed | steps × batch (mini-batch) | dev Mul. mAP (rank distance) by step | "
          "tested step | train s | pairs/s |", "|---|---|---:|---:|---:|---|---:|---:|---:|"]
    for r in run_records:
        dev = ", ".join(f"{e['step']}: {e['multi']:.4f} ({e['rank_distance']:.1f})" for e in r["dev"])
        pps = "–" if r["pairs_per_s"] is None else f"{r['pairs_per_s']:.2f}"
        md.append(f"| {r['name']} | {r['sampler']} | {r['alpha']:g} | {r['seed']} | {r['steps']} × {r['batch_size']} "
                  f"({r['mini_batch']}) | {dev} | {r['best_step']} | {r['train_seconds']:.0f} | {pps} |")
    return md


# ---------------------------------------------------------------- plots

def save(fig, out, name):
    """Writes a figure as a reproducible SVG (no date)."""
    fig.tight_layout()
    fig.savefig(os.path.join(out, name), metadata={"Date": None})
    plt.close(fig)


def plot_alpha_sweep(rows, out):
    """Mo., Cr., Mul. mAP against α with seed intervals; the base model (and base + centering) as lines."""
    sweep = sorted((r for r in rows if r["kind"] == "sampler" and r["alpha"] is not None), key=lambda r: r["alpha"])
    if not sweep:
        return False
    lines = [(r, style) for r, style in [(next((r for r in rows if r["name"] == "base"), None), "--"),
                                         (next((r for r in rows if r["name"] == "base" + CENTERED), None), ":")] if r]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    for ax, (key, label, _) in zip(axes, COLUMNS[:3]):
        xs = [r["alpha"] for r in sweep]
        ys = [r["metrics"][key]["mean"] for r in sweep]
        err = [r["metrics"][key]["half_width"] or 0.0 for r in sweep]
        ax.errorbar(xs, ys, yerr=err, marker="o", capsize=4, color="C0", label="trained (seed mean, 95 % t-int.)")
        for r, style in lines:
            ax.axhline(r["metrics"][key]["mean"], linestyle=style, color="grey", label=r["name"])
        ax.set_xticks(xs)
        ax.set_xticklabels([f"{r['alpha']:g}\n{r['name']}" for r in sweep], fontsize=8)
        ax.set_xlabel("α (share of monolingual batches)")
        ax.set_title(label)
    axes[0].legend(fontsize=8, loc="best")
    save(fig, out, "alpha-sweep.svg")
    return True


def plot_rank_distance(rows, langs, zero_shot, out):
    """Grouped bars: rank distance per query language for every row, with seed intervals."""
    fig, ax = plt.subplots(figsize=(13, 4.2))
    width = 0.8 / len(rows)
    for i, r in enumerate(rows):
        stats = [r["per_lang"].get(l, {}).get("rank_distance") for l in langs]
        ax.bar([j + i * width for j in range(len(langs))], [s["mean"] if s else 0 for s in stats], width,
               yerr=[(s["half_width"] or 0) if s else 0 for s in stats], capsize=2, label=r["name"])
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(langs))])
    ax.set_xticklabels([l + ("*" if l in zero_shot else "") for l in langs])
    ax.set_ylabel("mean rank distance (lower is fairer)")
    ax.set_title("Rank distance per query language, XQuAD-R test (seed means, 95 % t-intervals; * = zero-shot)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    save(fig, out, "rank-distance-per-language.svg")


def seed_mean_series(series_per_seed):
    """(steps, means) of {step: value} dicts averaged over the seeds that have each step."""
    steps = sorted({s for series in series_per_seed for s in series})
    return steps, [float(np.mean([series[s] for series in series_per_seed if s in series])) for s in steps]


def smooth(values, window):
    """Trailing moving average."""
    return [float(np.mean(values[max(0, i - window + 1):i + 1])) for i in range(len(values))]


def plot_training_curves(groups, base_dev, window, out):
    """Per sampler: loss (seed mean, smoothed) and dev Mul. mAP (seed mean; step 0 = base model)."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
    for i, (group, runs) in enumerate(groups.items()):
        steps, loss = seed_mean_series([{h["step"]: h["loss"] for h in r.summary["run"]["history"]} for r in runs])
        ax1.plot(steps, smooth(loss, window), color=f"C{i}", label=f"{group} ({len(runs)} seeds)")
        steps, dev = seed_mean_series([{e["step"]: e["multi"] for e in r.summary["run"]["evals"]} for r in runs])
        if base_dev is not None:
            steps, dev = [0] + steps, [base_dev] + dev
        ax2.plot(steps, dev, marker="o", color=f"C{i}", label=group)
    ax1.set_xlabel("step")
    ax1.set_ylabel(f"InfoNCE loss (seed mean, mean of last {window} steps)")
    ax1.set_title("Training loss (mono and cross batches differ in difficulty)")
    ax1.legend(fontsize=8)
    ax2.set_xlabel("step")
    ax2.set_ylabel("dev Mul. mAP (seed mean)")
    ax2.set_title("Dev multilingual (pooled) mAP" + ("; step 0 = base model" if base_dev is not None else ""))
    ax2.legend(fontsize=8)
    save(fig, out, "training-curves.svg")


# ---------------------------------------------------------------- main

def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs-dir", required=True, help="where `mlr train` wrote the runs ($MLR_CACHE/runs)")
    ap.add_argument("--run", action="append", required=True, help="a run name <sampler>-s<seed> (repeat)")
    ap.add_argument("--out", default="results/train")
    ap.add_argument("--reports-dir", help="where the `mlr eval` reports are (default <out>/runs)")
    ap.add_argument("--experiment-script", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                                 "train_experiment.sh"))
    ap.add_argument("--bootstrap", type=int, default=2000, help="bootstrap replicates B")
    ap.add_argument("--bootstrap-seed", type=int, default=20240820, help="numpy seed of the bootstrap")
    ap.add_argument("--smooth", type=int, default=5, help="loss smoothing window (steps)")
    ap.add_argument("--note", default="", help="a paragraph added under the main table")
    return ap.parse_args()


def load_base_reports(reports_dir, notes, sanitize):
    """The training-free reports by kind (None where missing, with a note)."""
    base = {kind: load_json(os.path.join(reports_dir, f"{kind}.json"))
            for kind in ["base-test", "base-centered-test", "base-dev", "base-tatoeba"]}
    for kind, report in base.items():
        if report is None:
            notes.append(f"{kind}.json not found in {sanitize(reports_dir)}: its row or value is left out")
    return base


def load_per_query(runs, base, runs_dir, langs, notes):
    """Reads every per-query file (the runs, their centered evaluations, the base rows) and checks each
    against its report. Returns the TestSet and the arrays and recomputed metrics by source key (the run
    name, NAME + language centering, base-test, base-centered-test)."""
    sources = [(r.name, r.per_query, r.test) for r in runs]
    sources += [(r.name + CENTERED, r.centered_per_query, r.centered) for r in runs
                if r.centered and os.path.exists(r.centered_per_query)]
    for kind, file, row in [("base-test", "base-per-query.jsonl", "base"),
                            ("base-centered-test", "base-centered-per-query.jsonl", "base" + CENTERED)]:
        path = os.path.join(runs_dir, file)
        if base[kind] and os.path.exists(path):
            sources.append((kind, path, base[kind]))
        elif base[kind]:
            notes.append(f"{file} not found in $MLR_CACHE/runs: {row} is in the table, not in the paired tests")
    ts, arrays, verified = None, {}, {}
    for key, path, report in sources:
        if report["langs"] != langs:
            sys.exit(f"error: the report of {path} has languages {report['langs']}, not {langs}")
        rows = read_per_query(path)
        ts = ts or make_testset(rows, langs)
        arrays[key] = per_query_arrays(rows, ts, path)
        verified[key] = verify_against_report(ts, arrays[key], report, path)
    print(f"checked {len(verified)} per-query files against their reports (Mo., Cr., Mul. mAP, rank distance "
          f"within {TOLERANCE:g})")
    return ts, arrays, verified


def build_rows(groups, base, arrays, notes):
    """The main-table rows (training-free, samplers, samplers + centering) and the per-question Scores of
    every row that has them, by row name."""
    rows, scores = [], {}
    for kind, name, tatoeba in [("base-test", "base", base["base-tatoeba"]),
                                ("base-centered-test", "base" + CENTERED, None)]:
        if base[kind]:
            rows.append(make_row(name, "training-free", [base[kind]], tatoebas=[tatoeba]))
            if kind in arrays:
                scores[name] = stack_scores([arrays[kind]], [name])
    for group, grs in groups.items():
        rows.append(make_row(group, "sampler", [r.test for r in grs], [r.name for r in grs],
                             [r.tatoeba for r in grs], [r.summary for r in grs], check_group(group, grs, notes)))
        scores[group] = stack_scores([arrays[r.name] for r in grs], [r.name for r in grs])
        missing = [r.name for r in grs if not r.tatoeba]
        if missing:
            notes.append(f"no Tatoeba report for {', '.join(missing)}")
    for group, grs in groups.items():
        centered = [r for r in grs if r.centered]
        if not centered:
            continue
        rows.append(make_row(group + CENTERED, "centered", [r.centered for r in centered], [r.name for r in centered],
                             summaries=[r.summary for r in centered], alpha=centered[0].alpha))
        if all(r.name + CENTERED in arrays for r in centered):
            scores[group + CENTERED] = stack_scores([arrays[r.name + CENTERED] for r in centered],
                                                    [r.name for r in centered])
        else:
            notes.append(f"centered per-query files missing for some {group} runs: {group}{CENTERED} is not in "
                         "the paired tests")
    return rows, scores


def run_paired_tests(ts, scores, n_boot, seed, notes):
    """The paired tests of COMPARISONS whose two models have per-question scores."""
    tests = []
    for model, baseline in COMPARISONS:
        absent = [m for m in (model, baseline) if m not in scores]
        if absent:
            notes.append(f"paired test {model} − {baseline} skipped: no per-query scores of {absent[0]}")
            continue
        tests.append({"model": model, "baseline": baseline, "model_seeds": scores[model].n_seeds,
                      "baseline_seeds": scores[baseline].n_seeds,
                      "metrics": paired_test(ts, scores[model], scores[baseline], n_boot, seed)})
    return tests


def run_record(r):
    """One line of the runs list."""
    c, run = r.summary["config"], r.summary["run"]
    secs = run["train_seconds"]
    return {"name": r.name, "sampler": c["sampler"], "group": r.group, "alpha": r.alpha, "seed": r.seed,
            "steps": run["step"], "batch_size": c["batch_size"], "mini_batch": c.get("mini_batch"),
            "lr": c["lr"], "tau": c["tau"], "train_seconds": secs,
            "pairs_per_s": run["step"] * c["batch_size"] / secs if secs else None,
            "best_step": run["best"]["step"] if run["best"] else None, "dev": run["evals"],
            "test_model_sha256": r.test.get("model_sha256")}


def dataset_line(report, zero_shot):
    """What was tested, from a test report."""
    return (f"{report['dataset']} ({report['data_dir']}, split {report['split']}): {report['n_queries']} questions × "
            f"{report['n_candidates']} candidates, {len(report['langs'])} languages; zero-shot (not in the runs' "
            f"train_langs): {', '.join(zero_shot) or 'none'}")


def markdown(result, langs, plots):
    """The report hybrid-xquad-r.md."""
    b = result["bootstrap"]
    md = ["# Hybrid batch training on XQuAD-R (test articles)", "",
          f"Generated by `{result['command']}` from the JSON of `mlr train` and `mlr eval`; commands below.", "",
          f"Data: {result['dataset']}.", "",
          "## Main table", "",
          "Mean over seeds ± half-width of the 95 % Student t-interval over seeds (no interval for one seed or a "
          "training-free row). Own-language share of top 10: mean over query languages of the share of the "
          "pooled top 10 in the query's language. Tatoeba: mean accuracy of x→en and en→x (both in the JSON).", ""]
    md += main_table(result["rows"])
    if result["note"]:
        md += ["", result["note"]]
    md += ["", "## Paired tests", "",
           f"Difference of the seed-averaged metric (model − baseline) on the same test questions. Two-level "
           f"bootstrap, B = {b['replicates']} replicates (numpy seed {b['numpy_seed']}): {b['method']} "
           "“Significant at 5 %” when the two-level interval excludes 0. For rank distance lower is better; "
           "p = 0 is shown as < 2/B."]
    md += tests_markdown(result["paired_tests"], b["replicates"]) if result["paired_tests"] else \
        ["", "No paired test: see the notes."]
    md += ["", "## Per language (seed means)"] + per_lang_markdown(result["rows"], langs, result["zero_shot"])
    md += ["", "## Runs", ""] + runs_markdown(result["runs"])
    md += ["", "## Commands", ""] + [f"- {k}: `{v}`" for k, v in result["commands"].items()]
    if result["notes"]:
        md += ["", "## Notes", ""] + [f"- {n}" for n in result["notes"]]
    md += ["", "Plots: " + ", ".join(f"[{p}]({p})" for p in plots), ""]
    return "\n".join(md)


def write_text(path, text, sanitize):
    """Writes text with this machine's paths replaced; returns the path."""
    with open(path, "w") as f:
        f.write(sanitize(text))
    return path


def main():
    args = parse_args()
    reports_dir = args.reports_dir or os.path.join(args.out, "runs")
    sanitize = Sanitizer(args.runs_dir, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    notes = []
    os.makedirs(os.path.join(args.out, "runs"), exist_ok=True)

    runs = [load_run(name, args.runs_dir, reports_dir) for name in args.run]
    groups = group_runs(runs)
    base = load_base_reports(reports_dir, notes, sanitize)
    langs = runs[0].test["langs"]
    ts, arrays, verified = load_per_query(runs, base, args.runs_dir, langs, notes)
    train_langs = {l for r in runs for l in r.summary["config"].get("train_langs", [])}
    zero_shot = [l for l in langs if train_langs and l not in train_langs]

    rows, scores = build_rows(groups, base, arrays, notes)
    tests = run_paired_tests(ts, scores, args.bootstrap, args.bootstrap_seed, notes)
    commands = {"train": train_command(args.experiment_script, runs, notes)}
    commands.update({f"train {g}": f for g, f in sampler_flags(groups).items()})
    commands.update(eval_commands(runs, base, sanitize))
    result = {
        "dataset": dataset_line(runs[0].test, zero_shot),
        "command": sanitize("python scripts/train_report.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])),
        "note": args.note, "zero_shot": zero_shot,
        "interval": "mean over seeds ± half-width of the 95 % Student t-interval (none for one seed)",
        "rows": rows, "paired_tests": tests,
        "bootstrap": {"replicates": args.bootstrap, "numpy_seed": args.bootstrap_seed, "method": BOOTSTRAP_METHOD},
        "runs": [run_record(r) for r in runs],
        "commands": {k: v for k, v in commands.items() if v}, "notes": notes,
        "verified_per_query": verified,
    }

    plots = ["alpha-sweep.svg"] if plot_alpha_sweep(rows, args.out) else []
    plot_rank_distance(rows, langs, zero_shot, args.out)
    plot_training_curves(groups, base["base-dev"]["mAP_multi"] if base["base-dev"] else None, args.smooth, args.out)
    plots += ["rank-distance-per-language.svg", "training-curves.svg"]

    written = [write_text(os.path.join(args.out, "hybrid-xquad-r.json"),
                          json.dumps(result, indent=1, ensure_ascii=False) + "\n", sanitize),
               write_text(os.path.join(args.out, "hybrid-xquad-r.md"), markdown(result, langs, plots), sanitize)]
    for r in runs:
        with open(os.path.join(args.runs_dir, r.name, "summary.json")) as f:
            written.append(write_text(os.path.join(args.out, "runs", f"{r.name}-train.json"), f.read(), sanitize))
    for path in written + [os.path.join(args.out, p) for p in plots]:
        sanitize.check_file(path)
    print(f"wrote {written[0]}, {written[1]}, {len(plots)} plots and {len(runs)} run summaries in {args.out}/runs")
    for n in notes:
        print(f"note: {n}")


if __name__ == "__main__":
    main()
