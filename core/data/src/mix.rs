//! Batches drawn across several training sources, as the paper mixes its datasets.
//!
//! Each batch first draws its source, with probability proportional to the source's size
//! ([`ParallelPairs::size`]: "sampled based on dataset size") or to given weights; then that
//! source's own [`BatchSampler`] draws the batch, so every rule of [`crate::batches`] holds within
//! the source: its groups only, monolingual batches in languages it has, cross-lingual pairs it
//! has. Where a source cannot give one kind of batch, its sampler gives the other:
//!
//! - a bitext source has no monolingual pairs (see [`crate::sources`]): hybrid draws only
//!   cross-lingual batches from it, and X-X-mono and X-X refuse it;
//! - a source in which no group has two languages cannot give cross-lingual batches: hybrid draws
//!   only monolingual batches from it, and X-Y refuses it.
//!
//! [`MixedSampler::notes`] says where that happened. With one source no source is drawn: the
//! batches are exactly those of a plain [`BatchSampler`] with the same seed. Source `i` samples
//! with seed `seed ^ i·φ` (φ = 0x9E3779B97F4A7C15) and the source draws with their own stream, so
//! adding a source does not change how the others order their groups.

use serde::{Deserialize, Serialize};

use crate::batches::{unit, BatchSampler, SamplerState, Strategy, TrainBatch};
use crate::sources::Source;

/// Why a mixed sampler could not be built or restored.
#[derive(Debug, thiserror::Error)]
pub enum MixError {
    /// A source cannot serve the sampler or the batch size.
    #[error("training source {name}: {message}")]
    Source {
        /// The source's name (its path).
        name: String,
        /// What is wrong.
        message: String,
    },
    /// Bad source weights.
    #[error("data weights: {0}")]
    Weights(String),
    /// A saved state that does not fit these sources.
    #[error("sampler state: {0}")]
    State(String),
}

/// Everything that determines the next batches (serialisable for checkpoints). One source keeps
/// the plain sampler's state, so single-source checkpoints read as before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MixState {
    /// Several sources: the source-draw RNG and each source's sampler.
    Many {
        /// RNG of the source draws (SplitMix64).
        mix_rng: u64,
        /// Per source, in the order given.
        sources: Vec<SamplerState>,
    },
    /// One source.
    One(SamplerState),
}

/// Draws batches across sources; see the module docs.
#[derive(Debug, Clone)]
pub struct MixedSampler {
    samplers: Vec<BatchSampler>,
    /// Cumulative source probabilities (the last is 1).
    cumulative: Vec<f64>,
    mix_rng: u64,
    notes: Vec<String>,
}

const PHI: u64 = 0x9E37_79B9_7F4A_7C15;
const MIX_SEED: u64 = 0xD1B5_4A32_D192_ED03;

impl MixedSampler {
    /// A sampler over `sources` with `strategy`; `weights` (one per source, finite, ≥ 0, not all
    /// 0) replace the sizes as source probabilities.
    pub fn new(
        sources: &[Source],
        strategy: Strategy,
        batch_size: usize,
        hard_negatives: bool,
        seed: u64,
        weights: Option<&[f64]>,
    ) -> Result<Self, MixError> {
        if sources.is_empty() {
            return Err(MixError::Weights("no training source".into()));
        }
        let raw: Vec<f64> = match weights {
            Some(w) if w.len() != sources.len() => {
                return Err(MixError::Weights(format!("{} weights for {} sources", w.len(), sources.len())))
            }
            Some(w) if w.iter().any(|x| !x.is_finite() || *x < 0.0) || w.iter().sum::<f64>() <= 0.0 => {
                return Err(MixError::Weights(format!("{w:?}: each must be finite and ≥ 0, and one above 0")))
            }
            Some(w) => w.to_vec(),
            None => sources.iter().map(|s| s.pairs.size() as f64).collect(),
        };
        let total: f64 = raw.iter().sum();
        let mut cumulative = Vec::with_capacity(raw.len());
        let mut acc = 0.0;
        for w in &raw {
            acc += w / total;
            cumulative.push(acc);
        }
        *cumulative.last_mut().expect("one source at least") = 1.0;
        let mut notes = Vec::new();
        let mut samplers = Vec::with_capacity(sources.len());
        for (i, source) in sources.iter().enumerate() {
            let bad = |message: String| MixError::Source { name: source.name.clone(), message };
            let mono = source.kind.has_monolingual_pairs();
            let cross = source.pairs.groups.iter().any(|g| g.iter().filter(|p| p.is_some()).count() >= 2);
            let own = match strategy {
                Strategy::XXMono | Strategy::XX if !mono => {
                    return Err(bad(format!(
                        "bitext gives cross-lingual examples only; {} needs monolingual pairs",
                        strategy.name()
                    )))
                }
                Strategy::XY if !cross => {
                    return Err(bad("no group has two languages: x-y needs cross-lingual pairs".into()))
                }
                Strategy::Hybrid { .. } if !mono => {
                    notes.push(format!("{}: cross-lingual batches only (bitext)", source.name));
                    Strategy::XY
                }
                Strategy::Hybrid { .. } if !cross => {
                    notes.push(format!("{}: monolingual batches only (no group has two languages)", source.name));
                    Strategy::XXMono
                }
                other => other,
            };
            let sampler =
                BatchSampler::new(&source.pairs, own, batch_size, hard_negatives, seed ^ (i as u64).wrapping_mul(PHI))
                    .map_err(|e| bad(e.to_string()))?;
            samplers.push(sampler);
        }
        Ok(Self { samplers, cumulative, mix_rng: seed ^ MIX_SEED, notes })
    }

