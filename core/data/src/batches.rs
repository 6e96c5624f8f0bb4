//! Training batches over parallel (question, answer sentence) pairs: the samplers of hybrid batch
//! training (arXiv 2408.10536) and its baselines.
//!
//! A [`ParallelPairs`] table holds, for every question id (a *group*), its question and answer
//! sentence in each language where it exists. A [`BatchSampler`] draws batches of `batch_size`
//! distinct groups and assigns languages to each pair:
//!
//! - [`Strategy::Hybrid`] with probability α: a **monolingual** batch — one language drawn uniformly
//!   from the training languages, every query and passage in it; otherwise a **cross-lingual**
//!   batch — each pair gets a query language drawn uniformly and a passage language drawn uniformly
//!   from the *other* languages.
//! - [`Strategy::XXMono`] = hybrid with α = 1, [`Strategy::XY`] = hybrid with α = 0.
//! - [`Strategy::XX`] (LAReQA's X-X): each pair in one language of its own, languages mixed within
//!   the batch.
//!
//! Rules every batch keeps: no group twice (its parallel answers would be false negatives); every
//! pair's languages exist for its group. Groups are visited in a seeded random order, epoch after
//! epoch; a group that lacks the language a monolingual batch needs is deferred to a later batch,
//! not dropped. Optional hard negatives: another sentence of the answer's paragraph.
//!
//! The sampler is a pure function of its [`SamplerState`], which serialises, so a resumed training
//! run draws exactly the batches an uninterrupted one would.

use serde::{Deserialize, Serialize};

use crate::lareqa::LareqaSet;

/// One language version of a group: its question and answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairText {
    /// The question.
    pub question: String,
    /// The answer sentence.
    pub answer: String,
    /// Other sentences of the answer's paragraph (hard-negative candidates).
    pub paragraph_others: Vec<String>,
}

/// Parallel pairs: `groups[g][l]` is group g in language l, if it exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParallelPairs {
    /// Language codes.
    pub langs: Vec<String>,
    /// Group ids (question ids).
    pub ids: Vec<String>,
    /// Per group, per language.
    pub groups: Vec<Vec<Option<PairText>>>,
}

/// Why pairs or a sampler cannot be made from the data given.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BatchError {
    /// A requested language the set does not have.
    #[error("language {lang:?} is not in the set")]
    UnknownLanguage {
        /// The language code.
        lang: String,
    },
    /// α outside [0, 1].
    #[error("alpha must be in [0, 1], got {alpha}")]
    Alpha {
        /// The value given.
        alpha: f64,
    },
    /// A batch size of 0, or larger than the groups available.
    #[error("batch size {batch_size} but {groups} groups")]
    BatchSize {
        /// The batch size asked for.
        batch_size: usize,
        /// The groups the data has.
        groups: usize,
    },
    /// Cross-lingual batches asked of data in one language.
    #[error("cross-lingual batches need at least two languages")]
    OneLanguage,
    /// A saved sampler state that names groups this data lacks.
    #[error("sampler state refers to groups this data does not have")]
    StaleState,
}

impl ParallelPairs {
    /// Pairs of the questions of `set` in `langs` (languages of the set not listed are left out,
    /// e.g. the zero-shot languages). Groups present in no listed language are dropped.
    pub fn from_lareqa(set: &LareqaSet, langs: &[&str]) -> Result<Self, BatchError> {
        let mut lang_index = Vec::new();
        for l in langs {
            let i = set
                .langs
                .iter()
                .position(|x| x == l)
                .ok_or_else(|| BatchError::UnknownLanguage { lang: l.to_string() })?;
            lang_index.push(i);
        }
        let mut ids: Vec<String> = Vec::new();
        let mut index = std::collections::HashMap::new();
        let mut groups: Vec<Vec<Option<PairText>>> = Vec::new();
        for q in &set.questions {
            let Some(slot) = lang_index.iter().position(|&i| i == q.lang) else { continue };
            let g = *index.entry(q.id.clone()).or_insert_with(|| {
                ids.push(q.id.clone());
                groups.push(vec![None; langs.len()]);
                groups.len() - 1
            });
            let answer = &set.candidates[q.answer];
            let paragraph_others = set
                .candidates
                .iter()
                .filter(|c| c.paragraph == answer.paragraph && c.id != answer.id)
                .map(|c| c.sentence.clone())
                .collect();
            groups[g][slot] =
                Some(PairText { question: q.text.clone(), answer: answer.sentence.clone(), paragraph_others });
        }
        Ok(Self { langs: langs.iter().map(|s| s.to_string()).collect(), ids, groups })
    }

