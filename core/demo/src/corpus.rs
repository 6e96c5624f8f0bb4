//! Search over the candidate sentences of a LAReQA-format set and the language-bias view of one
//! query: where the parallel answers (the same answer sentence in every language) land in the
//! pooled ranking, and their rank distance (max − min rank, the paper's bias measure for one query).
//!
//! Rankings follow `mlr_eval::score`: cosine (dot product of unit vectors), ties broken by
//! candidate id in descending byte order, as trec_eval and `mlr eval` do.

use std::collections::{BTreeMap, HashMap};

use mlr_data::lareqa::LareqaSet;
use mlr_eval::score::{dot_scores, ranking, tie_order};
use serde::{Deserialize, Serialize};

/// The pooled ranking of every candidate for one query.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranking {
    /// Score of each candidate.
    pub scores: Vec<f32>,
    /// Candidates in ranking order.
    pub order: Vec<usize>,
    /// 0-based pooled position of each candidate.
    pub position: Vec<usize>,
}

impl Ranking {
    /// 1-based pooled rank of candidate `c`.
    pub fn rank(&self, c: usize) -> usize {
        self.position[c] + 1
    }
}

/// One ranked candidate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Ranked {
    /// Candidate index.
    pub candidate: usize,
    /// 1-based rank in the list asked for (pooled, or one language).
    pub rank: usize,
    /// 1-based rank in the pooled ranking.
    pub pooled_rank: usize,
    /// Cosine similarity.
    pub score: f32,
}

/// Why a question's parallel answers are the ones a bias view measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupReason {
    /// The query is (after trimming) the text of this dataset question.
    DatasetQuestion,
    /// The best-ranked candidate that answers any question answers this one.
    TopResult,
}

impl GroupReason {
    /// In words, for the page.
    pub fn describe(self) -> &'static str {
        match self {
            GroupReason::DatasetQuestion => "the query is this dataset question",
            GroupReason::TopResult => "the best-ranked answer sentence answers it",
        }
    }
}

/// The question whose parallel answers a bias view measures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerGroup {
    /// SQuAD id (shared by every language).
    pub question_id: String,
    /// A question of that id: the query itself, or the one in the language of the best hit.
    pub question: usize,
    /// Why this group.
    pub reason: GroupReason,
}

/// Where one language's answer sentence lands.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LangRank {
    /// Language index.
    pub lang: usize,
    /// The best-ranked answer sentence of the group in that language.
    pub candidate: usize,
    /// Its 1-based pooled rank.
    pub rank: usize,
    /// Its score.
    pub score: f32,
}

/// A LAReQA-format set ready for search.
#[derive(Debug, Clone)]
pub struct Corpus {
    /// The set (all languages).
    pub set: LareqaSet,
    ties: Vec<u32>,
    /// Question indices answered by each candidate.
    answered_by: Vec<Vec<usize>>,
    /// Answer candidates of each question id.
    answers: HashMap<String, Vec<usize>>,
    /// Question index by trimmed text (the first, if two languages share a text).
    by_text: HashMap<String, usize>,
}

impl Corpus {
    /// Indexes `set`.
    pub fn new(set: LareqaSet) -> Self {
        let ties = tie_order(&set.candidates.iter().map(|c| c.id.as_str()).collect::<Vec<_>>());
        let mut answered_by = vec![Vec::new(); set.candidates.len()];
        let mut answers: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        let mut by_text = HashMap::new();
        for (i, q) in set.questions.iter().enumerate() {
            answered_by[q.answer].push(i);
            answers.entry(q.id.as_str()).or_default().push(q.answer);
            by_text.entry(q.text.trim().to_string()).or_insert(i);
        }
        let answers = answers
            .into_iter()
            .map(|(k, mut v)| {
                v.sort_unstable();
                v.dedup();
                (k.to_string(), v)
            })
            .collect();
        Self { set, ties, answered_by, answers, by_text }
    }

    /// The corpus of a manifest's dataset from the bytes of its files (in the manifest's order),
    /// checked against the manifest's counts.
    pub fn from_dataset(dataset: &crate::DatasetEntry, files: &[Vec<u8>]) -> Result<Self, crate::DemoError> {
        if files.len() != dataset.files.len() {
            return Err(crate::DemoError::Mismatch(format!(
                "{} data files, the manifest lists {}",
                files.len(),
                dataset.files.len()
            )));
        }
        let named: Vec<(&str, &str, &[u8])> = dataset
            .langs
            .iter()
            .zip(&dataset.files)
            .zip(files)
            .map(|((l, f), b)| (l.as_str(), f.path.as_str(), b.as_slice()))
            .collect();
        let set = LareqaSet::from_files(&named).map_err(|e| crate::DemoError::Mismatch(e.to_string()))?;
        if set.candidates.len() != dataset.n_candidates || set.questions.len() != dataset.n_questions {
            return Err(crate::DemoError::Mismatch(format!(
                "the corpus has {} candidates and {} questions, the manifest says {} and {}",
                set.candidates.len(),
                set.questions.len(),
                dataset.n_candidates,
                dataset.n_questions
            )));
        }
        Ok(Self::new(set))
    }

    /// Index of language `code`.
    pub fn lang(&self, code: &str) -> Option<usize> {
        self.set.langs.iter().position(|l| l == code)
    }

    /// Ranks every candidate (`candidates` row-major, `dim` wide) for one query vector.
    pub fn rank(&self, query: &[f32], candidates: &[f32], dim: usize) -> Ranking {
        let mut scores = vec![0f32; self.set.candidates.len()];
        dot_scores(query, candidates, dim, &mut scores);
        let order = ranking(&scores, &self.ties);
        let mut position = vec![0; order.len()];
        for (p, &c) in order.iter().enumerate() {
            position[c] = p;
        }
        Ranking { scores, order, position }
    }

