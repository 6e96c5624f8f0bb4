//! LAReQA-style retrieval over a multilingual pool of candidates (XQuAD-R, MLQA-R).
//!
//! Every query has a set of relevant candidates (for XQuAD-R: the answer sentence of the same
//! question in each language). Candidates are ranked by dot product (cosine for unit vectors),
//! ties broken as trec_eval does (see [`crate::score`]). For a query in language X:
//!
//! - **Mo.** (monolingual): rank the candidates of language X only; relevant = those in X.
//! - **Cr.** (cross-lingual): for each corpus language Y ≠ X, rank the candidates of Y only;
//!   relevant = those in Y. Scored per ordered pair (X, Y).
//! - **Mul.** (multilingual): rank the pooled candidates of all languages; relevant = all of them.
//!
//! In each setting a query without a relevant candidate is skipped (partially parallel sets).
//!
//! - **AP** (full depth): with the relevant candidates at ranks r₁ < … < r_R,
//!   AP = (1/R) Σᵢ i / rᵢ. **mAP** is its mean over queries. Macro averages: Mo. and Mul. over query
//!   languages; Cr. over ordered pairs (X, Y), X ≠ Y. A language's Cr. row averages its pairs.
//! - **R@k**: the share of a query's relevant candidates ranked in the top k, averaged like mAP.
//! - **Rank distance** (language bias, the paper's measure, after Huang et al. 2023): in the Mul.
//!   setting, max rᵢ − min rᵢ over a query's relevant candidates; mean over the queries of a language
//!   (those with at least two relevant candidates), then macro over languages. Lower is fairer.
//! - **Language preference rate @k**: for a query in X, the share of the top k of the pooled ranking
//!   that is in X; averaged over the queries of X and reported beside X's share of the pool
//!   (`pool_share`) and their ratio (`ratio`; 1 = no preference for the query's own language).
//! - **Mean rank correlation**: for two parallel queries (same group, languages a ≠ b), Spearman's
//!   ρ between their full pooled rankings, ρ = 1 − 6 Σ d² / (n (n² − 1)) with d the difference of a
//!   candidate's two ranks (rankings have no ties, see [`crate::score`]); averaged over the groups
//!   per language pair, then over pairs. 1 means the query language does not change the ranking.

use std::collections::BTreeMap;

use mlr_data::lareqa::EvalIndex;
use serde::{Deserialize, Serialize};

use crate::score::{check_scorable, dot_scores, precedes, rank_key, tie_order};
use crate::EvalError;

/// Embeddings and relevance of one evaluation.
#[derive(Debug, Clone, Copy)]
pub struct LareqaInput<'a> {
    /// Language codes; `candidate_lang` and `query_lang` index into it.
    pub langs: &'a [String],
    /// Distinct candidate ids (they break ties, as docnos do in trec_eval).
    pub candidate_ids: &'a [String],
    /// Language of each candidate.
    pub candidate_lang: &'a [usize],
    /// Candidate vectors, row-major `[n_candidates × dim]`.
    pub candidates: &'a [f32],
    /// Language of each query.
    pub query_lang: &'a [usize],
    /// Group of each query: parallel queries (translations of one question) share a group.
    pub query_group: &'a [usize],
    /// Relevant candidates of each query.
    pub relevant: &'a [Vec<usize>],
    /// Query vectors, row-major `[n_queries × dim]`.
    pub queries: &'a [f32],
    /// Vector dimension.
    pub dim: usize,
}

impl<'a> LareqaInput<'a> {
    /// The input for the questions and candidates of `index` (a LAReQA set's evaluation layout),
    /// with their vectors in that order: `candidates` `[n_candidates × dim]`, `queries`
    /// `[index.questions × dim]`.
    pub fn from_index(index: &'a EvalIndex, candidates: &'a [f32], queries: &'a [f32], dim: usize) -> Self {
        LareqaInput {
            langs: &index.langs,
            candidate_ids: &index.candidate_ids,
            candidate_lang: &index.candidate_lang,
            candidates,
            query_lang: &index.query_lang,
            query_group: &index.query_group,
            relevant: &index.relevant,
            queries,
            dim,
        }
    }
}

/// What to compute beyond mAP and rank distance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LareqaOptions {
    /// Cut-offs of Recall@k (every setting).
    pub recall_at: Vec<usize>,
    /// k of the language preference rate.
    pub preference_at: usize,
    /// Compute the mean rank correlation (sorts every pooled ranking: the slowest measure).
    pub rank_correlation: bool,
    /// Worker threads natively (0 = all cores); the browser always uses one.
    pub threads: usize,
}

impl Default for LareqaOptions {
    fn default() -> Self {
        Self { recall_at: vec![1, 5, 10, 20, 100], preference_at: 10, rank_correlation: true, threads: 0 }
    }
}

/// AP and recall of one query in one setting.
#[derive(Debug, Clone, PartialEq)]
struct QueryScore {
    ap: f64,
    recall: Vec<f64>,
}

impl QueryScore {
    /// From the 1-based ranks of the relevant candidates.
    fn from_ranks(ranks: &mut [u32], recall_at: &[usize]) -> Self {
        ranks.sort_unstable();
        let r = ranks.len() as f64;
        let ap = ranks.iter().enumerate().map(|(i, &rank)| (i + 1) as f64 / rank as f64).sum::<f64>() / r;
        let recall =
            recall_at.iter().map(|&k| ranks.iter().filter(|&&rank| rank as usize <= k).count() as f64 / r).collect();
        Self { ap, recall }
    }
}

#[derive(Debug, Clone)]
struct QueryResult {
    per_corpus: Vec<Option<QueryScore>>,
    multi: Option<QueryScore>,
    rank_distance: Option<f64>,
    own_share: Option<f64>,
}

