//! TREC files and trec_eval's measures, with trec_eval's exact conventions (checked against
//! `pytrec_eval` by `scripts/crosscheck_eval.py`).
//!
//! - **Files.** qrels: `qid iter docno rel` (whitespace-separated, integer `rel`); runs:
//!   `qid Q0 docno rank score tag` (the rank column is ignored, as trec_eval ignores it);
//!   topics (MIRACL): `qid<TAB>query`.
//! - **Order.** A query's documents are ranked by score, highest first; equal scores are broken by
//!   docno in descending byte order. `max_docs` keeps the first N of that order (`trec_eval -M`).
//! - **Relevance.** A document is relevant if its qrels value is ≥ `relevance_level` (default 1;
//!   `trec_eval -l`). Unjudged documents are not relevant. nDCG uses the qrels value as the gain
//!   (any value > 0), the ideal ranking being all judged documents sorted by gain.
//! - **Measures per query.** `map` = Σ over relevant retrieved documents of precision at their
//!   rank, divided by the number of relevant documents; `ndcg_cut_k` = DCG@k / ideal DCG@k with
//!   discount log2(rank + 1); `recall_k` = relevant in the top k / relevant; `P_k` = relevant in
//!   the top k / k; `recip_rank` = 1 / rank of the first relevant; `recip_rank_k` (MRR@k) = the same
//!   within the top k (trec_eval `-M k -m recip_rank`). A query with no relevant document scores 0.
//! - **Which queries.** Queries of the qrels that the run has; a run query absent from the qrels
//!   is ignored. With `complete` (`trec_eval -c`), every qrels query counts, missing ones scoring 0.
//!   Means are plain averages over those queries.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::EvalError;

/// Relevance judgements: query → docno → relevance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Qrels {
    /// Judgements by query id, then docno.
    pub queries: BTreeMap<String, BTreeMap<String, i64>>,
}

/// A ranked run: query → (docno, score) in any order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// Retrieved documents by query id.
    pub queries: BTreeMap<String, Vec<(String, f64)>>,
}

fn parse_error(path: &str, line: usize, message: impl Into<String>) -> EvalError {
    EvalError::Parse { path: path.to_string(), line, message: message.into() }
}

impl Qrels {
    /// Parses a qrels file; a docno judged twice for one query is an error (as in trec_eval).
    pub fn parse(text: &str, path: &str) -> Result<Self, EvalError> {
        let mut qrels = Qrels::default();
        for (i, line) in text.lines().enumerate() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.is_empty() {
                continue;
            }
            let [qid, _iter, docno, rel] = fields[..] else {
                return Err(parse_error(
                    path,
                    i + 1,
                    format!("expected 4 fields `qid iter docno rel`, found {}", fields.len()),
                ));
            };
            let rel: i64 =
                rel.parse().map_err(|_| parse_error(path, i + 1, format!("relevance {rel:?} is not an integer")))?;
            let docs = qrels.queries.entry(qid.to_string()).or_default();
            if docs.insert(docno.to_string(), rel).is_some() {
                return Err(parse_error(path, i + 1, format!("document {docno} judged twice for query {qid}")));
            }
        }
        Ok(qrels)
    }

    /// Writes the qrels in TREC format (iteration column `0`... `Q0` for symmetry with runs).
    pub fn to_trec(&self) -> String {
        let mut out = String::new();
        for (qid, docs) in &self.queries {
            for (docno, rel) in docs {
                let _ = writeln!(out, "{qid} Q0 {docno} {rel}");
            }
        }
        out
    }
}

impl Run {
    /// Parses a run file; scores must be numbers.
    pub fn parse(text: &str, path: &str) -> Result<Self, EvalError> {
        let mut run = Run::default();
        for (i, line) in text.lines().enumerate() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.is_empty() {
                continue;
            }
            let [qid, _q0, docno, _rank, score, _tag] = fields[..] else {
                return Err(parse_error(
                    path,
                    i + 1,
                    format!("expected 6 fields `qid Q0 docno rank score tag`, found {}", fields.len()),
                ));
            };
            let score: f64 =
                score.parse().map_err(|_| parse_error(path, i + 1, format!("score {score:?} is not a number")))?;
            if score.is_nan() {
                return Err(parse_error(path, i + 1, "score is NaN"));
            }
            run.queries.entry(qid.to_string()).or_default().push((docno.to_string(), score));
        }
        Ok(run)
    }

    /// Writes the run in TREC format, each query in ranking order with ranks from 1.
    pub fn to_trec(&self, tag: &str) -> String {
        let mut out = String::new();
        for (qid, docs) in &self.queries {
            for (rank, (docno, score)) in ranked(docs).into_iter().enumerate() {
                let _ = writeln!(out, "{qid} Q0 {docno} {} {score} {tag}", rank + 1);
            }
        }
        out
    }
}

