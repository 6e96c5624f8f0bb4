//! `mlr eval`: encode a LAReQA-format set (or Tatoeba) with a model and score it.
//!
//! The flags are resolved once into an [`EvalPlan`] (`plan.rs`); what follows reads the plan only.
//! A LAReQA-format set is read once: the evaluated articles and, with `--center-langs`, the
//! articles the centering means are estimated on are both taken from it.

mod plan;

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use mlr_data::lareqa::{CandidateText, EvalIndex, LareqaSet, Split};
use mlr_embed::Role;
use mlr_eval::lareqa::{evaluate_per_query, LareqaInput, LareqaReport, QueryScores};
use mlr_eval::score::{dot_scores, tie_order, top};
use mlr_eval::trec::Qrels;
use mlr_model::Kernels;
use serde_json::json;

use plan::{Encoding, LareqaPlan, Task, Vectors};
pub use plan::{EvalArgs, EvalPlan};

use crate::backend::{BackendArg, CliBackend, OnBackend};
use crate::encoder::Encoder;
use crate::{cache_root, center, output};

impl OnBackend for EvalPlan {
    /// Runs `mlr eval`'s plan, encoding on backend `B`.
    fn run<B: CliBackend>(self, device: &B::Device, kernels: bool) -> Result<()> {
        run::<B>(&self, device, kernels)
    }
}

fn run<B: Kernels>(plan: &EvalPlan, device: &B::Device, kernels: bool) -> Result<()> {
    match &plan.task {
        Task::Tatoeba { langs, encoding } => {
            let (mut encoder, common) = open::<B>(encoding, kernels, device)?;
            run_tatoeba(plan, langs, &mut encoder, common)
        }
        Task::Lareqa(lareqa) => match &lareqa.vectors {
            Vectors::Encode(encoding) => {
                let (mut encoder, common) = open::<B>(encoding, kernels, device)?;
                run_lareqa(plan, lareqa, &mut encoder, common)
            }
            Vectors::File(path) => run_precomputed(plan, lareqa, path),
        },
    }
}

/// The encoder of `encoding`, and what every report says about it.
fn open<B: Kernels>(encoding: &Encoding, kernels: bool, device: &B::Device) -> Result<(Encoder<B>, serde_json::Value)> {
    let (encoder, model_sha) = Encoder::<B>::open(&encoding.spec, kernels, device)?;
    let common = json!({
        "model": portable(&encoding.spec.model.display().to_string()),
        "model_sha256": model_sha,
        "backend": match (encoding.backend, kernels) {
            (BackendArg::Cpu, _) => "cpu (burn ndarray)",
            (BackendArg::Wgpu, true) => "wgpu (mlr kernels)",
            (BackendArg::Wgpu, false) => "wgpu (plain burn, --no-kernels)",
        },
        "machine": machine(),
        "command": command_line(),
    });
    Ok((encoder, common))
}

/// The evaluated articles of `full` (the set of the plan's languages), checked and described.
fn evaluated<'a>(plan: &EvalPlan, lareqa: &LareqaPlan, full: &'a LareqaSet) -> Result<Cow<'a, LareqaSet>> {
    let set = lareqa.articles(full, lareqa.split);
    if set.questions.is_empty() {
        bail!("no questions in {} for split {}", plan.data.display(), lareqa.split.name());
    }
    eprintln!(
        "{}: {} languages, {} articles, {} questions, {} candidates",
        plan.data.display(),
        set.langs.len(),
        set.articles.len(),
        set.questions.len(),
        set.candidates.len()
    );
    Ok(set)
}

