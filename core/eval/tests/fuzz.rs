//! Fuzz targets of mlr-eval's TREC readers (see mlr-fuzz), and of trec_eval's measures on whatever
//! they accept: no number outside its range, ever.

use mlr_eval::trec::{evaluate, parse_corpus, parse_topics, Qrels, Run, TrecOptions};
use mlr_fuzz::proptest::prelude::{any, Strategy as _};
use mlr_fuzz::proptest::sample::select;
use mlr_fuzz::{check, text};

#[global_allocator]
static ALLOC: mlr_fuzz::LimitedAlloc = mlr_fuzz::LimitedAlloc;

const QRELS: &str = "101 0 doc-a 2\n101 0 doc-b 0\n101 0 doc-c 1\n102 0 doc-a 1\n102 0 doc-e 3\n103 0 x -1\n";
const RUN: &str = "101 Q0 doc-a 1 12.5 bm25\n101 Q0 doc-c 2 12.5 bm25\n101 Q0 doc-d 3 -3e2 bm25\n\
                   102 Q0 doc-b 1 0.25 bm25\n102 Q0 doc-a 2 0.125 bm25\n104 Q0 doc-z 1 1 bm25\n";

#[test]
fn qrels() {
    check("trec qrels", text(vec![QRELS.into()], 256), |bytes| {
        let Ok(qrels) = Qrels::parse(&bytes.lossy(), "qrels") else { return Ok(false) };
        // What it writes, it reads back the same.
        let again = Qrels::parse(&qrels.to_trec(), "qrels").map_err(|e| format!("written qrels do not parse: {e}"))?;
        (again == qrels).then_some(true).ok_or_else(|| "qrels change when written and read back".into())
    });
}

#[test]
fn run() {
    check("trec run", text(vec![RUN.into()], 256), |bytes| {
        let Ok(run) = Run::parse(&bytes.lossy(), "run") else { return Ok(false) };
        if run.queries.values().flatten().any(|(_, s)| s.is_nan()) {
            return Err("a NaN score was accepted".into());
        }
        let again = Run::parse(&run.to_trec("t"), "run").map_err(|e| format!("a written run does not parse: {e}"))?;
        for (qid, docs) in &run.queries {
            let sorted = |d: &[(String, f64)]| {
                let mut d: Vec<(String, u64)> = d.iter().map(|(n, s)| (n.clone(), s.to_bits())).collect();
                d.sort();
                d
            };
            if again.queries.get(qid).map(|d| sorted(d)) != Some(sorted(docs)) {
                return Err(format!("query {qid} changes when written and read back").into());
            }
        }
        Ok(true)
    });
}

#[test]
fn topics_and_corpus() {
    let topics = "101\twhat is a run\n102\t¿qué es un qrels?\n\n103\t  spaced  \n".to_string();
    let corpus =
        [r#"{"docid": "doc-a", "title": "A", "text": "alpha"}"#, r#"{"docid": "doc-b", "text": "β"}"#].join("\n");
    check("trec topics and corpus", text(vec![topics, corpus], 256), |bytes| {
        let text = bytes.lossy();
        let topics = parse_topics(&text, "topics");
        if let Ok(t) = &topics {
            if t.iter().any(|(q, text)| q.is_empty() || text.trim().is_empty() || q.contains('\t')) {
                return Err("an empty or tabbed topic was accepted".into());
            }
        }
        let corpus = parse_corpus(&text, "corpus");
        Ok(topics.is_ok() || corpus.is_ok())
    });
}

#[test]
fn measures_of_what_parses() {
    let options = (
        select(&[-1i64, 0, 1, 2, i64::MAX, i64::MIN][..]),
        any::<bool>(),
        select(&[None, Some(0usize), Some(1), Some(3)][..]),
        select(vec![vec![10usize], vec![0, 1, 2], vec![usize::MAX]]),
    )
        .prop_map(|(relevance_level, complete, max_docs, cuts)| TrecOptions {
            relevance_level,
            complete,
            max_docs,
            ndcg_at: cuts.clone(),
            recall_at: cuts.clone(),
            precision_at: cuts.clone(),
            mrr_at: cuts,
        });
    let strategy = (text(vec![QRELS.into()], 128), text(vec![RUN.into()], 128), options);
    check("trec measures", strategy, |(qrels, run, options)| {
        let (Ok(qrels), Ok(run)) = (Qrels::parse(&qrels.lossy(), "qrels"), Run::parse(&run.lossy(), "run")) else {
            return Ok(false);
        };
        let Ok(report) = evaluate(&qrels, &run, options) else { return Ok(false) };
        if report.num_q == 0 || report.per_query.len() != report.num_q {
            return Err(format!("{} queries averaged, {} reported", report.num_q, report.per_query.len()).into());
        }
        for m in report.per_query.iter().chain([&report.mean]) {
            for (name, &v) in &m.values {
                let ok = if name.starts_with("num_") { v >= 0.0 && v.fract() == 0.0 } else { (0.0..=1.0).contains(&v) };
                if !ok {
                    return Err(format!("{name} of {} is {v}", m.qid).into());
                }
            }
        }
        Ok(true)
    });
}