    /// Where a source's sampler differs from the requested strategy (see the module docs).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Each source's probability of being drawn.
    pub fn probabilities(&self) -> Vec<f64> {
        let mut previous = 0.0;
        self.cumulative
            .iter()
            .map(|&c| {
                let p = c - previous;
                previous = c;
                p
            })
            .collect()
    }

    /// The state to save in a checkpoint.
    pub fn state(&self) -> MixState {
        match self.samplers.as_slice() {
            [one] => MixState::One(one.state().clone()),
            many => MixState::Many { mix_rng: self.mix_rng, sources: many.iter().map(|s| s.state().clone()).collect() },
        }
    }

    /// Continues from a saved state (same sources, strategy and batch size).
    pub fn restore(&mut self, state: MixState) -> Result<(), MixError> {
        match (state, self.samplers.as_mut_slice()) {
            (MixState::One(s), [one]) => one.restore(s).map_err(|e| MixError::State(e.to_string())),
            (MixState::Many { mix_rng, sources }, many) if sources.len() == many.len() && many.len() > 1 => {
                for (sampler, s) in many.iter_mut().zip(sources) {
                    sampler.restore(s).map_err(|e| MixError::State(e.to_string()))?;
                }
                self.mix_rng = mix_rng;
                Ok(())
            }
            (state, samplers) => {
                let saved = match state {
                    MixState::One(_) => 1,
                    MixState::Many { sources, .. } => sources.len(),
                };
                Err(MixError::State(format!("saved with {saved} training sources, now {}", samplers.len())))
            }
        }
    }