/// What one block of queries yields: each query's result, by query index, and the rank correlation
/// ρ of each pair of a group's queries in different languages, as `(lang a, lang b, ρ)` with a < b.
type BlockOutput = (Vec<(usize, QueryResult)>, Vec<(usize, usize, f64)>);

/// mAP and Recall@k of one setting (or one language, or one pair).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SettingScore {
    /// Mean average precision.
    pub map: f64,
    /// Recall@k by k.
    pub recall: BTreeMap<usize, f64>,
    /// Queries (or, for macro averages, the pairs/languages) averaged.
    pub n: usize,
}

/// Language preference of one query language.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preference {
    /// k of the top-k.
    pub k: usize,
    /// Mean share of the top k that is in the query's language.
    pub own_share: f64,
    /// The language's share of the pool.
    pub pool_share: f64,
    /// `own_share / pool_share` (1 = no preference).
    pub ratio: f64,
}

/// One query language.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LangReport {
    /// Language code.
    pub lang: String,
    /// Queries in this language.
    pub n_queries: usize,
    /// Candidates in this language.
    pub n_candidates: usize,
    /// Mo.: queries in X against candidates in X.
    pub mono: Option<SettingScore>,
    /// Cr.: mean over the corpus languages Y ≠ X of the pair scores.
    pub cross: Option<SettingScore>,
    /// Mul.: queries in X against the pool.
    pub multi: Option<SettingScore>,
    /// Mean rank distance of the queries in X.
    pub rank_distance: Option<f64>,
    /// Language preference rate (none without queries, or without candidates in the language).
    pub preference: Option<Preference>,
    /// Mean rank correlation of this language's queries with their parallel queries.
    pub rank_correlation: Option<f64>,
}

/// One ordered pair (query language, corpus language); X = Y is the Mo. setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairReport {
    /// Query language.
    pub query_lang: String,
    /// Corpus language.
    pub corpus_lang: String,
    /// mAP and Recall@k of the queries with a relevant candidate in the corpus language.
    pub score: SettingScore,
}

/// Mean Spearman ρ of one unordered language pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorrelationPair {
    /// First language.
    pub a: String,
    /// Second language.
    pub b: String,
    /// Mean ρ over the groups with a query in both.
    pub rho: f64,
    /// Groups averaged.
    pub n: usize,
}

/// Everything [`evaluate`] measures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LareqaReport {
    /// Language codes.
    pub langs: Vec<String>,
    /// Queries.
    pub n_queries: usize,
    /// Candidates in the pool.
    pub n_candidates: usize,
    /// Mo., macro over query languages.
    pub mono: Option<SettingScore>,
    /// Cr., macro over ordered pairs X ≠ Y.
    pub cross: Option<SettingScore>,
    /// Mul., macro over query languages.
    pub multi: Option<SettingScore>,
    /// Rank distance, macro over query languages.
    pub rank_distance: Option<f64>,
    /// Mean rank correlation over language pairs (when computed).
    pub rank_correlation: Option<f64>,
    /// Per query language.
    pub per_lang: Vec<LangReport>,
    /// Per ordered pair, X = Y included.
    pub pairs: Vec<PairReport>,
    /// Per unordered pair (when computed).
    pub correlation_pairs: Vec<CorrelationPair>,
    /// The options used.
    pub options: LareqaOptions,
}

fn check(input: &LareqaInput) -> Result<(), EvalError> {
    let nc = input.candidate_lang.len();
    let nq = input.query_lang.len();
    let shape = |m: String| Err(EvalError::Shape(m));
    if input.dim == 0 {
        return shape("dimension 0".into());
    }
    if input.candidates.len() != nc * input.dim || input.candidate_ids.len() != nc {
        return shape(format!(
            "{} candidate languages, {} ids and {} floats for dimension {}",
            nc,
            input.candidate_ids.len(),
            input.candidates.len(),
            input.dim
        ));
    }
    if input.queries.len() != nq * input.dim || input.query_group.len() != nq || input.relevant.len() != nq {
        return shape(format!(
            "{nq} query languages, {} groups, {} relevance lists and {} floats for dimension {}",
            input.query_group.len(),
            input.relevant.len(),
            input.queries.len(),
            input.dim
        ));
    }
    if nc >= u32::MAX as usize {
        return shape(format!("{nc} candidates: at most {} are supported", u32::MAX - 1));
    }
    let nl = input.langs.len();
    if let Some(l) = input.candidate_lang.iter().chain(input.query_lang).find(|&&l| l >= nl) {
        return shape(format!("language index {l} but only {nl} languages"));
    }
    for (q, rel) in input.relevant.iter().enumerate() {
        if let Some(&c) = rel.iter().find(|&&c| c >= nc) {
            return shape(format!("query {q}: relevant candidate {c} but only {nc} candidates"));
        }
        let mut sorted = rel.clone();
        sorted.sort_unstable();
        if sorted.windows(2).any(|w| w[0] == w[1]) {
            return shape(format!("query {q}: a relevant candidate is listed twice"));
        }
    }
    let mut ids: Vec<&str> = input.candidate_ids.iter().map(String::as_str).collect();
    ids.sort_unstable();
    if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
        return shape(format!("candidate id {:?} is not unique", w[0]));
    }
    check_scorable(input.queries, input.candidates, input.dim)
}