fn run_lareqa<B: Kernels>(
    plan: &EvalPlan,
    lareqa: &LareqaPlan,
    encoder: &mut Encoder<B>,
    common: serde_json::Value,
) -> Result<()> {
    let lang_refs: Vec<&str> = lareqa.langs.iter().map(String::as_str).collect();
    let full = LareqaSet::load_dir(&plan.data, &lang_refs)?;
    let set = evaluated(plan, lareqa, &full)?;
    let index = set.eval_index(lareqa.max_questions);
    let mode = lareqa.candidates;
    let candidate_texts: Vec<String> = (0..set.candidates.len()).map(|i| set.candidate_text(i, mode)).collect();
    let query_texts: Vec<String> = index.questions.iter().map(|&q| set.questions[q].text.clone()).collect();
    let mut cand_vecs = encoder.encode(&candidate_texts, Role::Passage, "candidates")?.concat();
    let mut query_vecs = encoder.encode(&query_texts, Role::Query, "queries")?.concat();
    let dim = encoder.embedder.dim();
    if let Some(on) = lareqa.center {
        let split = lareqa.split;
        if on == split || on == Split::All || split == Split::All {
            eprintln!(
                "warning: centering means are estimated on articles that are also evaluated (--split {} --center-langs {})",
                split.name(),
                on.name()
            );
        }
        let est = lareqa.articles(&full, on);
        let texts: Vec<String> = (0..est.candidates.len()).map(|i| est.candidate_text(i, mode)).collect();
        let c = encoder.encode(&texts, Role::Passage, "centering candidates")?.concat();
        let c_lang: Vec<usize> = est.candidates.iter().map(|c| c.lang).collect();
        let texts: Vec<String> = est.questions.iter().map(|q| q.text.clone()).collect();
        let q = encoder.encode(&texts, Role::Query, "centering queries")?.concat();
        let q_lang: Vec<usize> = est.questions.iter().map(|q| q.lang).collect();
        let n = set.langs.len();
        let (c_means, q_means) =
            (center::language_means(&c, &c_lang, n, dim), center::language_means(&q, &q_lang, n, dim));
        for (l, lang) in set.langs.iter().enumerate() {
            if c_means[l].is_none() || q_means[l].is_none() {
                eprintln!("warning: no {} questions or candidates in {lang}: its vectors are not centred", on.name());
            }
        }
        center::center(&mut cand_vecs, &index.candidate_lang, &c_means, dim);
        center::center(&mut query_vecs, &index.query_lang, &q_means, dim);
        eprintln!(
            "centred each language on the means of {} {} questions and {} candidates",
            est.questions.len(),
            on.name(),
            est.candidates.len()
        );
    }
    let stats = (encoder.stats.json(), encoder.stats.line());
    score_and_report(plan, lareqa, &set, &index, &cand_vecs, &query_vecs, dim, &common, stats)
}

/// `mlr eval --vectors`: the vectors come from a file of `mlr demo build`, written for every
/// language of the directory; the plan's languages are taken from that set.
fn run_precomputed(plan: &EvalPlan, lareqa: &LareqaPlan, path: &Path) -> Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let file = mlr_demo::VectorFile::decode(&bytes).with_context(|| format!("reading {}", path.display()))?;
    let all_langs = LareqaSet::dir_langs(&plan.data)?;
    let all_refs: Vec<&str> = all_langs.iter().map(String::as_str).collect();
    let every_lang = LareqaSet::load_dir(&plan.data, &all_refs)?;
    let rows = mlr_demo::Rows::new(&every_lang, &file)
        .with_context(|| format!("{} does not match {}", path.display(), plan.data.display()))?;
    let full = if lareqa.langs == all_langs {
        Cow::Borrowed(&every_lang)
    } else {
        let lang_refs: Vec<&str> = lareqa.langs.iter().map(String::as_str).collect();
        Cow::Owned(every_lang.restrict_langs(&lang_refs).context("--langs")?)
    };
    let set = evaluated(plan, lareqa, &full)?;
    let index = set.eval_index(lareqa.max_questions);
    let (cands, queries) = rows.gather(&file, &set, &index)?;
    let common = json!({
        "model": portable(&path.display().to_string()),
        "model_sha256": mlr_demo::sha256_hex(&bytes),
        "backend": format!(
            "precomputed vectors ({}, mlr demo build)",
            mlr_demo::VectorFile::format_of(&bytes).map_or("?", |f| f.name())
        ),
        "machine": machine(),
        "command": command_line(),
    });
    let stats = (
        json!({"precomputed": portable(&path.display().to_string())}),
        format!("precomputed vectors from {}.", portable(&path.display().to_string())),
    );
    score_and_report(plan, lareqa, &set, &index, &cands, &queries, file.dim, &common, stats)
}