    /// Languages in which group `g` exists.
    pub fn langs_of(&self, g: usize) -> Vec<usize> {
        (0..self.langs.len()).filter(|&l| self.groups[g][l].is_some()).collect()
    }
}

/// How languages are assigned within a batch.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Strategy {
    /// Monolingual batch with probability `alpha`, else cross-lingual.
    Hybrid {
        /// Probability of a monolingual batch.
        alpha: f64,
    },
    /// Every batch monolingual (α = 1).
    XXMono,
    /// Every batch cross-lingual (α = 0).
    XY,
    /// Each pair in one language, languages mixed within a batch (LAReQA's X-X).
    XX,
}

impl Strategy {
    /// α of the hybrid family (`None` for X-X).
    pub fn alpha(self) -> Option<f64> {
        match self {
            Strategy::Hybrid { alpha } => Some(alpha),
            Strategy::XXMono => Some(1.0),
            Strategy::XY => Some(0.0),
            Strategy::XX => None,
        }
    }

    /// Name as used on the command line (`hybrid`, `x-x-mono`, `x-y`, `x-x`).
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Hybrid { .. } => "hybrid",
            Strategy::XXMono => "x-x-mono",
            Strategy::XY => "x-y",
            Strategy::XX => "x-x",
        }
    }
}

/// What kind of batch was drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BatchKind {
    /// All queries and passages in this language.
    Mono(usize),
    /// Query and passage languages differ in every pair.
    Cross,
    /// Each pair monolingual, languages mixed (X-X).
    Mixed,
}

/// One training example.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// Group (question) index.
    pub group: usize,
    /// Language of the query.
    pub query_lang: usize,
    /// Language of the positive passage.
    pub passage_lang: usize,
    /// Index into the positive's `paragraph_others`, when hard negatives are on and one exists.
    pub hard_negative: Option<usize>,
}

/// A batch of distinct groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainBatch {
    /// The source its groups come from (index into the sources of a
    /// [`MixedSampler`](crate::mix::MixedSampler); 0 for a single table).
    #[serde(default)]
    pub source: usize,
    /// Monolingual, cross-lingual or mixed.
    pub kind: BatchKind,
    /// The examples.
    pub items: Vec<Item>,
}

/// Everything that determines the next batches (serialisable for checkpoints).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SamplerState {
    /// RNG state (SplitMix64).
    pub rng: u64,
    /// Completed epochs.
    pub epoch: u64,
    /// Groups not yet used in this epoch, in visiting order (front first).
    pub pending: Vec<usize>,
    /// Batches drawn so far.
    pub batches: u64,
}

/// Draws training batches; see the module docs for the rules.
#[derive(Debug, Clone)]
pub struct BatchSampler {
    strategy: Strategy,
    batch_size: usize,
    hard_negatives: bool,
    n_langs: usize,
    /// Languages of each group.
    group_langs: Vec<Vec<usize>>,
    /// Hard-negative candidates of each group in each language.
    others: Vec<Vec<usize>>,
    state: SamplerState,
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn below(state: &mut u64, n: usize) -> usize {
    // Multiply-shift: unbiased enough for n ≪ 2^32, and identical on every platform.
    (((splitmix(state) >> 32) * n as u64) >> 32) as usize
}

pub(crate) fn unit(state: &mut u64) -> f64 {
    (splitmix(state) >> 11) as f64 / (1u64 << 53) as f64
}

impl BatchSampler {
    /// A sampler over `pairs`. Errors if the batch is larger than the groups available, α is
    /// outside [0, 1], or a cross-lingual batch is possible but fewer than two languages exist.
    pub fn new(
        pairs: &ParallelPairs,
        strategy: Strategy,
        batch_size: usize,
        hard_negatives: bool,
        seed: u64,
    ) -> Result<Self, BatchError> {
        if let Some(alpha) = strategy.alpha() {
            if !(0.0..=1.0).contains(&alpha) {
                return Err(BatchError::Alpha { alpha });
            }
        }
        let group_langs: Vec<Vec<usize>> = (0..pairs.groups.len()).map(|g| pairs.langs_of(g)).collect();
        if batch_size == 0 || batch_size > group_langs.len() {
            return Err(BatchError::BatchSize { batch_size, groups: group_langs.len() });
        }
        let cross_possible = strategy.alpha().is_some_and(|a| a < 1.0);
        if cross_possible && pairs.langs.len() < 2 {
            return Err(BatchError::OneLanguage);
        }
        let others = pairs
            .groups
            .iter()
            .map(|langs| langs.iter().map(|p| p.as_ref().map_or(0, |p| p.paragraph_others.len())).collect())
            .collect();
        let mut sampler = Self {
            strategy,
            batch_size,
            hard_negatives,
            n_langs: pairs.langs.len(),
            group_langs,
            others,
            state: SamplerState { rng: seed, epoch: 0, pending: Vec::new(), batches: 0 },
        };
        sampler.refill();
        Ok(sampler)
    }