    /// The next batch; its `source` says which source it came from.
    pub fn next_batch(&mut self) -> TrainBatch {
        let source = if self.samplers.len() == 1 {
            0
        } else {
            let u = unit(&mut self.mix_rng);
            self.cumulative.iter().position(|&c| u < c).unwrap_or(self.cumulative.len() - 1)
        };
        let mut batch = self.samplers[source].next_batch();
        batch.source = source;
        batch
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::{any, prop, prop_assert, prop_oneof, proptest, Just, ProptestConfig, Strategy as _};

    use super::*;
    use crate::batches::{BatchKind, PairText, ParallelPairs};
    use crate::sources::SourceKind;

    /// `n` groups over `langs` languages named `<prefix><l>`; group g has language l unless
    /// (g + l) % gap == 0 (gap 0: every language).
    fn source(name: &str, kind: SourceKind, n: usize, langs: usize, gap: usize) -> Source {
        let text = |g: usize, l: usize| PairText {
            question: format!("{name} q{g}/{l}"),
            answer: format!("{name} a{g}/{l}"),
            paragraph_others: vec![format!("{name} o{g}/{l}")],
        };
        let groups: Vec<Vec<Option<PairText>>> = (0..n)
            .map(|g| (0..langs).map(|l| (gap == 0 || (g + l) % gap != 0).then(|| text(g, l))).collect())
            .collect();
        let pairs = ParallelPairs {
            langs: (0..langs).map(|l| format!("{name}{l}")).collect(),
            ids: (0..n).map(|g| format!("{name}-{g}")).collect(),
            groups,
        };
        Source { name: name.into(), kind, pairs }
    }

    fn check(sources: &[Source], b: &TrainBatch, strategy: Strategy) {
        let s = &sources[b.source];
        let mut groups: Vec<usize> = b.items.iter().map(|i| i.group).collect();
        groups.sort_unstable();
        groups.dedup();
        assert_eq!(groups.len(), b.items.len(), "a group twice");
        for i in &b.items {
            let g = &s.pairs.groups[i.group];
            assert!(g[i.query_lang].is_some() && g[i.passage_lang].is_some(), "a language the group lacks");
            match b.kind {
                BatchKind::Mono(l) => assert!(i.query_lang == l && i.passage_lang == l),
                BatchKind::Cross => assert_ne!(i.query_lang, i.passage_lang),
                BatchKind::Mixed => assert_eq!(i.query_lang, i.passage_lang),
            }
        }
        if s.kind == SourceKind::Bitext {
            assert_eq!(b.kind, BatchKind::Cross, "a monolingual batch from bitext");
        }
        match strategy {
            Strategy::XY => assert_eq!(b.kind, BatchKind::Cross),
            Strategy::XXMono => assert!(matches!(b.kind, BatchKind::Mono(_))),
            _ => {}
        }
    }

    #[test]
    fn one_source_draws_exactly_the_plain_samplers_batches() {
        let s = source("x", SourceKind::Lareqa, 120, 4, 5);
        let strategy = Strategy::Hybrid { alpha: 0.5 };
        let mut plain = BatchSampler::new(&s.pairs, strategy, 16, true, 42).unwrap();
        let mut mixed = MixedSampler::new(std::slice::from_ref(&s), strategy, 16, true, 42, None).unwrap();
        for _ in 0..50 {
            assert_eq!(plain.next_batch(), mixed.next_batch());
        }
        assert_eq!(mixed.state(), MixState::One(plain.state().clone()));
        // A single-source state serialises as the plain sampler's (checkpoints read as before).
        assert_eq!(serde_json::to_value(mixed.state()).unwrap(), serde_json::to_value(plain.state()).unwrap());
    }

    #[test]
    fn sources_are_drawn_by_size_or_weight() {
        // Sizes 300·3 = 900 and 100·2 = 200 rows (no gaps): probabilities 9/11 and 2/11.
        let sources = [source("a", SourceKind::Lareqa, 300, 3, 0), source("b", SourceKind::JsonLines, 100, 2, 0)];
        for (weights, expected) in [(None, 9.0 / 11.0), (Some(vec![1.0, 3.0]), 0.25), (Some(vec![0.0, 2.0]), 0.0)] {
            let strategy = Strategy::Hybrid { alpha: 0.5 };
            let mut m = MixedSampler::new(&sources, strategy, 8, false, 7, weights.as_deref()).unwrap();
            assert!((m.probabilities()[0] - expected).abs() < 1e-12);
            let n = 4000;
            let mut first = 0;
            for _ in 0..n {
                let b = m.next_batch();
                check(&sources, &b, strategy);
                first += usize::from(b.source == 0);
            }
            // Binomial standard deviation at n = 4000 is below 0.008: allow 4σ.
            let rate = first as f64 / n as f64;
            assert!((rate - expected).abs() < 0.032, "weights {weights:?}: source 0 drawn {rate}, expected {expected}");
        }
    }

    #[test]
    fn sources_that_lack_a_kind_of_batch() {
        let lareqa = source("x", SourceKind::Lareqa, 40, 3, 0);
        let bitext = source("t", SourceKind::Bitext, 40, 2, 0);
        let single = source("m", SourceKind::JsonLines, 40, 1, 0);
        let sources = [lareqa, bitext, single];
        let hybrid = Strategy::Hybrid { alpha: 0.5 };
        let m = MixedSampler::new(&sources, hybrid, 8, false, 1, None).unwrap();
        assert_eq!(m.notes().len(), 2, "{:?}", m.notes());
        let err = MixedSampler::new(&sources, Strategy::XXMono, 8, false, 1, None).unwrap_err().to_string();
        assert!(err.starts_with("training source t: bitext"), "{err}");
        let err = MixedSampler::new(&sources[2..], Strategy::XY, 8, false, 1, None).unwrap_err().to_string();
        assert!(err.contains("training source m") && err.contains("x-y"), "{err}");
        let err = MixedSampler::new(&sources, hybrid, 41, false, 1, None).unwrap_err().to_string();
        assert!(err.starts_with("training source x: batch size 41"), "{err}");
        for w in [vec![1.0], vec![1.0, f64::NAN, 1.0], vec![0.0, 0.0, 0.0], vec![-1.0, 1.0, 1.0]] {
            assert!(matches!(MixedSampler::new(&sources, hybrid, 8, false, 1, Some(&w)), Err(MixError::Weights(_))));
        }
    }

    #[test]
    fn a_mixed_state_resumes_exactly_and_refuses_other_sources() {
        let sources = [source("a", SourceKind::Lareqa, 60, 3, 4), source("b", SourceKind::Bitext, 30, 2, 0)];
        let strategy = Strategy::Hybrid { alpha: 0.5 };
        let mut a = MixedSampler::new(&sources, strategy, 10, true, 9, None).unwrap();
        for _ in 0..13 {
            a.next_batch();
        }
        let saved = serde_json::to_string(&a.state()).unwrap();
        let expected: Vec<TrainBatch> = (0..20).map(|_| a.next_batch()).collect();
        let mut b = MixedSampler::new(&sources, strategy, 10, true, 9, None).unwrap();
        b.restore(serde_json::from_str(&saved).unwrap()).unwrap();
        assert_eq!(expected, (0..20).map(|_| b.next_batch()).collect::<Vec<_>>());
        let mut one = MixedSampler::new(&sources[..1], strategy, 10, true, 9, None).unwrap();
        let err = one.restore(serde_json::from_str(&saved).unwrap()).unwrap_err().to_string();
        assert!(err.contains("saved with 2 training sources, now 1"), "{err}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Any mix of sources (sizes, languages, gaps, kinds), any strategy, batch size and seed:
        /// every batch keeps its source's rules.
        #[test]
        fn every_batch_keeps_its_sources_rules(
            shapes in prop::collection::vec((8usize..60, 1usize..5, 0usize..3, 0u8..3), 1..4),
            strategy in prop_oneof![
                (0.0f64..=1.0).prop_map(|alpha| Strategy::Hybrid { alpha }),
                Just(Strategy::XY),
                Just(Strategy::XXMono),
                Just(Strategy::XX),
            ],
            batch_size in 2usize..8,
            seed in any::<u64>(),
        ) {
            let sources: Vec<Source> = shapes
                .iter()
                .enumerate()
                .map(|(i, &(n, langs, gap, kind))| {
                    let kind = [SourceKind::Lareqa, SourceKind::JsonLines, SourceKind::Bitext][kind as usize];
                    let langs = if kind == SourceKind::Bitext { 2 } else { langs };
                    source(&format!("s{i}"), kind, n, langs, if kind == SourceKind::Bitext { 0 } else { [0, 2, 3][gap] })
                })
                .collect();
            match MixedSampler::new(&sources, strategy, batch_size, true, seed, None) {
                Ok(mut m) => {
                    for _ in 0..40 {
                        let b = m.next_batch();
                        prop_assert!(!b.items.is_empty());
                        check(&sources, &b, strategy);
                    }
                }
                // Refused only where a source cannot give the strategy's batches.
                Err(MixError::Source { .. }) => {
                    let cross = |s: &Source| s.pairs.groups.iter().any(|g| g.iter().flatten().count() >= 2);
                    let bitext = sources.iter().any(|s| s.kind == SourceKind::Bitext);
                    let refused = match strategy {
                        Strategy::XXMono | Strategy::XX => bitext,
                        Strategy::XY => !sources.iter().all(cross),
                        Strategy::Hybrid { .. } => false,
                    };
                    prop_assert!(refused);
                }
                Err(e) => prop_assert!(false, "{e}"),
            }
        }
    }
}