#[allow(clippy::too_many_arguments)]
fn score_and_report(
    plan: &EvalPlan,
    lareqa: &LareqaPlan,
    set: &LareqaSet,
    index: &EvalIndex,
    cand_vecs: &[f32],
    query_vecs: &[f32],
    dim: usize,
    common: &serde_json::Value,
    (stats_json, stats_line): (serde_json::Value, String),
) -> Result<()> {
    let input = LareqaInput::from_index(index, cand_vecs, query_vecs, dim);
    let start = Instant::now();
    let (report, per_query) = evaluate_per_query(&input, &lareqa.options)?;
    let scoring_seconds = start.elapsed().as_secs_f64();
    eprintln!(
        "scored {} queries × {} candidates in {scoring_seconds:.1} s",
        index.questions.len(),
        set.candidates.len()
    );
    let table = report.markdown();
    println!("{table}");

    if let Some((path, depth)) = &lareqa.trec_run {
        write_trec(path, &input, set, index, *depth)?;
    }
    if let Some(path) = &lareqa.per_query {
        write_per_query(path, index, &per_query)?;
    }
    if let Some(out) = &plan.out {
        let dataset = plan.data.file_name().map_or("data".into(), |n| n.to_string_lossy().to_string());
        let value = lareqa_json(&report, common, &dataset, plan, lareqa, stats_json, scoring_seconds);
        let name = match &lareqa.vectors {
            Vectors::File(v) => v.file_name().map_or("vectors".into(), |n| n.to_string_lossy().to_string()),
            Vectors::Encode(e) => e.spec.model.file_name().map_or("model".into(), |n| n.to_string_lossy().to_string()),
        };
        let mut md = format!(
            "# {} on {dataset} ({} split)\n\nCommand: `{}`\n\nModel: `{}` (sha256 {}). Candidates: {}. {} queries × {} candidates.\nmAP is full-depth; Mo./Mul. macro over query languages, Cr. over the {} ordered language pairs. Rank distance: mean of max − min rank of a query's parallel answers in the pooled ranking (lower is fairer).\n\n",
            name,
            lareqa.split.name(),
            common["command"].as_str().unwrap_or(""),
            common["model"].as_str().unwrap_or(""),
            &common["model_sha256"].as_str().unwrap_or("")[..16],
            value["candidates"].as_str().unwrap_or(""),
            report.n_queries,
            report.n_candidates,
            report.pairs.iter().filter(|p| p.query_lang != p.corpus_lang).count(),
        );
        if let Some(n) = lareqa.max_questions {
            md += &format!("Questions: the first {n} question ids of the split, in every language.\n\n");
        }
        if let Some(on) = lareqa.center {
            md += &format!("Language centering: each language's mean query and mean candidate vector on the {} articles subtracted, vectors re-normalised.\n\n", on.name());
        }
        md += &table;
        md += &format!("\nEncoding: {stats_line}\n");
        write_outputs(out, &value, &md)?;
    }
    Ok(())
}

/// One JSON line per question: its id and language, then [`QueryScores`] with languages by name.
fn write_per_query(path: &Path, index: &EvalIndex, scores: &[QueryScores]) -> Result<()> {
    output::write_with(path, |file| {
        for (q, s) in scores.iter().enumerate() {
            let ap: serde_json::Map<String, serde_json::Value> =
                index.langs.iter().zip(&s.ap).filter_map(|(l, ap)| ap.map(|ap| (l.clone(), json!(ap)))).collect();
            let line = json!({
                "id": index.question_ids[q],
                "lang": index.langs[index.query_lang[q]],
                "ap": ap,
                "multi": s.multi,
                "rank_distance": s.rank_distance,
            });
            writeln!(file, "{line}")?;
        }
        Ok(())
    })?;
    eprintln!("wrote {} ({} questions)", path.display(), scores.len());
    Ok(())
}

fn lareqa_json(
    r: &LareqaReport,
    common: &serde_json::Value,
    dataset: &str,
    plan: &EvalPlan,
    lareqa: &LareqaPlan,
    stats: serde_json::Value,
    scoring_seconds: f64,
) -> serde_json::Value {
    let map = |s: &Option<mlr_eval::lareqa::SettingScore>| s.as_ref().map(|s| s.map);
    let rec = |s: &Option<mlr_eval::lareqa::SettingScore>, k: usize| s.as_ref().and_then(|s| s.recall.get(&k).copied());
    json!({
        "model": common["model"],
        "dataset": dataset,
        "split": lareqa.split.name(),
        "langs": r.langs,
        "n_queries": r.n_queries,
        "n_candidates": r.n_candidates,
        "mAP_mono": map(&r.mono),
        "mAP_cross": map(&r.cross),
        "mAP_multi": map(&r.multi),
        "R@1_mono": rec(&r.mono, 1),
        "R@1_cross": rec(&r.cross, 1),
        "R@10_multi": rec(&r.multi, 10),
        "rank_distance": r.rank_distance,
        "rank_correlation": r.rank_correlation,
        "per_lang": r.per_lang,
        "pairs": r.pairs,
        "correlation_pairs": r.correlation_pairs,
        "options": r.options,
        "candidates": match lareqa.candidates { CandidateText::Sentence => "sentence", CandidateText::SentenceContext => "sentence-context" },
        "center_langs": lareqa.center.map(Split::name),
        "data_dir": portable(&plan.data.display().to_string()),
        "model_sha256": common["model_sha256"],
        "backend": common["backend"],
        "machine": common["machine"],
        "encode": stats,
        "max_questions": lareqa.max_questions,
        "scoring_seconds": scoring_seconds,
        "command": common["command"],
    })
}