/// Parses MIRACL-style topics: `qid<TAB>query` per line.
pub fn parse_topics(text: &str, path: &str) -> Result<Vec<(String, String)>, EvalError> {
    let mut topics = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let Some((qid, query)) = line.split_once('\t') else {
            return Err(parse_error(path, i + 1, "expected `qid<TAB>query`"));
        };
        if qid.is_empty() || query.trim().is_empty() {
            return Err(parse_error(path, i + 1, "empty query id or text"));
        }
        topics.push((qid.to_string(), query.to_string()));
    }
    Ok(topics)
}

/// A MIRACL-style corpus line: `{"docid": …, "title": …, "text": …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorpusDoc {
    /// Document id (the qrels' docno).
    pub docid: String,
    /// Title (may be empty).
    #[serde(default)]
    pub title: String,
    /// Passage text.
    pub text: String,
}

/// Parses a MIRACL-style JSON-lines corpus.
pub fn parse_corpus(text: &str, path: &str) -> Result<Vec<CorpusDoc>, EvalError> {
    let mut docs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let doc: CorpusDoc = serde_json::from_str(line).map_err(|e| parse_error(path, i + 1, e.to_string()))?;
        docs.push(doc);
    }
    Ok(docs)
}

/// The documents of one query in trec_eval order: score descending, then docno descending.
pub fn ranked(docs: &[(String, f64)]) -> Vec<(&str, f64)> {
    let mut order: Vec<(&str, f64)> = docs.iter().map(|(d, s)| (d.as_str(), *s)).collect();
    // `partial_cmp`, not `total_cmp`: -0 and 0 are equal scores for trec_eval (NaN is rejected when
    // parsing, and treated as equal here).
    order.sort_by(|a, b| {
        b.1.partial_cmp(&a.1).unwrap_or(std::cmp::Ordering::Equal).then_with(|| b.0.as_bytes().cmp(a.0.as_bytes()))
    });
    order
}

/// Which measures and conventions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrecOptions {
    /// Minimum qrels value that counts as relevant (`trec_eval -l`).
    pub relevance_level: i64,
    /// Average over every qrels query, missing ones as 0 (`trec_eval -c`).
    pub complete: bool,
    /// Keep only the first N documents of each query (`trec_eval -M`).
    pub max_docs: Option<usize>,
    /// Cut-offs of `ndcg_cut`.
    pub ndcg_at: Vec<usize>,
    /// Cut-offs of `recall`.
    pub recall_at: Vec<usize>,
    /// Cut-offs of `P`.
    pub precision_at: Vec<usize>,
    /// Cut-offs of MRR@k (`recip_rank` within the top k).
    pub mrr_at: Vec<usize>,
}

impl Default for TrecOptions {
    /// MIRACL's measures: nDCG@10 and Recall@100, plus MAP, MRR@10/100 and P@10.
    fn default() -> Self {
        Self {
            relevance_level: 1,
            complete: false,
            max_docs: None,
            ndcg_at: vec![10],
            recall_at: vec![100],
            precision_at: vec![10],
            mrr_at: vec![10, 100],
        }
    }
}

/// Measures of one query (or their means), keyed by trec_eval's names (`map`, `ndcg_cut_10`, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measures {
    /// Query id (`all` for the means).
    pub qid: String,
    /// Values by measure name.
    pub values: BTreeMap<String, f64>,
}

/// Per-query measures and their means.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrecReport {
    /// Queries averaged.
    pub num_q: usize,
    /// The means (`qid` = `all`).
    pub mean: Measures,
    /// Every evaluated query (missing queries included, as zeros, with `complete`).
    pub per_query: Vec<Measures>,
}

fn measure_names(o: &TrecOptions) -> Vec<String> {
    let mut names = vec!["num_ret".into(), "num_rel".into(), "num_rel_ret".into(), "map".into(), "recip_rank".into()];
    names.extend(o.mrr_at.iter().map(|k| format!("recip_rank_{k}")));
    names.extend(o.precision_at.iter().map(|k| format!("P_{k}")));
    names.extend(o.recall_at.iter().map(|k| format!("recall_{k}")));
    names.extend(o.ndcg_at.iter().map(|k| format!("ndcg_cut_{k}")));
    names
}