    /// The state to save in a checkpoint.
    pub fn state(&self) -> &SamplerState {
        &self.state
    }

    /// Continues from a saved state (same pairs, strategy and batch size).
    pub fn restore(&mut self, state: SamplerState) -> Result<(), BatchError> {
        if state.pending.iter().any(|&g| g >= self.group_langs.len()) {
            return Err(BatchError::StaleState);
        }
        self.state = state;
        Ok(())
    }

    fn refill(&mut self) {
        // Fisher–Yates over all groups; appended behind whatever is still pending.
        let mut order: Vec<usize> = (0..self.group_langs.len()).collect();
        for i in (1..order.len()).rev() {
            let j = below(&mut self.state.rng, i + 1);
            order.swap(i, j);
        }
        self.state.pending.extend(order);
    }

    /// Takes the first `batch_size` distinct pending groups that satisfy `ok`, refilling the
    /// order (a new epoch) when it runs dry.
    fn take(&mut self, ok: impl Fn(&[usize]) -> bool) -> Vec<usize> {
        let mut chosen: Vec<usize> = Vec::with_capacity(self.batch_size);
        let mut refills = 0;
        let mut i = 0;
        while chosen.len() < self.batch_size {
            if i >= self.state.pending.len() {
                if refills == 2 {
                    break; // Not enough eligible groups even across a fresh epoch.
                }
                self.refill();
                self.state.epoch += 1;
                refills += 1;
            }
            let g = self.state.pending[i];
            if ok(&self.group_langs[g]) && !chosen.contains(&g) {
                chosen.push(g);
                self.state.pending.remove(i);
            } else {
                i += 1;
            }
        }
        chosen
    }

    fn negative(&mut self, group: usize, lang: usize) -> Option<usize> {
        let n = self.others[group][lang];
        (self.hard_negatives && n > 0).then(|| below(&mut self.state.rng, n))
    }