/// The pooled (Mul.) ranking of every query as a TREC run, and the matching qrels.
fn write_trec(path: &Path, input: &LareqaInput, set: &LareqaSet, index: &EvalIndex, depth: usize) -> Result<()> {
    let nc = input.candidate_lang.len();
    let depth = if depth == 0 { nc } else { depth };
    let ties = tie_order(input.candidate_ids);
    let qid = |q: usize| format!("{}-{}", set.langs[index.query_lang[q]], index.question_ids[q]);
    output::write_with(path, |run_file| {
        let block = 256;
        let mut scores = vec![0f32; block * nc];
        let nq = input.query_lang.len();
        for start in (0..nq).step_by(block) {
            let rows = block.min(nq - start);
            let out = &mut scores[..rows * nc];
            dot_scores(&input.queries[start * input.dim..(start + rows) * input.dim], input.candidates, input.dim, out);
            for r in 0..rows {
                let row = &out[r * nc..(r + 1) * nc];
                let id = qid(start + r);
                for (rank, c) in top(row, &ties, depth).into_iter().enumerate() {
                    writeln!(run_file, "{id} Q0 {} {} {} mlr", input.candidate_ids[c], rank + 1, row[c])?;
                }
            }
        }
        Ok(())
    })?;
    let mut qrels = Qrels::default();
    for (q, rel) in input.relevant.iter().enumerate() {
        let docs = qrels.queries.entry(qid(q)).or_default();
        for &c in rel {
            docs.insert(input.candidate_ids[c].clone(), 1);
        }
    }
    let qrels_path = PathBuf::from(format!("{}.qrels", path.display()));
    output::write_bytes(&qrels_path, qrels.to_trec().as_bytes())?;
    eprintln!("wrote {} (depth {depth}) and {}", path.display(), qrels_path.display());
    Ok(())
}

fn run_tatoeba<B: Kernels>(
    plan: &EvalPlan,
    langs: &[String],
    encoder: &mut Encoder<B>,
    common: serde_json::Value,
) -> Result<()> {
    let mut pairs = mlr_data::tatoeba::load_dir(&plan.data)?;
    if !langs.is_empty() {
        pairs.retain(|p| langs.contains(&p.lang));
        if pairs.is_empty() {
            bail!("none of {:?} in {}", langs, plan.data.display());
        }
    }
    let dim = encoder.embedder.dim();
    let mut rows = Vec::new();
    let mut table = String::from("| lang | pairs | x→en accuracy | en→x accuracy |\n|---|---:|---:|---:|\n");
    for p in &pairs {
        // Bitext mining is symmetric: both sides get E5's "query: " prefix.
        let other = encoder.encode(&p.other, Role::Query, &format!("{} sentences", p.lang))?.concat();
        let english = encoder.encode(&p.english, Role::Query, &format!("{}-eng English sentences", p.lang))?.concat();
        let x_en = mlr_eval::bitext::accuracy(&other, &english, dim)?;
        let en_x = mlr_eval::bitext::accuracy(&english, &other, dim)?;
        table += &format!("| {} | {} | {:.4} | {:.4} |\n", p.lang, p.other.len(), x_en, en_x);
        rows.push(json!({"lang": p.lang, "pairs": p.other.len(), "x_to_en": x_en, "en_to_x": en_x}));
    }
    let mean = |k: &str| rows.iter().map(|r| r[k].as_f64().unwrap_or(0.0)).sum::<f64>() / rows.len() as f64;
    let (mx, me) = (mean("x_to_en"), mean("en_to_x"));
    table += &format!("| **mean** | | **{mx:.4}** | **{me:.4}** |\n");
    println!("{table}");
    if let Some(out) = &plan.out {
        let value = json!({
            "model": common["model"], "dataset": "tatoeba", "langs": pairs.iter().map(|p| p.lang.clone()).collect::<Vec<_>>(),
            "mean_x_to_en": mx, "mean_en_to_x": me, "per_lang": rows,
            "prefix": "query: (both sides)", "model_sha256": common["model_sha256"], "backend": common["backend"],
            "machine": common["machine"], "encode": encoder.stats.json(), "command": common["command"],
        });
        let md = format!(
            "# Tatoeba bitext retrieval\n\nCommand: `{}`\n\nAccuracy of nearest-neighbour retrieval of the aligned translation (cosine; both sides with the `query: ` prefix).\n\n{table}\nEncoding: {}\n",
            common["command"].as_str().unwrap_or(""),
            encoder.stats.line()
        );
        write_outputs(out, &value, &md)?;
    }
    Ok(())
}