fn evaluate_query(
    judged: &BTreeMap<String, i64>,
    docs: &[(String, f64)],
    o: &TrecOptions,
) -> Result<BTreeMap<String, f64>, EvalError> {
    let mut ranking = ranked(docs);
    if let Some(w) = {
        let mut names: Vec<&str> = ranking.iter().map(|d| d.0).collect();
        names.sort_unstable();
        names.windows(2).find(|w| w[0] == w[1]).map(|w| w[0].to_string())
    } {
        return Err(EvalError::Run(format!("document {w} appears twice in one query of the run")));
    }
    if let Some(m) = o.max_docs {
        ranking.truncate(m);
    }
    // The judgement of each retrieved document (None: unjudged). Relevant means judged at the
    // relevance level or above, the rule `num_rel` counts by, at any level: unjudged documents are
    // never relevant (a level of -1 or below once made them so, and map exceeded 1).
    let judgements: Vec<Option<i64>> = ranking.iter().map(|(d, _)| judged.get(*d).copied()).collect();
    let level = o.relevance_level;
    let rels: Vec<bool> = judgements.iter().map(|r| r.is_some_and(|r| r >= level)).collect();
    let num_rel = judged.values().filter(|&&r| r >= level).count();
    let mut v = BTreeMap::new();
    v.insert("num_ret".to_string(), ranking.len() as f64);
    v.insert("num_rel".to_string(), num_rel as f64);
    let relevant_before = |k: usize| rels.iter().take(k).filter(|&&r| r).count();
    v.insert("num_rel_ret".to_string(), relevant_before(rels.len()) as f64);
    let mut found = 0usize;
    let mut sum = 0.0;
    for (i, &r) in rels.iter().enumerate() {
        if r {
            found += 1;
            sum += found as f64 / (i + 1) as f64;
        }
    }
    v.insert("map".into(), if num_rel > 0 && found > 0 { sum / num_rel as f64 } else { 0.0 });
    let first = rels.iter().position(|&r| r);
    v.insert("recip_rank".into(), first.map_or(0.0, |i| 1.0 / (i + 1) as f64));
    for &k in &o.mrr_at {
        v.insert(format!("recip_rank_{k}"), first.filter(|&i| i < k).map_or(0.0, |i| 1.0 / (i + 1) as f64));
    }
    for &k in &o.precision_at {
        v.insert(format!("P_{k}"), if k == 0 { 0.0 } else { relevant_before(k) as f64 / k as f64 });
    }
    for &k in &o.recall_at {
        v.insert(format!("recall_{k}"), if num_rel == 0 { 0.0 } else { relevant_before(k) as f64 / num_rel as f64 });
    }
    let mut ideal: Vec<i64> = judged.values().copied().filter(|&r| r > 0).collect();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    for &k in &o.ndcg_at {
        let dcg = |gains: &mut dyn Iterator<Item = i64>| -> f64 {
            gains.take(k).enumerate().filter(|&(_, g)| g > 0).map(|(i, g)| g as f64 / ((i + 2) as f64).log2()).sum()
        };
        // Unjudged and negative judgements are no gain.
        let actual = dcg(&mut judgements.iter().map(|r| r.unwrap_or(0)));
        let best = dcg(&mut ideal.iter().copied());
        v.insert(format!("ndcg_cut_{k}"), if best > 0.0 { actual / best } else { 0.0 });
    }
    Ok(v)
}

/// Evaluates `run` against `qrels` (see the module docs for every convention).
pub fn evaluate(qrels: &Qrels, run: &Run, o: &TrecOptions) -> Result<TrecReport, EvalError> {
    let names = measure_names(o);
    let mut per_query = Vec::new();
    let empty = Vec::new();
    for (qid, judged) in &qrels.queries {
        let docs = match run.queries.get(qid) {
            Some(docs) => docs,
            None if o.complete => &empty,
            None => continue,
        };
        let mut values = evaluate_query(judged, docs, o).map_err(|e| EvalError::Run(format!("query {qid}: {e}")))?;
        values.retain(|k, _| names.contains(k));
        per_query.push(Measures { qid: qid.clone(), values });
    }
    let num_q = per_query.len();
    if num_q == 0 {
        return Err(EvalError::Run(if qrels.queries.is_empty() {
            "the qrels judge no query: nothing to evaluate".into()
        } else {
            format!(
                "no query of the run is in the qrels ({} judged queries, {} run queries): nothing to evaluate (-c averages over every judged query)",
                qrels.queries.len(),
                run.queries.len()
            )
        }));
    }
    let mean = Measures {
        qid: "all".into(),
        values: names
            .iter()
            .map(|name| {
                let total: f64 = per_query.iter().map(|m| m.values[name]).sum();
                // Counts are summed, as trec_eval does; the rest are averaged.
                let value = if name.starts_with("num_") { total } else { total / num_q as f64 };
                (name.clone(), value)
            })
            .collect(),
    };
    Ok(TrecReport { num_q, mean, per_query })
}