/// Refuses a report with a value no correct evaluation gives. [`evaluate`] runs it as a guard
/// ([`check`] makes every score finite, so its failing there is a bug in this module, never a
/// number shown to anyone); readers of stored reports run it too (the demo's `manifest.json`,
/// whose reports the page shows).
pub fn check_ranges(report: &LareqaReport) -> Result<(), EvalError> {
    fn within(
        measure: &dyn Fn() -> String,
        value: f64,
        lo: f64,
        hi: f64,
        range: &'static str,
    ) -> Result<(), EvalError> {
        if value.is_finite() && (lo..=hi).contains(&value) {
            Ok(())
        } else {
            Err(EvalError::OutOfRange { measure: measure(), value, range })
        }
    }
    let setting = |name: &str, s: &Option<SettingScore>| -> Result<(), EvalError> {
        let Some(s) = s else { return Ok(()) };
        within(&|| format!("{name} mAP"), s.map, 0.0, 1.0, "[0, 1]")?;
        for (k, &r) in &s.recall {
            within(&|| format!("{name} Recall@{k}"), r, 0.0, 1.0, "[0, 1]")?;
        }
        Ok(())
    };
    let nc = report.n_candidates as f64;
    let optional = |name: &str, v: Option<f64>, lo: f64, hi: f64, range| match v {
        Some(v) => within(&|| name.to_string(), v, lo, hi, range),
        None => Ok(()),
    };
    setting("Mo.", &report.mono)?;
    setting("Cr.", &report.cross)?;
    setting("Mul.", &report.multi)?;
    optional("rank distance", report.rank_distance, 0.0, nc, "[0, candidates]")?;
    optional("rank correlation", report.rank_correlation, -1.0, 1.0, "[-1, 1]")?;
    for l in &report.per_lang {
        setting(&format!("{} Mo.", l.lang), &l.mono)?;
        setting(&format!("{} Cr.", l.lang), &l.cross)?;
        setting(&format!("{} Mul.", l.lang), &l.multi)?;
        optional(&format!("{} rank distance", l.lang), l.rank_distance, 0.0, nc, "[0, candidates]")?;
        optional(&format!("{} rank correlation", l.lang), l.rank_correlation, -1.0, 1.0, "[-1, 1]")?;
        if let Some(p) = &l.preference {
            within(&|| format!("{} own share", l.lang), p.own_share, 0.0, 1.0, "[0, 1]")?;
            within(&|| format!("{} pool share", l.lang), p.pool_share, 0.0, 1.0, "[0, 1]")?;
            within(&|| format!("{} preference ratio", l.lang), p.ratio, 0.0, f64::MAX, "[0, ∞)")?;
        }
    }
    for p in &report.pairs {
        setting(&format!("{}→{}", p.query_lang, p.corpus_lang), &Some(p.score.clone()))?;
    }
    for c in &report.correlation_pairs {
        within(&|| format!("{}–{} rank correlation", c.a, c.b), c.rho, -1.0, 1.0, "[-1, 1]")?;
    }
    Ok(())
}

struct Ctx<'a> {
    input: &'a LareqaInput<'a>,
    options: &'a LareqaOptions,
    /// Tie key of each candidate (see [`tie_order`]).
    ties: Vec<u32>,
    /// The candidate of each tie key (the inverse permutation).
    by_tie: Vec<u32>,
}

impl Ctx<'_> {
    fn query(&self, q: usize, row: &[f32], full_ranks: Option<&mut Vec<u32>>) -> QueryResult {
        let input = self.input;
        let nl = input.langs.len();
        let rel = &input.relevant[q];
        let lang = input.query_lang[q];
        let mut result = QueryResult { per_corpus: vec![None; nl], multi: None, rank_distance: None, own_share: None };
        // Top-k share of the query's language.
        let nc = row.len();
        let k = self.options.preference_at.min(nc);
        if k > 0 {
            let mut keys: Vec<u64> = row.iter().zip(&self.ties).map(|(&s, &t)| rank_key(s, t)).collect();
            if let Some(ranks) = full_ranks {
                keys.sort_unstable();
                ranks.resize(nc, 0);
                for (position, &key) in keys.iter().enumerate() {
                    ranks[self.by_tie[(key & 0xffff_ffff) as usize] as usize] = position as u32;
                }
            } else if k < nc {
                keys.select_nth_unstable(k - 1);
            }
            let own = keys[..k]
                .iter()
                .filter(|&&key| input.candidate_lang[self.by_tie[(key & 0xffff_ffff) as usize] as usize] == lang)
                .count();
            result.own_share = Some(own as f64 / k as f64);
        }
        if rel.is_empty() {
            return result;
        }
        // Count, for each relevant candidate, the candidates of each language ranked before it.
        let threshold = rel.iter().map(|&r| row[r]).fold(f32::INFINITY, f32::min);
        let survivors: Vec<usize> = (0..nc).filter(|&c| row[c] >= threshold).collect();
        let mut before = vec![0u32; rel.len() * nl];
        for (i, &r) in rel.iter().enumerate() {
            let (sr, tr) = (row[r], self.ties[r]);
            let counts = &mut before[i * nl..(i + 1) * nl];
            for &c in &survivors {
                if precedes(row[c], self.ties[c], sr, tr) {
                    counts[input.candidate_lang[c]] += 1;
                }
            }
        }
        for (y, slot) in result.per_corpus.iter_mut().enumerate() {
            let mut ranks: Vec<u32> = rel
                .iter()
                .enumerate()
                .filter(|&(_, &r)| input.candidate_lang[r] == y)
                .map(|(i, _)| 1 + before[i * nl + y])
                .collect();
            if !ranks.is_empty() {
                *slot = Some(QueryScore::from_ranks(&mut ranks, &self.options.recall_at));
            }
        }
        let mut ranks: Vec<u32> =
            (0..rel.len()).map(|i| 1 + before[i * nl..(i + 1) * nl].iter().sum::<u32>()).collect();
        if ranks.len() >= 2 {
            let (lo, hi) = (ranks.iter().min().unwrap(), ranks.iter().max().unwrap());
            result.rank_distance = Some((hi - lo) as f64);
        }
        result.multi = Some(QueryScore::from_ranks(&mut ranks, &self.options.recall_at));
        result
    }

    /// Evaluates the queries of whole groups; returns per-query results and per-pair ρ values.
    fn block(&self, queries: &[usize], groups_start: &[usize]) -> BlockOutput {
        let input = self.input;
        let dim = input.dim;
        let nc = input.candidate_lang.len();
        let mut qbuf = Vec::with_capacity(queries.len() * dim);
        for &q in queries {
            qbuf.extend_from_slice(&input.queries[q * dim..(q + 1) * dim]);
        }
        let mut scores = vec![0f32; queries.len() * nc];
        dot_scores(&qbuf, input.candidates, dim, &mut scores);
        let mut results = Vec::with_capacity(queries.len());
        let mut rhos = Vec::new();
        let correlate = self.options.rank_correlation;
        for window in groups_start.windows(2) {
            let members = window[0]..window[1];
            let mut ranks: Vec<Vec<u32>> = Vec::new();
            for i in members.clone() {
                let row = &scores[i * nc..(i + 1) * nc];
                let mut full = Vec::new();
                let with_ranks = correlate && members.len() >= 2;
                let result = self.query(queries[i], row, if with_ranks { Some(&mut full) } else { None });
                results.push((queries[i], result));
                if with_ranks {
                    ranks.push(full);
                }
            }
            if ranks.len() >= 2 {
                let n = nc as f64;
                for a in 0..ranks.len() {
                    for b in a + 1..ranks.len() {
                        let (la, lb) =
                            (input.query_lang[queries[window[0] + a]], input.query_lang[queries[window[0] + b]]);
                        if la == lb {
                            continue;
                        }
                        let d2: f64 = ranks[a]
                            .iter()
                            .zip(&ranks[b])
                            .map(|(&x, &y)| {
                                let d = x as f64 - y as f64;
                                d * d
                            })
                            .sum();
                        let rho = if nc < 2 { 1.0 } else { 1.0 - 6.0 * d2 / (n * (n * n - 1.0)) };
                        rhos.push((la.min(lb), la.max(lb), rho));
                    }
                }
            }
        }
        (results, rhos)
    }
}