    /// The first `k` candidates of the pooled ranking, or of language `lang` only.
    pub fn top(&self, ranking: &Ranking, k: usize, lang: Option<usize>) -> Vec<Ranked> {
        ranking
            .order
            .iter()
            .filter(|&&c| lang.is_none_or(|l| self.set.candidates[c].lang == l))
            .take(k)
            .enumerate()
            .map(|(i, &c)| Ranked { candidate: c, rank: i + 1, pooled_rank: ranking.rank(c), score: ranking.scores[c] })
            .collect()
    }

    /// The dataset question whose text is `text` (trimmed), if any.
    pub fn question_with_text(&self, text: &str) -> Option<usize> {
        self.by_text.get(text.trim()).copied()
    }

    /// Question indices answered by candidate `c`.
    pub fn answered_by(&self, c: usize) -> &[usize] {
        &self.answered_by[c]
    }

    /// Whether candidate `c` is an answer of question id `id`.
    pub fn answers(&self, c: usize, id: &str) -> bool {
        self.answers.get(id).is_some_and(|a| a.binary_search(&c).is_ok())
    }

    /// The group a bias view of query `text` measures: the dataset question with that text, else
    /// the question answered by the best-ranked candidate that answers any (the smallest index
    /// among its questions in that candidate's language).
    pub fn group(&self, text: &str, ranking: &Ranking) -> Option<AnswerGroup> {
        if let Some(q) = self.question_with_text(text) {
            return Some(AnswerGroup {
                question_id: self.set.questions[q].id.clone(),
                question: q,
                reason: GroupReason::DatasetQuestion,
            });
        }
        let c = *ranking.order.iter().find(|&&c| !self.answered_by[c].is_empty())?;
        let q = self.answered_by[c][0];
        Some(AnswerGroup { question_id: self.set.questions[q].id.clone(), question: q, reason: GroupReason::TopResult })
    }

    /// For each language with an answer to question id `id`, its best-ranked answer sentence.
    pub fn lang_ranks(&self, ranking: &Ranking, id: &str) -> Vec<LangRank> {
        let mut best: Vec<Option<LangRank>> = vec![None; self.set.langs.len()];
        for &c in self.answers.get(id).map(Vec::as_slice).unwrap_or(&[]) {
            let lang = self.set.candidates[c].lang;
            let r = LangRank { lang, candidate: c, rank: ranking.rank(c), score: ranking.scores[c] };
            if best[lang].is_none_or(|b| r.rank < b.rank) {
                best[lang] = Some(r);
            }
        }
        best.into_iter().flatten().collect()
    }
}

/// Rank distance of one query: max − min pooled rank of its parallel answers (0 for fewer than
/// two languages).
pub fn rank_distance(ranks: &[LangRank]) -> usize {
    let max = ranks.iter().map(|r| r.rank).max().unwrap_or(0);
    let min = ranks.iter().map(|r| r.rank).min().unwrap_or(0);
    max - min
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two languages, one paragraph of three sentences each; q1 is answered by sentence 1.
    fn corpus() -> Corpus {
        let file = |q: &str| {
            serde_json::json!({"data": [{"title": "A", "paragraphs": [{
                "context": "S0. S1. S2.", "sentences": ["S0.", "S1.", "S2."],
                "sentence_breaks": [[0, 3], [4, 7], [8, 11]],
                "qas": [{"id": "q1", "question": q, "answers": [{"text": "S1", "answer_start": 4}]}]}]}]})
            .to_string()
        };
        let (en, de) = (file("Which one?"), file("Welcher?"));
        Corpus::new(
            LareqaSet::from_files(&[("en", "en.json", en.as_bytes()), ("de", "de.json", de.as_bytes())]).unwrap(),
        )
    }

    #[test]
    fn pooled_and_filtered_rankings_with_ties_and_bias() {
        let c = corpus();
        // 1-d "vectors": candidate scores are their values; en-000000 and de-000000 tie at 0.9.
        let cands = [0.9, 0.5, 0.1, 0.9, 0.8, 0.2];
        let r = c.rank(&[1.0], &cands, 1);
        // Tie: descending id order puts en-000000 before de-000000.
        assert_eq!(r.order, vec![0, 3, 4, 1, 5, 2]);
        let top = c.top(&r, 2, Some(1));
        assert_eq!(
            top.iter().map(|h| (h.candidate, h.rank, h.pooled_rank)).collect::<Vec<_>>(),
            vec![(3, 1, 2), (4, 2, 3)]
        );
        assert_eq!(c.top(&r, 10, None).len(), 6);

        // Not a dataset question: the best-ranked answer sentence is de S1 (pooled rank 3).
        let g = c.group("something else", &r).unwrap();
        assert_eq!((g.question_id.as_str(), g.question, g.reason), ("q1", 1, GroupReason::TopResult));
        let ranks = c.lang_ranks(&r, "q1");
        assert_eq!(ranks.iter().map(|l| (l.lang, l.candidate, l.rank)).collect::<Vec<_>>(), vec![(0, 1, 4), (1, 4, 3)]);
        assert_eq!(rank_distance(&ranks), 1);
        assert!(c.answers(4, "q1") && !c.answers(3, "q1"));

        // The query is the English question itself.
        let g = c.group("  Which one? ", &r).unwrap();
        assert_eq!((g.question, g.reason), (0, GroupReason::DatasetQuestion));
        assert_eq!(rank_distance(&[]), 0);
    }
}