/// One path (or `--flag=path` argument) made portable, for reports that are committed and compared
/// across machines: under the cache directory it starts with `$MLR_CACHE`, under the working
/// directory it becomes relative, under the home directory it starts with `~`.
pub(crate) fn portable(text: &str) -> String {
    let dirs = [
        (Some(cache_root()), "$MLR_CACHE"),
        (std::env::current_dir().ok(), "."),
        (std::env::var_os("HOME").map(PathBuf::from), "~"),
    ];
    let dirs: Vec<(String, &str)> =
        dirs.into_iter().filter_map(|(d, with)| Some((d?.display().to_string(), with))).collect();
    portable_under(text, &dirs)
}

fn portable_under(text: &str, dirs: &[(String, &str)]) -> String {
    if let Some((flag, value)) = text.split_once('=').filter(|(flag, _)| flag.starts_with("--")) {
        return format!("{flag}={}", portable_under(value, dirs));
    }
    for (dir, with) in dirs.iter().filter(|(d, _)| d.len() > 1) {
        if text == dir {
            return with.to_string();
        }
        if let Some(rest) = text.strip_prefix(dir.as_str()).and_then(|r| r.strip_prefix('/')) {
            return if *with == "." { rest.to_string() } else { format!("{with}/{rest}") };
        }
    }
    text.to_string()
}

pub(crate) fn command_line() -> String {
    // Lossy: a non-UTF-8 argument (a file name, say) is recorded with U+FFFD, never a panic.
    let mut args: Vec<String> = std::env::args_os().map(|a| portable(&a.to_string_lossy())).collect();
    args[0] = "mlr".into();
    args.iter()
        .map(|a| if a.contains(char::is_whitespace) || a.is_empty() { format!("'{a}'") } else { a.clone() })
        .collect::<Vec<_>>()
        .join(" ")
}

/// CPU model, core count and OS, for the record (`null` cores where they cannot be read).
pub fn machine() -> serde_json::Value {
    let m = mlr_embed::machine::Machine::this();
    json!({"cpu": m.cpu.unwrap_or_else(|| "unknown".into()), "cores": m.cores, "os": m.os})
}

fn write_outputs(out: &Path, report: &serde_json::Value, markdown: &str) -> Result<()> {
    let md = out.with_extension("md");
    output::write_bytes(out, (serde_json::to_string_pretty(report)? + "\n").as_bytes())?;
    output::write_bytes(&md, markdown.as_bytes())?;
    eprintln!("wrote {} and {}", out.display(), md.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::portable_under;

    #[test]
    fn report_paths_are_portable() {
        let dirs = [
            ("/home/u/.cache/mlr".to_string(), "$MLR_CACHE"),
            ("/home/u/src/mlr".to_string(), "."),
            ("/home/u".to_string(), "~"),
        ];
        let p = |t: &str| portable_under(t, &dirs);
        assert_eq!(p("/home/u/.cache/mlr/runs/hybrid-s1/best"), "$MLR_CACHE/runs/hybrid-s1/best");
        assert_eq!(p("/home/u/src/mlr/data/xquad-r"), "data/xquad-r");
        assert_eq!(p("--out=/home/u/notes/x.json"), "--out=~/notes/x.json");
        assert_eq!(p("/home/u"), "~");
        // Only whole path components: a sibling directory and other text stay as they are.
        assert_eq!(p("/home/user2/x"), "/home/user2/x");
        assert_eq!(p("data/xquad-r"), "data/xquad-r");
        assert_eq!(p("a=b"), "a=b");
    }
}