    /// The next batch.
    pub fn next_batch(&mut self) -> TrainBatch {
        self.state.batches += 1;
        let n_langs = self.n_langs;
        let batch = match self.strategy.alpha() {
            Some(alpha) if unit(&mut self.state.rng) < alpha => {
                let lang = below(&mut self.state.rng, n_langs);
                let groups = self.take(|langs| langs.contains(&lang));
                let items = groups
                    .into_iter()
                    .map(|group| Item { group, query_lang: lang, passage_lang: lang, hard_negative: None })
                    .collect();
                TrainBatch { source: 0, kind: BatchKind::Mono(lang), items }
            }
            Some(_) => {
                let groups = self.take(|langs| langs.len() >= 2);
                let items = groups
                    .into_iter()
                    .map(|group| {
                        let langs = &self.group_langs[group];
                        let q = langs[below(&mut self.state.rng, langs.len())];
                        let others: Vec<usize> = langs.iter().copied().filter(|&l| l != q).collect();
                        let p = others[below(&mut self.state.rng, others.len())];
                        Item { group, query_lang: q, passage_lang: p, hard_negative: None }
                    })
                    .collect();
                TrainBatch { source: 0, kind: BatchKind::Cross, items }
            }
            None => {
                let groups = self.take(|langs| !langs.is_empty());
                let items = groups
                    .into_iter()
                    .map(|group| {
                        let langs = &self.group_langs[group];
                        let l = langs[below(&mut self.state.rng, langs.len())];
                        Item { group, query_lang: l, passage_lang: l, hard_negative: None }
                    })
                    .collect();
                TrainBatch { source: 0, kind: BatchKind::Mixed, items }
            }
        };
        let mut batch = batch;
        for i in 0..batch.items.len() {
            let (g, l) = (batch.items[i].group, batch.items[i].passage_lang);
            batch.items[i].hard_negative = self.negative(g, l);
        }
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` groups in `langs` languages; group g lacks language 0 when g % 5 == 4.
    fn pairs(n: usize, langs: usize) -> ParallelPairs {
        let text = |g: usize, l: usize| PairText {
            question: format!("q{g}/{l}"),
            answer: format!("a{g}/{l}"),
            paragraph_others: (0..g % 3).map(|k| format!("o{g}/{l}/{k}")).collect(),
        };
        ParallelPairs {
            langs: (0..langs).map(|l| format!("l{l}")).collect(),
            ids: (0..n).map(|g| format!("g{g}")).collect(),
            groups: (0..n)
                .map(|g| (0..langs).map(|l| (!(l == 0 && g % 5 == 4)).then(|| text(g, l))).collect())
                .collect(),
        }
    }

    fn check_rules(p: &ParallelPairs, b: &TrainBatch, size: usize) {
        assert_eq!(b.items.len(), size);
        let mut groups: Vec<usize> = b.items.iter().map(|i| i.group).collect();
        groups.sort_unstable();
        groups.dedup();
        assert_eq!(groups.len(), size, "a group twice in one batch");
        for i in &b.items {
            assert!(p.groups[i.group][i.query_lang].is_some() && p.groups[i.group][i.passage_lang].is_some());
            match b.kind {
                BatchKind::Mono(l) => assert!(i.query_lang == l && i.passage_lang == l),
                BatchKind::Cross => assert_ne!(i.query_lang, i.passage_lang),
                BatchKind::Mixed => assert_eq!(i.query_lang, i.passage_lang),
            }
            if let Some(k) = i.hard_negative {
                assert!(k < p.groups[i.group][i.passage_lang].as_ref().unwrap().paragraph_others.len());
            }
        }
    }

    #[test]
    fn every_batch_keeps_the_rules() {
        let p = pairs(200, 4);
        for strategy in [Strategy::Hybrid { alpha: 0.5 }, Strategy::XXMono, Strategy::XY, Strategy::XX] {
            let mut s = BatchSampler::new(&p, strategy, 16, true, 7).unwrap();
            for _ in 0..300 {
                let b = s.next_batch();
                check_rules(&p, &b, 16);
                match strategy {
                    Strategy::XXMono => assert!(matches!(b.kind, BatchKind::Mono(_))),
                    Strategy::XY => assert_eq!(b.kind, BatchKind::Cross),
                    Strategy::XX => assert_eq!(b.kind, BatchKind::Mixed),
                    Strategy::Hybrid { .. } => {}
                }
            }
        }
    }

    #[test]
    fn alpha_and_language_frequencies_within_tolerance() {
        let p = pairs(300, 3);
        for alpha in [0.25, 0.5, 0.75] {
            let mut s = BatchSampler::new(&p, Strategy::Hybrid { alpha }, 8, false, 42).unwrap();
            let n = 4000;
            let mut mono = 0;
            let mut per_lang = [0usize; 3];
            let mut pairs_seen = std::collections::HashMap::new();
            for _ in 0..n {
                let b = s.next_batch();
                if let BatchKind::Mono(l) = b.kind {
                    mono += 1;
                    per_lang[l] += 1;
                } else {
                    for i in &b.items {
                        *pairs_seen.entry((i.query_lang, i.passage_lang)).or_insert(0usize) += 1;
                    }
                }
            }
            // Binomial standard deviation at n = 4000 is below 0.008: allow 4σ.
            let rate = mono as f64 / n as f64;
            assert!((rate - alpha).abs() < 0.032, "alpha {alpha}: monolingual rate {rate}");
            for &c in &per_lang {
                let share = c as f64 / mono as f64;
                assert!((share - 1.0 / 3.0).abs() < 0.05, "language share {share}");
            }
            // All six ordered pairs occur in cross-lingual batches.
            assert_eq!(pairs_seen.len(), 6);
        }
    }

    #[test]
    fn epochs_visit_every_group_and_state_resumes_exactly() {
        let p = pairs(64, 3);
        let mut s = BatchSampler::new(&p, Strategy::XX, 16, false, 3).unwrap();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..4 {
            seen.extend(s.next_batch().items.iter().map(|i| i.group));
        }
        assert_eq!(seen.len(), 64, "one epoch of X-X batches covers every group once");
        let mut a = BatchSampler::new(&p, Strategy::Hybrid { alpha: 0.5 }, 10, true, 9).unwrap();
        for _ in 0..13 {
            a.next_batch();
        }
        let saved = serde_json::to_string(a.state()).unwrap();
        let expected: Vec<TrainBatch> = (0..20).map(|_| a.next_batch()).collect();
        let mut b = BatchSampler::new(&p, Strategy::Hybrid { alpha: 0.5 }, 10, true, 9).unwrap();
        b.restore(serde_json::from_str(&saved).unwrap()).unwrap();
        let resumed: Vec<TrainBatch> = (0..20).map(|_| b.next_batch()).collect();
        assert_eq!(expected, resumed);
    }

    #[test]
    fn bad_settings_are_errors() {
        let p = pairs(10, 2);
        assert!(BatchSampler::new(&p, Strategy::Hybrid { alpha: 1.5 }, 4, false, 0).is_err());
        assert!(BatchSampler::new(&p, Strategy::XY, 11, false, 0).is_err());
        assert!(BatchSampler::new(&pairs(10, 1), Strategy::XY, 4, false, 0).is_err());
    }
}