/// One query's scores, for statistics over queries (paired tests, bootstrap intervals): the
/// report's means are macro averages of these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryScores {
    /// AP against the candidates of each corpus language (index into `langs`; the query's own
    /// language is its Mo. AP, the others its Cr. APs); none where it has no relevant candidate.
    pub ap: Vec<Option<f64>>,
    /// AP against the pool (Mul.).
    pub multi: Option<f64>,
    /// Rank distance in the pool (with at least two relevant candidates).
    pub rank_distance: Option<f64>,
}

/// Runs the evaluation. Cost: one `[queries × candidates]` matrix product in blocks, then a pass
/// over each score row (a sort per row when the rank correlation is on).
pub fn evaluate(input: &LareqaInput, options: &LareqaOptions) -> Result<LareqaReport, EvalError> {
    evaluate_per_query(input, options).map(|(report, _)| report)
}

/// [`evaluate`], also returning every query's scores (in the order of `input.query_lang`).
pub fn evaluate_per_query(
    input: &LareqaInput,
    options: &LareqaOptions,
) -> Result<(LareqaReport, Vec<QueryScores>), EvalError> {
    check(input)?;
    let nq = input.query_lang.len();
    let nc = input.candidate_lang.len();
    let nl = input.langs.len();
    let ties = tie_order(input.candidate_ids);
    let mut by_tie = vec![0u32; nc];
    for (c, &t) in ties.iter().enumerate() {
        by_tie[t as usize] = c as u32;
    }
    let ctx = Ctx { input, options, ties, by_tie };

    // Queries ordered by group, cut into blocks of whole groups.
    let mut order: Vec<usize> = (0..nq).collect();
    order.sort_by_key(|&q| (input.query_group[q], q));
    let mut blocks: Vec<(Vec<usize>, Vec<usize>)> = Vec::new();
    let block_size = (4 << 20) / nc.max(1) + 1; // about 16 MB of scores per block
    let mut i = 0;
    while i < order.len() {
        let mut queries = Vec::new();
        let mut starts = vec![0];
        while i < order.len() && (queries.is_empty() || queries.len() < block_size) {
            let group = input.query_group[order[i]];
            while i < order.len() && input.query_group[order[i]] == group {
                queries.push(order[i]);
                i += 1;
            }
            starts.push(queries.len());
        }
        blocks.push((queries, starts));
    }

    let outputs = run_blocks(&ctx, &blocks, options.threads);
    let mut per_query: Vec<Option<QueryResult>> = vec![None; nq];
    let mut rho_sum = vec![0f64; nl * nl];
    let mut rho_n = vec![0usize; nl * nl];
    for (results, rhos) in outputs {
        for (q, r) in results {
            per_query[q] = Some(r);
        }
        for (a, b, rho) in rhos {
            rho_sum[a * nl + b] += rho;
            rho_n[a * nl + b] += 1;
        }
    }
    let per_query: Vec<QueryResult> = per_query.into_iter().map(|r| r.expect("every query evaluated")).collect();
    let report = aggregate(input, options, &per_query, &rho_sum, &rho_n, nc);
    check_ranges(&report)?;
    let scores = per_query
        .iter()
        .map(|r| QueryScores {
            ap: r.per_corpus.iter().map(|s| s.as_ref().map(|s| s.ap)).collect(),
            multi: r.multi.as_ref().map(|s| s.ap),
            rank_distance: r.rank_distance,
        })
        .collect();
    Ok((report, scores))
}