impl TrecReport {
    /// trec_eval-style text: `measure <TAB> qid <TAB> value`, per query (optionally) then `all`.
    pub fn to_text(&self, per_query: bool) -> String {
        let mut out = String::new();
        let mut write = |m: &Measures| {
            for (name, value) in &m.values {
                if name.starts_with("num_") {
                    let _ = writeln!(out, "{name:<22}\t{}\t{}", m.qid, *value as u64);
                } else {
                    let _ = writeln!(out, "{name:<22}\t{}\t{value:.4}", m.qid);
                }
            }
        };
        if per_query {
            self.per_query.iter().for_each(&mut write);
        }
        write(&self.mean);
        let _ = writeln!(out, "{:<22}\tall\t{}", "num_q", self.num_q);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    const QRELS: &str = "q1 0 d1 2\nq1 0 d2 0\nq1 0 d3 1\nq1 0 d9 1\nq2 0 x 0\nq3 0 d1 1\n";

    fn run() -> Run {
        // q1: d2 and d3 tie at 0.5; descending docno puts d3 first. Ranking: d1, d3, d2, d4.
        Run::parse(
            "q1 Q0 d2 1 0.5 t\nq1 Q0 d1 2 0.9 t\nq1 Q0 d3 3 0.5 t\nq1 Q0 d4 4 0.1 t\nq2 Q0 x 1 1 t\nq4 Q0 d1 1 1 t\n",
            "run",
        )
        .unwrap()
    }

    #[test]
    fn hand_worked_measures_with_ties_and_graded_qrels() {
        let qrels = Qrels::parse(QRELS, "qrels").unwrap();
        let o = TrecOptions {
            ndcg_at: vec![2, 10],
            recall_at: vec![1, 100],
            precision_at: vec![2],
            mrr_at: vec![1],
            ..Default::default()
        };
        let r = evaluate(&qrels, &run(), &o).unwrap();
        // q1 and q2 are evaluated; q3 has no run (skipped); q4 has no qrels (ignored).
        assert_eq!(r.num_q, 2);
        let q1 = &r.per_query[0].values;
        // Relevant (≥1): d1, d3, d9 → 3. Retrieved relevant at ranks 1 and 2.
        close(q1["map"], (1.0 + 1.0) / 3.0);
        close(q1["recip_rank"], 1.0);
        close(q1["P_2"], 1.0);
        close(q1["recall_1"], 1.0 / 3.0);
        close(q1["recall_100"], 2.0 / 3.0);
        // DCG@2 = 2/1 + 1/log2(3); ideal@2 = 2 + 1/log2(3) → 1. DCG@10 adds nothing (d2 0, d4 unjudged);
        // ideal@10 = 2 + 1/log2(3) + 1/log2(4).
        close(q1["ndcg_cut_2"], 1.0);
        close(q1["ndcg_cut_10"], (2.0 + 1.0 / 3f64.log2()) / (2.0 + 1.0 / 3f64.log2() + 0.5));
        // q2 has only a non-relevant judgement: every measure is 0, and it still counts.
        let q2 = &r.per_query[1].values;
        close(q2["map"], 0.0);
        close(q2["ndcg_cut_10"], 0.0);
        close(r.mean.values["map"], 1.0 / 3.0);
        close(r.mean.values["num_rel_ret"], 2.0);
        // -c: q3 joins as zeros.
        let c = evaluate(&qrels, &run(), &TrecOptions { complete: true, ..o.clone() }).unwrap();
        assert_eq!(c.num_q, 3);
        close(c.mean.values["map"], 2.0 / 9.0);
        // -M 1 keeps d1 only.
        let m = evaluate(&qrels, &run(), &TrecOptions { max_docs: Some(1), ..o }).unwrap();
        close(m.per_query[0].values["map"], 1.0 / 3.0);
    }

    #[test]
    fn a_run_sharing_no_query_with_the_qrels_is_an_error_not_zeros() {
        // Before, every mean printed as -0.0000 (an empty f64 sum is -0.0).
        let qrels = Qrels::parse("q9 0 d1 1\n", "qrels").unwrap();
        let err = evaluate(&qrels, &run(), &TrecOptions::default()).unwrap_err().to_string();
        assert!(err.starts_with("no query of the run is in the qrels (1 judged queries, 3 run queries)"), "{err}");
        let r = evaluate(&qrels, &run(), &TrecOptions { complete: true, ..Default::default() }).unwrap();
        assert_eq!((r.num_q, r.mean.values["map"].to_bits()), (1, 0f64.to_bits()));
        let err = evaluate(&Qrels::parse("", "qrels").unwrap(), &run(), &TrecOptions::default()).unwrap_err();
        assert_eq!(err.to_string(), "the qrels judge no query: nothing to evaluate");
    }

    #[test]
    fn tie_order_changes_the_result_as_in_trec_eval() {
        // Two docs tie; only the one with the smaller docno is relevant → it ranks second.
        let qrels = Qrels::parse("q 0 a 1\n", "qrels").unwrap();
        let run = Run::parse("q Q0 a 1 1.0 t\nq Q0 b 2 1.0 t\n", "run").unwrap();
        let r = evaluate(&qrels, &run, &TrecOptions::default()).unwrap();
        close(r.mean.values["recip_rank"], 0.5);
        assert_eq!(run.to_trec("x"), "q Q0 b 1 1 x\nq Q0 a 2 1 x\n");
        // -0 ties with 0.
        let run = Run::parse("q Q0 a 1 -0.0 t\nq Q0 b 2 0 t\n", "run").unwrap();
        close(evaluate(&qrels, &run, &TrecOptions::default()).unwrap().mean.values["recip_rank"], 0.5);
    }

    #[test]
    fn a_negative_relevance_level_never_makes_unjudged_documents_relevant() {
        // Found by tests/fuzz.rs: at level -1, unjudged d was relevant in the ranking but not in
        // num_rel, and map came out as 2.
        let qrels = Qrels::parse("q 0 a 2\n", "qrels").unwrap();
        let run = Run::parse("q Q0 d 1 2 t\nq Q0 a 2 1 t\n", "run").unwrap();
        let r = evaluate(&qrels, &run, &TrecOptions { relevance_level: -1, ..Default::default() }).unwrap();
        close(r.mean.values["map"], 0.5);
        close(r.mean.values["recip_rank"], 0.5);
        close(r.mean.values["num_rel_ret"], 1.0);
        // A judged negative value is a judgement: relevant at a level at or below it.
        let qrels = Qrels::parse("q 0 a 2\nq 0 d -3\n", "qrels").unwrap();
        let r = evaluate(&qrels, &run, &TrecOptions { relevance_level: -3, ..Default::default() }).unwrap();
        close(r.mean.values["map"], 1.0);
        close(r.mean.values["num_rel"], 2.0);
    }

    #[test]
    fn malformed_files_name_the_line() {
        let e = Qrels::parse("q 0 d 1\nq 0 d\n", "qrels.tsv").unwrap_err();
        assert_eq!(e.to_string(), "qrels.tsv:2: expected 4 fields `qid iter docno rel`, found 3");
        let e = Qrels::parse("q 0 d x\n", "qrels.tsv").unwrap_err();
        assert!(e.to_string().contains("not an integer"));
        let e = Run::parse("q Q0 d 1 high t\n", "run").unwrap_err();
        assert_eq!(e.to_string(), "run:1: score \"high\" is not a number");
        let dup = Run::parse("q Q0 d 1 1 t\nq Q0 d 2 0.5 t\n", "run").unwrap();
        let e = evaluate(&Qrels::parse("q 0 d 1\n", "q").unwrap(), &dup, &TrecOptions::default()).unwrap_err();
        assert!(e.to_string().contains("appears twice"));
        assert!(parse_topics("1\tquery\nbroken\n", "topics").unwrap_err().to_string().starts_with("topics:2:"));
        assert!(parse_corpus("{\"docid\": \"1\"}\n", "corpus").unwrap_err().to_string().starts_with("corpus:1:"));
    }
}