#[cfg(not(target_arch = "wasm32"))]
fn run_blocks(ctx: &Ctx, blocks: &[(Vec<usize>, Vec<usize>)], threads: usize) -> Vec<BlockOutput> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    let threads = if threads == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { threads };
    let threads = threads.min(blocks.len()).max(1);
    if threads == 1 {
        return blocks.iter().map(|(q, s)| ctx.block(q, s)).collect();
    }
    let next = AtomicUsize::new(0);
    let out = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let b = next.fetch_add(1, Ordering::Relaxed);
                let Some((q, s)) = blocks.get(b) else { break };
                let result = ctx.block(q, s);
                out.lock().expect("no worker panicked").push(result);
            });
        }
    });
    out.into_inner().expect("no worker panicked")
}

#[cfg(target_arch = "wasm32")]
fn run_blocks(ctx: &Ctx, blocks: &[(Vec<usize>, Vec<usize>)], _threads: usize) -> Vec<BlockOutput> {
    blocks.iter().map(|(q, s)| ctx.block(q, s)).collect()
}

fn mean(values: impl IntoIterator<Item = f64>) -> Option<(f64, usize)> {
    let (sum, n) = values.into_iter().fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| (sum / n as f64, n))
}

/// Mean of per-query scores.
fn mean_scores<'a>(scores: impl IntoIterator<Item = &'a QueryScore>, recall_at: &[usize]) -> Option<SettingScore> {
    let scores: Vec<&QueryScore> = scores.into_iter().collect();
    let (map, n) = mean(scores.iter().map(|s| s.ap))?;
    let recall = recall_at
        .iter()
        .enumerate()
        .map(|(j, &k)| (k, mean(scores.iter().map(|s| s.recall[j])).map_or(0.0, |m| m.0)))
        .collect();
    Some(SettingScore { map, recall, n })
}

/// Unweighted mean of setting scores (macro average); `n` counts the parts averaged.
fn macro_scores<'a>(parts: impl IntoIterator<Item = &'a SettingScore>) -> Option<SettingScore> {
    let parts: Vec<&SettingScore> = parts.into_iter().collect();
    let (map, n) = mean(parts.iter().map(|p| p.map))?;
    let recall =
        parts[0].recall.keys().map(|&k| (k, parts.iter().map(|p| p.recall[&k]).sum::<f64>() / n as f64)).collect();
    Some(SettingScore { map, recall, n })
}

fn aggregate(
    input: &LareqaInput,
    options: &LareqaOptions,
    per_query: &[QueryResult],
    rho_sum: &[f64],
    rho_n: &[usize],
    nc: usize,
) -> LareqaReport {
    let nl = input.langs.len();
    let recall_at = &options.recall_at;
    let mut pairs = Vec::new();
    let mut pair_score: Vec<Option<SettingScore>> = vec![None; nl * nl];
    for x in 0..nl {
        for y in 0..nl {
            let scores = per_query
                .iter()
                .zip(input.query_lang)
                .filter(|(_, &l)| l == x)
                .filter_map(|(r, _)| r.per_corpus[y].as_ref());
            if let Some(score) = mean_scores(scores, recall_at) {
                pairs.push(PairReport {
                    query_lang: input.langs[x].clone(),
                    corpus_lang: input.langs[y].clone(),
                    score: score.clone(),
                });
                pair_score[x * nl + y] = Some(score);
            }
        }
    }
    let mut cand_count = vec![0usize; nl];
    for &l in input.candidate_lang {
        cand_count[l] += 1;
    }
    let rho_pair = |a: usize, b: usize| {
        let (a, b) = (a.min(b), a.max(b));
        (rho_n[a * nl + b] > 0).then(|| rho_sum[a * nl + b] / rho_n[a * nl + b] as f64)
    };
    let mut per_lang = Vec::new();
    for x in 0..nl {
        let mine: Vec<&QueryResult> =
            per_query.iter().zip(input.query_lang).filter(|(_, &l)| l == x).map(|(r, _)| r).collect();
        let pool_share = cand_count[x] as f64 / nc.max(1) as f64;
        // Without candidates in the query's language there is no own language to prefer (0 / 0).
        let own_pool = mine.iter().filter_map(|r| r.own_share).filter(|_| cand_count[x] > 0);
        let preference = mean(own_pool).map(|(own_share, _)| Preference {
            k: options.preference_at.min(nc),
            own_share,
            pool_share,
            ratio: own_share / pool_share,
        });
        per_lang.push(LangReport {
            lang: input.langs[x].clone(),
            n_queries: mine.len(),
            n_candidates: cand_count[x],
            mono: pair_score[x * nl + x].clone(),
            cross: macro_scores((0..nl).filter(|&y| y != x).filter_map(|y| pair_score[x * nl + y].as_ref())),
            multi: mean_scores(mine.iter().filter_map(|r| r.multi.as_ref()), recall_at),
            rank_distance: mean(mine.iter().filter_map(|r| r.rank_distance)).map(|m| m.0),
            preference,
            rank_correlation: mean((0..nl).filter(|&y| y != x).filter_map(|y| rho_pair(x, y))).map(|m| m.0),
        });
    }
    let mut correlation_pairs = Vec::new();
    for a in 0..nl {
        for b in a + 1..nl {
            if let Some(rho) = rho_pair(a, b) {
                correlation_pairs.push(CorrelationPair {
                    a: input.langs[a].clone(),
                    b: input.langs[b].clone(),
                    rho,
                    n: rho_n[a * nl + b],
                });
            }
        }
    }
    LareqaReport {
        langs: input.langs.to_vec(),
        n_queries: per_query.len(),
        n_candidates: nc,
        mono: macro_scores(per_lang.iter().filter_map(|l| l.mono.as_ref())),
        cross: macro_scores(pairs.iter().filter(|p| p.query_lang != p.corpus_lang).map(|p| &p.score)),
        multi: macro_scores(per_lang.iter().filter_map(|l| l.multi.as_ref())),
        rank_distance: mean(per_lang.iter().filter_map(|l| l.rank_distance)).map(|m| m.0),
        rank_correlation: mean(correlation_pairs.iter().map(|p| p.rho)).map(|m| m.0),
        per_lang,
        pairs,
        correlation_pairs,
        options: options.clone(),
    }
}

impl LareqaReport {
    /// The paper-style table: a row per query language, Mo./Cr./Mul. mAP, R@1 Mo./Cr., R@10 Mul.,
    /// rank distance, and this crate's two extra bias measures; the last row is the macro average.
    pub fn markdown(&self) -> String {
        let f = |v: Option<f64>, digits: usize| v.map_or("–".to_string(), |v| format!("{v:.digits$}"));
        let map = |s: &Option<SettingScore>| s.as_ref().map(|s| s.map);
        let rec = |s: &Option<SettingScore>, k: usize| s.as_ref().and_then(|s| s.recall.get(&k).copied());
        let k = self.options.preference_at;
        let mut out = format!(
            "| lang | queries | mAP Mo. | mAP Cr. | mAP Mul. | R@1 Mo. | R@1 Cr. | R@10 Mul. | rank distance | own-language share of top {k} (pool share) | rank corr. |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        );
        for l in &self.per_lang {
            let pref = l
                .preference
                .as_ref()
                .map_or("–".to_string(), |p| format!("{:.3} ({:.3})", p.own_share, p.pool_share));
            out += &format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                l.lang,
                l.n_queries,
                f(map(&l.mono), 4),
                f(map(&l.cross), 4),
                f(map(&l.multi), 4),
                f(rec(&l.mono, 1), 4),
                f(rec(&l.cross, 1), 4),
                f(rec(&l.multi, 10), 4),
                f(l.rank_distance, 1),
                pref,
                f(l.rank_correlation, 3),
            );
        }
        let pref_mean =
            mean(self.per_lang.iter().filter_map(|l| l.preference.as_ref().map(|p| p.own_share))).map(|m| m.0);
        out += &format!(
            "| **mean** | {} | **{}** | **{}** | **{}** | {} | {} | {} | **{}** | {} | {} |\n",
            self.n_queries,
            f(map(&self.mono), 4),
            f(map(&self.cross), 4),
            f(map(&self.multi), 4),
            f(rec(&self.mono, 1), 4),
            f(rec(&self.cross, 1), 4),
            f(rec(&self.multi, 10), 4),
            f(self.rank_distance, 1),
            f(pref_mean, 3),
            f(self.rank_correlation, 3),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::score::ranking;

    /// Candidates are one-hot vectors, so a query vector *is* its row of scores.
    struct Case {
        langs: Vec<String>,
        ids: Vec<String>,
        cand_lang: Vec<usize>,
        cands: Vec<f32>,
        query_lang: Vec<usize>,
        group: Vec<usize>,
        relevant: Vec<Vec<usize>>,
        queries: Vec<f32>,
    }

    impl Case {
        fn input(&self) -> LareqaInput<'_> {
            LareqaInput {
                langs: &self.langs,
                candidate_ids: &self.ids,
                candidate_lang: &self.cand_lang,
                candidates: &self.cands,
                query_lang: &self.query_lang,
                query_group: &self.group,
                relevant: &self.relevant,
                queries: &self.queries,
                dim: self.ids.len(),
            }
        }
    }

    fn identity(n: usize) -> Vec<f32> {
        (0..n * n).map(|i| if i / n == i % n { 1.0 } else { 0.0 }).collect()
    }

    /// c0 = en-0, c1 = en-1, c2 = de-0, c3 = de-1. Groups: A, B ask question 0 (answers c0, c2);
    /// C, D ask question 1 (c1, c3); E asks a German-only question answered by c2.
    fn worked_case() -> Case {
        Case {
            langs: vec!["en".into(), "de".into()],
            ids: ["en-0", "en-1", "de-0", "de-1"].map(String::from).to_vec(),
            cand_lang: vec![0, 0, 1, 1],
            cands: identity(4),
            query_lang: vec![0, 1, 0, 1, 1],
            group: vec![0, 0, 1, 1, 2],
            relevant: vec![vec![0, 2], vec![0, 2], vec![1, 3], vec![1, 3], vec![2]],
            queries: [
                [0.9, 0.8, 0.7, 0.95], // A (en): pooled c3 c0 c1 c2
                [0.6, 0.1, 0.6, 0.2],  // B (de): c0 and c2 tie; "en-0" > "de-0" so c0 first
                [0.5, 0.4, 0.3, 0.2],  // C (en): c0 c1 c2 c3
                [0.0, 0.3, 0.1, 0.2],  // D (de): c1 c3 c2 c0
                [0.1, 0.3, 0.3, 0.4],  // E (de): c3, then c1 before c2 (tie, "en-1" > "de-0"), c0
            ]
            .concat(),
        }
    }

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    #[test]
    fn per_query_scores_are_what_the_report_averages() {
        let options = LareqaOptions { threads: 1, ..LareqaOptions::default() };
        let case = worked_case();
        let (report, scores) = evaluate_per_query(&case.input(), &options).unwrap();
        assert_eq!(report, evaluate(&case.input(), &options).unwrap());
        // A (en): en candidates c0 0.9 > c1 0.8 (AP 1); de candidates c3 0.95 > c2 0.7 (AP 1/2);
        // pooled c3 c0 c1 c2: relevant at ranks 2 and 4, AP (1/2 + 2/4)/2, distance 2.
        assert_eq!(
            scores[0],
            QueryScores { ap: vec![Some(1.0), Some(0.5)], multi: Some(0.5), rank_distance: Some(2.0) }
        );
        // E (de) has no English answer: no en AP and no rank distance; pooled c3 c1 c2 c0: AP 1/3.
        assert_eq!(scores[4].ap, vec![None, Some(0.5)]);
        assert_eq!(scores[4].rank_distance, None);
        close(scores[4].multi.unwrap(), 1.0 / 3.0);
        for (l, lang) in report.per_lang.iter().enumerate() {
            let mine: Vec<&QueryScores> =
                scores.iter().zip(&case.query_lang).filter(|(_, &q)| q == l).map(|(s, _)| s).collect();
            let multi = mine.iter().filter_map(|s| s.multi).sum::<f64>() / mine.len() as f64;
            close(multi, lang.multi.as_ref().unwrap().map);
            let mono: Vec<f64> = mine.iter().filter_map(|s| s.ap[l]).collect();
            close(mono.iter().sum::<f64>() / mono.len() as f64, lang.mono.as_ref().unwrap().map);
        }
    }

    #[test]
    fn non_finite_vectors_are_refused_not_ranked_first() {
        // Before the check, a NaN query scored mAP 1 and Mul. mAP above 1.
        let options = LareqaOptions { threads: 1, ..LareqaOptions::default() };
        let mut case = worked_case();
        case.queries[5] = f32::NAN;
        let err = evaluate(&case.input(), &options).unwrap_err().to_string();
        assert!(err.starts_with("query vector 1 has a non-finite value (NaN) at dimension 1"), "{err}");
        let mut case = worked_case();
        case.cands[10] = f32::INFINITY;
        let err = evaluate(&case.input(), &options).unwrap_err().to_string();
        assert!(err.starts_with("candidate vector 2 has a non-finite value (inf)"), "{err}");
    }

    #[test]
    fn a_query_language_without_candidates_has_no_preference_not_nan() {
        // A French query (group 0) over a pool with no French candidate: own share 0 of pool share 0.
        let mut case = worked_case();
        case.langs.push("fr".into());
        case.query_lang.push(2);
        case.group.push(0);
        case.relevant.push(vec![0, 2]);
        case.queries.extend([0.9, 0.1, 0.2, 0.3]);
        let r = evaluate(&case.input(), &LareqaOptions { threads: 1, ..LareqaOptions::default() }).unwrap();
        let fr = r.per_lang.iter().find(|l| l.lang == "fr").unwrap();
        assert_eq!((fr.n_queries, fr.n_candidates, fr.preference.is_none()), (1, 0, true));
        // Its Mul. score is still defined: c0 c3 c2 c1, so the answers rank 1 and 3 → AP (1 + 2/3) / 2.
        close(fr.multi.as_ref().unwrap().map, (1.0 + 2.0 / 3.0) / 2.0);
    }

    #[test]
    fn a_report_out_of_range_is_refused() {
        let options = LareqaOptions { threads: 1, ..LareqaOptions::default() };
        let good = evaluate(&worked_case().input(), &options).unwrap();
        assert!(check_ranges(&good).is_ok());
        let mut bad = good.clone();
        bad.per_lang[1].multi.as_mut().unwrap().map = 1.0369;
        let err = check_ranges(&bad).unwrap_err().to_string();
        assert!(err.contains("de Mul. mAP = 1.0369 lies outside [0, 1]"), "{err}");
        let mut bad = good;
        bad.rank_distance = Some(f64::NAN);
        assert!(check_ranges(&bad).unwrap_err().to_string().contains("rank distance = NaN"));
    }

    #[test]
    fn hand_worked_example() {
        let case = worked_case();
        let options = LareqaOptions { recall_at: vec![1, 2, 10], preference_at: 1, rank_correlation: true, threads: 1 };
        let r = evaluate(&case.input(), &options).unwrap();
        let pair = |x: &str, y: &str| {
            r.pairs.iter().find(|p| p.query_lang == x && p.corpus_lang == y).map(|p| p.score.clone())
        };
        // Mo.: en = (A 1 + C 1/2) / 2; de = (B 1 + D 1 + E 1/2) / 3.
        close(pair("en", "en").unwrap().map, 0.75);
        close(pair("de", "de").unwrap().map, 2.5 / 3.0);
        close(r.mono.as_ref().unwrap().map, (0.75 + 2.5 / 3.0) / 2.0);
        // Cr.: en→de = (A 1/2 + C 1/2) / 2; de→en = (B 1 + D 1) / 2, E skipped (no English answer).
        close(pair("en", "de").unwrap().map, 0.5);
        let de_en = pair("de", "en").unwrap();
        close(de_en.map, 1.0);
        assert_eq!(de_en.n, 2);
        close(r.cross.as_ref().unwrap().map, 0.75);
        // Mul.: A ranks 2, 4 → (1/2 + 2/4)/2; B 1, 2 → 1; C 2, 4 → 1/2; D → 1; E rank 3 → 1/3.
        let en = &r.per_lang[0];
        let de = &r.per_lang[1];
        close(en.multi.as_ref().unwrap().map, 0.5);
        close(de.multi.as_ref().unwrap().map, (2.0 + 1.0 / 3.0) / 3.0);
        close(r.multi.as_ref().unwrap().map, (0.5 + (2.0 + 1.0 / 3.0) / 3.0) / 2.0);
        // R@k: Mo. en R@1 = (A 1 + C 0)/2; Mul. en R@2 = (A 1/2 + C 1/2)/2.
        close(en.mono.as_ref().unwrap().recall[&1], 0.5);
        close(en.multi.as_ref().unwrap().recall[&2], 0.5);
        close(en.multi.as_ref().unwrap().recall[&10], 1.0);
        // Rank distance: en (2 + 2)/2; de (1 + 1)/2 with E skipped (one relevant).
        close(en.rank_distance.unwrap(), 2.0);
        close(de.rank_distance.unwrap(), 1.0);
        close(r.rank_distance.unwrap(), 1.5);
        // Preference @1: top-1 languages A de, C en → en 1/2; B en, D en, E de → de 1/3.
        let p = en.preference.as_ref().unwrap();
        close(p.own_share, 0.5);
        close(p.pool_share, 0.5);
        close(p.ratio, 1.0);
        close(de.preference.as_ref().unwrap().own_share, 1.0 / 3.0);
        // Spearman: A vs B Σd² = 10 → ρ = 1 − 60/60 = 0; C vs D Σd² = 14 → ρ = −0.4.
        assert_eq!(r.correlation_pairs.len(), 1);
        close(r.correlation_pairs[0].rho, -0.2);
        assert_eq!(r.correlation_pairs[0].n, 2);
        close(r.rank_correlation.unwrap(), -0.2);
        assert!(r.markdown().contains("| **mean** | 5 |"));
    }

    /// Deterministic pseudo-random numbers for the brute-force comparison.
    fn lcg(state: &mut u64) -> f32 {
        *state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        // Few distinct values, so ties are common.
        ((*state >> 33) % 7) as f32 / 7.0
    }

    /// AP from a full sort, the textbook way.
    fn brute_ap(scores: &[f32], ties: &[u32], scope: &[usize], relevant: &[usize]) -> Option<f64> {
        let rel: Vec<usize> = relevant.iter().copied().filter(|c| scope.contains(c)).collect();
        if rel.is_empty() {
            return None;
        }
        let sub_scores: Vec<f32> = scope.iter().map(|&c| scores[c]).collect();
        let sub_ties: Vec<u32> = scope.iter().map(|&c| ties[c]).collect();
        let order = ranking(&sub_scores, &sub_ties);
        let (mut found, mut sum) = (0, 0.0);
        for (i, &j) in order.iter().enumerate() {
            if rel.contains(&scope[j]) {
                found += 1;
                sum += found as f64 / (i + 1) as f64;
            }
        }
        Some(sum / rel.len() as f64)
    }

    #[test]
    fn rank_counting_matches_a_full_sort() {
        let (nl, per_lang, groups) = (3, 9, 6);
        let nc = nl * per_lang;
        let mut state = 7;
        let langs: Vec<String> = ["ar", "en", "zh"].map(String::from).to_vec();
        let ids: Vec<String> = (0..nc).map(|c| format!("{}-{}", langs[c / per_lang], c % per_lang)).collect();
        let cand_lang: Vec<usize> = (0..nc).map(|c| c / per_lang).collect();
        let mut query_lang = Vec::new();
        let mut group = Vec::new();
        let mut relevant = Vec::new();
        for g in 0..groups {
            // Question g is answered by sentence g of each language, except in zh for odd g.
            let answers: Vec<usize> = (0..nl).filter(|&l| !(l == 2 && g % 2 == 1)).map(|l| l * per_lang + g).collect();
            for l in 0..nl {
                if !(l == 2 && g % 2 == 1) {
                    query_lang.push(l);
                    group.push(g);
                    relevant.push(answers.clone());
                }
            }
        }
        let queries: Vec<f32> = (0..query_lang.len() * nc).map(|_| lcg(&mut state)).collect();
        let case = Case { langs, ids, cand_lang, cands: identity(nc), query_lang, group, relevant, queries };
        let options = LareqaOptions { threads: 2, ..Default::default() };
        let r = evaluate(&case.input(), &options).unwrap();
        let ties = tie_order(&case.ids);
        for x in 0..nl {
            for y in 0..nl {
                let scope: Vec<usize> = (0..nc).filter(|&c| case.cand_lang[c] == y).collect();
                let aps: Vec<f64> = (0..case.query_lang.len())
                    .filter(|&q| case.query_lang[q] == x)
                    .filter_map(|q| brute_ap(&case.queries[q * nc..(q + 1) * nc], &ties, &scope, &case.relevant[q]))
                    .collect();
                let expected = aps.iter().sum::<f64>() / aps.len() as f64;
                let got = r.pairs.iter().find(|p| p.query_lang == case.langs[x] && p.corpus_lang == case.langs[y]);
                close(got.unwrap().score.map, expected);
            }
            let pool: Vec<usize> = (0..nc).collect();
            let aps: Vec<f64> = (0..case.query_lang.len())
                .filter(|&q| case.query_lang[q] == x)
                .filter_map(|q| brute_ap(&case.queries[q * nc..(q + 1) * nc], &ties, &pool, &case.relevant[q]))
                .collect();
            close(r.per_lang[x].multi.as_ref().unwrap().map, aps.iter().sum::<f64>() / aps.len() as f64);
        }
    }

    #[test]
    fn inconsistent_inputs_are_errors() {
        let mut case = worked_case();
        case.relevant[0].push(9);
        let err = evaluate(&case.input(), &LareqaOptions::default()).unwrap_err();
        assert!(err.to_string().contains("relevant candidate 9"), "{err}");
        let mut case = worked_case();
        case.ids[1] = "en-0".into();
        assert!(evaluate(&case.input(), &LareqaOptions::default()).unwrap_err().to_string().contains("not unique"));
    }
}
