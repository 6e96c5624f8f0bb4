//! LAReQA-format answer-sentence retrieval sets: XQuAD-R and anything shaped like it.
//!
//! One SQuAD-style JSON file per language (`<lang>.json`), each paragraph carrying its
//! `sentences` and their character spans `sentence_breaks`. Every sentence of every paragraph is a
//! retrieval candidate; a question's answer is the sentence whose span holds `answer_start`.
//! Questions are linked across languages by their `id`: the answer sentence of the same id in every
//! language is relevant to each of them.
//!
//! The article split lives beside the data as `split.json` (`{"train": [titles], "dev": [...],
//! "test": [...]}`); [`ArticleSplit`] reads it and [`LareqaSet::restrict`] applies it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::DataError;

/// The eleven XQuAD-R languages.
pub const XQUAD_R_LANGS: [&str; 11] = ["ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh"];

/// Which articles to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Every article.
    All,
    /// The training articles.
    Train,
    /// The development articles (model selection during training).
    Dev,
    /// The held-out test articles.
    Test,
}

impl Split {
    /// Lower-case name (`all`, `train`, `dev`, `test`).
    pub fn name(self) -> &'static str {
        match self {
            Split::All => "all",
            Split::Train => "train",
            Split::Dev => "dev",
            Split::Test => "test",
        }
    }
}

/// A split name that is not `all`, `train`, `dev` or `test`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown split {0:?} (all, train, dev, test)")]
pub struct UnknownSplit(pub String);

impl std::str::FromStr for Split {
    type Err = UnknownSplit;
    fn from_str(s: &str) -> Result<Self, UnknownSplit> {
        match s {
            "all" => Ok(Split::All),
            "train" => Ok(Split::Train),
            "dev" => Ok(Split::Dev),
            "test" => Ok(Split::Test),
            _ => Err(UnknownSplit(s.to_string())),
        }
    }
}

/// A train/dev/test partition of articles by title.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArticleSplit {
    /// How the partition was made (free text).
    #[serde(default)]
    pub rule: String,
    /// Training article titles.
    pub train: Vec<String>,
    /// Development article titles.
    pub dev: Vec<String>,
    /// Test article titles.
    pub test: Vec<String>,
}

impl ArticleSplit {
    /// Parses `split.json`; a title in two parts is an error.
    pub fn from_json(bytes: &[u8], path: &str) -> Result<Self, DataError> {
        let split: ArticleSplit = serde_json::from_slice(bytes).map_err(|e| json_error(path, &e))?;
        let mut seen = HashSet::new();
        for title in split.train.iter().chain(&split.dev).chain(&split.test) {
            if !seen.insert(title) {
                return Err(DataError::invalid(path, format!("article {title:?} is in more than one part")));
            }
        }
        Ok(split)
    }

    /// Whether `title` belongs to `split` (always true for [`Split::All`]).
    pub fn contains(&self, split: Split, title: &str) -> bool {
        let part = match split {
            Split::All => return true,
            Split::Train => &self.train,
            Split::Dev => &self.dev,
            Split::Test => &self.test,
        };
        part.iter().any(|t| t == title)
    }
}

/// How a candidate is turned into encoder text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CandidateText {
    /// The sentence alone (the default, as in the paper's tables).
    Sentence,
    /// The sentence followed by its paragraph (LAReQA's sentence + context encoding, as one text).
    SentenceContext,
}

/// A paragraph of one language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paragraph {
    /// Index into [`LareqaSet::langs`].
    pub lang: usize,
    /// Index into [`LareqaSet::articles`].
    pub article: usize,
    /// The paragraph text.
    pub context: String,
}

/// A retrieval candidate: one sentence of one paragraph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Stable id, `<lang>-<number within the language>` (zero-padded, so ids sort by language then
    /// position).
    pub id: String,
    /// Index into [`LareqaSet::langs`].
    pub lang: usize,
    /// Index into [`LareqaSet::paragraphs`].
    pub paragraph: usize,
    /// The sentence.
    pub sentence: String,
}

/// A question of one language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// The SQuAD id, shared by the translations of the same question.
    pub id: String,
    /// Index into [`LareqaSet::langs`].
    pub lang: usize,
    /// The question text.
    pub text: String,
    /// Index into [`LareqaSet::candidates`] of the sentence holding the answer.
    pub answer: usize,
}

/// A multilingual LAReQA-format set: candidates of all languages and the questions that query them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LareqaSet {
    /// Language codes, in the order given when loading.
    pub langs: Vec<String>,
    /// Article titles (shared across languages).
    pub articles: Vec<String>,
    /// Paragraphs of all languages.
    pub paragraphs: Vec<Paragraph>,
    /// Candidates of all languages, grouped by language in [`LareqaSet::langs`] order.
    pub candidates: Vec<Candidate>,
    /// Questions of all languages, grouped by language.
    pub questions: Vec<Question>,
}

#[derive(Deserialize)]
struct SquadFile {
    data: Vec<SquadArticle>,
}

#[derive(Deserialize)]
struct SquadArticle {
    title: String,
    paragraphs: Vec<SquadParagraph>,
}

#[derive(Deserialize)]
struct SquadParagraph {
    context: String,
    qas: Vec<SquadQa>,
    sentences: Vec<String>,
    sentence_breaks: Vec<[usize; 2]>,
}

#[derive(Deserialize)]
struct SquadQa {
    id: String,
    question: String,
    answers: Vec<SquadAnswer>,
}

#[derive(Deserialize)]
struct SquadAnswer {
    answer_start: usize,
}

fn json_error(path: &str, e: &serde_json::Error) -> DataError {
    json_error_on_line(path, e, e.line())
}

/// A serde_json error as [`DataError::Json`] at `line` (for JSON lines, the file's line rather
/// than serde's line within the one parsed line); serde's own " at line L column C" is left out of
/// the message, since the error's prefix already says where.
pub(crate) fn json_error_on_line(path: &str, e: &serde_json::Error, line: usize) -> DataError {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let message = text.strip_suffix(&suffix).unwrap_or(&text).to_string();
    DataError::Json { path: path.to_string(), line, column: e.column(), message }
}

impl LareqaSet {
    /// Builds a set from `(language, file name for messages, file bytes)` triples.
    pub fn from_files(files: &[(&str, &str, &[u8])]) -> Result<Self, DataError> {
        let mut set = LareqaSet::default();
        let mut article_index: HashMap<String, usize> = HashMap::new();
        for (lang_index, &(lang, path, bytes)) in files.iter().enumerate() {
            if set.langs.iter().any(|l| l == lang) {
                return Err(DataError::invalid(path, format!("language {lang:?} given twice")));
            }
            set.langs.push(lang.to_string());
            let file: SquadFile = serde_json::from_slice(bytes).map_err(|e| json_error(path, &e))?;
            let mut question_ids = HashSet::new();
            let mut number = 0usize;
            for (a, article) in file.data.into_iter().enumerate() {
                let next = article_index.len();
                let article_id = *article_index.entry(article.title.clone()).or_insert(next);
                if article_id == next {
                    set.articles.push(article.title.clone());
                }
                for (p, paragraph) in article.paragraphs.into_iter().enumerate() {
                    let place = format!("article {a} ({:?}), paragraph {p}", article.title);
                    if paragraph.sentences.len() != paragraph.sentence_breaks.len() {
                        return Err(DataError::invalid(
                            path,
                            format!(
                                "{place}: {} sentences but {} sentence_breaks",
                                paragraph.sentences.len(),
                                paragraph.sentence_breaks.len()
                            ),
                        ));
                    }
                    if paragraph.sentences.is_empty() {
                        return Err(DataError::invalid(path, format!("{place}: no sentences")));
                    }
                    // Spans are character offsets into the context, in order and not overlapping.
                    let context_chars = paragraph.context.chars().count();
                    let mut previous_end = 0;
                    for (i, &[start, end]) in paragraph.sentence_breaks.iter().enumerate() {
                        if !(previous_end <= start && start <= end && end <= context_chars) {
                            return Err(DataError::invalid(
                                path,
                                format!(
                                    "{place}: sentence_breaks[{i}] = [{start}, {end}] is not an ordered span of the \
                                     {context_chars}-character context{}",
                                    if i > 0 { format!(" after [.., {previous_end}]") } else { String::new() }
                                ),
                            ));
                        }
                        previous_end = end;
                    }
                    let paragraph_id = set.paragraphs.len();
                    let first_candidate = set.candidates.len();
                    for sentence in &paragraph.sentences {
                        set.candidates.push(Candidate {
                            id: format!("{lang}-{number:06}"),
                            lang: lang_index,
                            paragraph: paragraph_id,
                            sentence: sentence.clone(),
                        });
                        number += 1;
                    }
                    for qa in paragraph.qas {
                        let Some(answer) = qa.answers.first() else {
                            return Err(DataError::invalid(path, format!("{place}: question {} has no answer", qa.id)));
                        };
                        if answer.answer_start >= context_chars {
                            return Err(DataError::invalid(
                                path,
                                format!(
                                    "{place}: question {}: answer_start {} is beyond the {context_chars}-character context",
                                    qa.id, answer.answer_start
                                ),
                            ));
                        }
                        let Some(sentence) = answer_sentence(&paragraph.sentence_breaks, answer.answer_start) else {
                            return Err(DataError::invalid(
                                path,
                                format!(
                                    "{place}: question {}: answer_start {} is before the first sentence",
                                    qa.id, answer.answer_start
                                ),
                            ));
                        };
                        if !question_ids.insert(qa.id.clone()) {
                            return Err(DataError::invalid(path, format!("{place}: question id {} repeats", qa.id)));
                        }
                        set.questions.push(Question {
                            id: qa.id,
                            lang: lang_index,
                            text: qa.question,
                            answer: first_candidate + sentence,
                        });
                    }
                    set.paragraphs.push(Paragraph {
                        lang: lang_index,
                        article: article_id,
                        context: paragraph.context,
                    });
                }
            }
        }
        Ok(set)
    }

    /// Reads `<dir>/<lang>.json` for every language in `langs`.
    pub fn load_dir(dir: &Path, langs: &[&str]) -> Result<Self, DataError> {
        if langs.is_empty() {
            return Err(DataError::invalid(&dir.display().to_string(), "no languages given"));
        }
        let mut contents = Vec::new();
        for lang in langs {
            let path = dir.join(format!("{lang}.json"));
            let bytes = std::fs::read(&path).map_err(|e| DataError::io(&path, e))?;
            contents.push((lang.to_string(), path.display().to_string(), bytes));
        }
        let files: Vec<(&str, &str, &[u8])> =
            contents.iter().map(|(l, p, b)| (l.as_str(), p.as_str(), b.as_slice())).collect();
        Self::from_files(&files)
    }

    /// Languages of a directory: every `<code>.json` whose stem is a short language code, sorted.
    pub fn dir_langs(dir: &Path) -> Result<Vec<String>, DataError> {
        let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
        let mut langs = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| DataError::io(dir, e))?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
                if (2..=3).contains(&stem.len()) && stem.chars().all(|c| c.is_ascii_lowercase()) {
                    langs.push(stem.to_string());
                }
            }
        }
        langs.sort();
        if langs.is_empty() {
            return Err(DataError::invalid(&dir.display().to_string(), "no <lang>.json files"));
        }
        Ok(langs)
    }

    /// Keeps the articles whose title passes `keep`, with all their paragraphs, candidates and
    /// questions (indices renumbered, candidate ids kept).
    pub fn restrict(&self, keep: impl Fn(&str) -> bool) -> LareqaSet {
        let mut out = LareqaSet { langs: self.langs.clone(), ..Default::default() };
        let mut article_map = vec![None; self.articles.len()];
        for (i, title) in self.articles.iter().enumerate() {
            if keep(title) {
                article_map[i] = Some(out.articles.len());
                out.articles.push(title.clone());
            }
        }
        let mut paragraph_map = vec![None; self.paragraphs.len()];
        for (i, p) in self.paragraphs.iter().enumerate() {
            if let Some(article) = article_map[p.article] {
                paragraph_map[i] = Some(out.paragraphs.len());
                out.paragraphs.push(Paragraph { article, ..p.clone() });
            }
        }
        let mut candidate_map = vec![None; self.candidates.len()];
        for (i, c) in self.candidates.iter().enumerate() {
            if let Some(paragraph) = paragraph_map[c.paragraph] {
                candidate_map[i] = Some(out.candidates.len());
                out.candidates.push(Candidate { paragraph, ..c.clone() });
            }
        }
        for q in &self.questions {
            if let Some(answer) = candidate_map[q.answer] {
                out.questions.push(Question { answer, ..q.clone() });
            }
        }
        out
    }

    /// Applies an [`ArticleSplit`].
    pub fn split(&self, split: &ArticleSplit, part: Split) -> LareqaSet {
        self.restrict(|title| split.contains(part, title))
    }

    /// The encoder text of candidate `i`.
    pub fn candidate_text(&self, i: usize, mode: CandidateText) -> String {
        let c = &self.candidates[i];
        match mode {
            CandidateText::Sentence => c.sentence.clone(),
            CandidateText::SentenceContext => format!("{} {}", c.sentence, self.paragraphs[c.paragraph].context),
        }
    }

    /// Relevant candidates of every question: the answer sentences of all questions with the same
    /// id, in every language (sorted, without repeats).
    pub fn relevant(&self) -> Vec<Vec<usize>> {
        let mut by_id: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for q in &self.questions {
            by_id.entry(q.id.as_str()).or_default().push(q.answer);
        }
        for answers in by_id.values_mut() {
            answers.sort_unstable();
            answers.dedup();
        }
        self.questions.iter().map(|q| by_id[q.id.as_str()].clone()).collect()
    }

    /// Number of candidates per language, in [`LareqaSet::langs`] order.
    pub fn candidates_per_lang(&self) -> Vec<usize> {
        let mut counts = vec![0; self.langs.len()];
        for c in &self.candidates {
            counts[c.lang] += 1;
        }
        counts
    }

    /// Number of questions per language, in [`LareqaSet::langs`] order.
    pub fn questions_per_lang(&self) -> Vec<usize> {
        let mut counts = vec![0; self.langs.len()];
        for q in &self.questions {
            counts[q.lang] += 1;
        }
        counts
    }
}

/// A set laid out for scoring: owned arrays in the shape of `mlr_eval::lareqa::LareqaInput`
/// (without the vectors). [`LareqaSet::eval_index`] builds it; `mlr eval`, `mlr train`'s dev
/// evaluation and the browser evaluator all use it, so they score the same subset the same way.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EvalIndex {
    /// Language codes.
    pub langs: Vec<String>,
    /// Candidate ids (every candidate of the set: the pool).
    pub candidate_ids: Vec<String>,
    /// Language index of each candidate.
    pub candidate_lang: Vec<usize>,
    /// Indices into [`LareqaSet::questions`] of the questions kept.
    pub questions: Vec<usize>,
    /// SQuAD id of each kept question.
    pub question_ids: Vec<String>,
    /// Language index of each kept question.
    pub query_lang: Vec<usize>,
    /// Group (distinct question id, numbered in order of appearance) of each kept question.
    pub query_group: Vec<usize>,
    /// Relevant candidates of each kept question (see [`LareqaSet::relevant`]).
    pub relevant: Vec<Vec<usize>>,
}

impl LareqaSet {
    /// The set laid out for scoring. With `max_questions = Some(n)` only the questions of the
    /// first `n` distinct question ids (in the order of [`LareqaSet::questions`]) are kept, in
    /// every language; the candidate pool stays whole.
    pub fn eval_index(&self, max_questions: Option<usize>) -> EvalIndex {
        let mut groups: HashMap<&str, usize> = HashMap::new();
        let relevant_all = self.relevant();
        let mut index = EvalIndex {
            langs: self.langs.clone(),
            candidate_ids: self.candidates.iter().map(|c| c.id.clone()).collect(),
            candidate_lang: self.candidates.iter().map(|c| c.lang).collect(),
            ..Default::default()
        };
        for (i, q) in self.questions.iter().enumerate() {
            let next = groups.len();
            let group = *groups.entry(q.id.as_str()).or_insert(next);
            if max_questions.is_some_and(|n| group >= n) {
                continue;
            }
            index.questions.push(i);
            index.question_ids.push(q.id.clone());
            index.query_lang.push(q.lang);
            index.query_group.push(group);
            index.relevant.push(relevant_all[i].clone());
        }
        index
    }

    /// The languages `langs` of this set, in that order, with everything renumbered (candidate
    /// ids kept). Unknown codes are an error naming the languages there are.
    pub fn restrict_langs(&self, langs: &[&str]) -> Result<LareqaSet, DataError> {
        let mut lang_map = vec![None; self.langs.len()];
        for (new, code) in langs.iter().enumerate() {
            let Some(old) = self.langs.iter().position(|l| l == code) else {
                return Err(DataError::invalid(
                    "languages",
                    format!("no language {code:?} (there are: {})", self.langs.join(", ")),
                ));
            };
            if lang_map[old].is_some() {
                return Err(DataError::invalid("languages", format!("language {code:?} given twice")));
            }
            lang_map[old] = Some(new);
        }
        let mut out = LareqaSet {
            langs: langs.iter().map(|l| l.to_string()).collect(),
            articles: self.articles.clone(),
            ..Default::default()
        };
        // Keep the set's layout (grouped by language) in the new language order.
        let mut paragraph_map = vec![None; self.paragraphs.len()];
        let mut candidate_map = vec![None; self.candidates.len()];
        for (new, code) in langs.iter().enumerate() {
            let old = self.langs.iter().position(|l| l == code).expect("checked above");
            for (i, p) in self.paragraphs.iter().enumerate().filter(|(_, p)| p.lang == old) {
                paragraph_map[i] = Some(out.paragraphs.len());
                out.paragraphs.push(Paragraph { lang: new, ..p.clone() });
            }
            for (i, c) in self.candidates.iter().enumerate().filter(|(_, c)| c.lang == old) {
                candidate_map[i] = Some(out.candidates.len());
                let paragraph = paragraph_map[c.paragraph].expect("a candidate's paragraph has its language");
                out.candidates.push(Candidate { lang: new, paragraph, ..c.clone() });
            }
            for q in self.questions.iter().filter(|q| q.lang == old) {
                let answer = candidate_map[q.answer].expect("an answer has its question's language");
                out.questions.push(Question { lang: new, answer, ..q.clone() });
            }
        }
        Ok(out)
    }
}

/// The sentence whose span `[start, end)` holds `answer_start`; if none does (an answer starting
/// on the whitespace between two sentences), the last sentence starting before it.
fn answer_sentence(breaks: &[[usize; 2]], answer_start: usize) -> Option<usize> {
    if let Some(i) = breaks.iter().position(|&[s, e]| s <= answer_start && answer_start < e) {
        return Some(i);
    }
    breaks.iter().rposition(|&[s, _]| s <= answer_start)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn article(title: &str, qid: &str, answer_start: usize) -> serde_json::Value {
        serde_json::json!({"title": title, "paragraphs": [{
            "context": "One two. Three four.",
            "sentences": ["One two.", "Three four."],
            "sentence_breaks": [[0, 8], [9, 20]],
            "qas": [{"id": qid, "question": "q?", "answers": [{"text": "x", "answer_start": answer_start}]}]
        }]})
    }

    fn file(title: &str, qid: &str, answer_start: usize) -> String {
        serde_json::json!({"version": "1", "data": [article(title, qid, answer_start)]}).to_string()
    }

    #[test]
    fn answers_link_across_languages_and_partial_questions_are_kept() {
        let en = file("A", "q1", 10);
        let de = file("A", "q2", 0);
        let set = LareqaSet::from_files(&[("en", "en.json", en.as_bytes()), ("de", "de.json", de.as_bytes())]).unwrap();
        assert_eq!(set.candidates.len(), 4);
        assert_eq!(set.articles, vec!["A"]);
        assert_eq!(set.questions[0].answer, 1);
        assert_eq!(set.questions[1].answer, 2);
        // q1 exists only in English: one relevant candidate; likewise q2 only in German.
        assert_eq!(set.relevant(), vec![vec![1], vec![2]]);
        assert_eq!(set.candidates[3].id, "de-000001");
    }

    #[test]
    fn answer_between_sentences_goes_to_the_preceding_one() {
        assert_eq!(answer_sentence(&[[0, 8], [9, 20]], 8), Some(0));
        assert_eq!(answer_sentence(&[[2, 8]], 0), None);
    }

    #[test]
    fn malformed_files_name_the_place() {
        let err = LareqaSet::from_files(&[("en", "en.json", b"{\"data\": [ {\"title\": 3} ]}")]).unwrap_err();
        assert!(err.to_string().starts_with("en.json: line 1, column"), "{err}");
        let broken = file("A", "q1", 0).replace("[[0,8],[9,20]]", "[[0,8]]");
        let err = LareqaSet::from_files(&[("en", "en.json", broken.as_bytes())]).unwrap_err();
        assert!(err.to_string().contains("2 sentences but 1 sentence_breaks"), "{err}");
    }

    #[test]
    fn answers_and_spans_outside_the_context_are_errors() {
        // Before, an answer_start past the context silently mapped to the last sentence.
        let err = LareqaSet::from_files(&[("en", "en.json", file("A", "q1", 20).as_bytes())]).unwrap_err().to_string();
        assert_eq!(
            err,
            "en.json: article 0 (\"A\"), paragraph 0: question q1: answer_start 20 is beyond the 20-character context"
        );
        assert!(LareqaSet::from_files(&[("en", "en.json", file("A", "q1", 19).as_bytes())]).is_ok());
        for (breaks, want) in [
            (
                "[[0,8],[9,21]]",
                "sentence_breaks[1] = [9, 21] is not an ordered span of the 20-character context after [.., 8]",
            ),
            ("[[0,8],[7,20]]", "sentence_breaks[1] = [7, 20] is not an ordered span"),
            ("[[5,2],[9,20]]", "sentence_breaks[0] = [5, 2] is not an ordered span of the 20-character context"),
        ] {
            let broken = file("A", "q1", 0).replace("[[0,8],[9,20]]", breaks);
            let err = LareqaSet::from_files(&[("en", "en.json", broken.as_bytes())]).unwrap_err().to_string();
            assert!(err.contains(want), "{breaks}: {err}");
        }
    }

    #[test]
    fn restrict_renumbers_and_keeps_links() {
        let a = serde_json::json!({"data": [article("A", "q1", 0), article("B", "q9", 10)]}).to_string();
        let set = LareqaSet::from_files(&[("en", "en.json", a.as_bytes())]).unwrap();
        assert_eq!(set.articles.len(), 2);
        let only_b = set.restrict(|t| t == "B");
        assert_eq!(only_b.candidates.len(), 2);
        assert_eq!(only_b.questions.len(), 1);
        assert_eq!(only_b.candidates[only_b.questions[0].answer].sentence, "Three four.");
        assert_eq!(only_b.candidates[0].id, "en-000002");
    }

    #[test]
    fn eval_index_keeps_the_first_question_ids_in_every_language() {
        let two = |l: &str| {
            serde_json::json!({"data": [article("A", "q1", 0), article("B", "q2", 10)]}).to_string().replace("q?", l)
        };
        let (en, de) = (two("en?"), two("de?"));
        let set = LareqaSet::from_files(&[("en", "en.json", en.as_bytes()), ("de", "de.json", de.as_bytes())]).unwrap();
        let all = set.eval_index(None);
        assert_eq!(all.questions, vec![0, 1, 2, 3]);
        assert_eq!(all.query_group, vec![0, 1, 0, 1]);
        assert_eq!(all.relevant[0], vec![0, 4]);
        let one = set.eval_index(Some(1));
        assert_eq!(one.questions, vec![0, 2]);
        assert_eq!(one.question_ids, vec!["q1", "q1"]);
        assert_eq!(one.query_lang, vec![0, 1]);
        assert_eq!(one.relevant, vec![vec![0, 4], vec![0, 4]]);
        assert_eq!(one.candidate_ids.len(), 8, "the pool stays whole");

        // Restricting to German then English renumbers but keeps ids and answers.
        let de_en = set.restrict_langs(&["de", "en"]).unwrap();
        assert_eq!(de_en.langs, vec!["de", "en"]);
        assert_eq!(de_en.candidates[0].id, "de-000000");
        assert_eq!(de_en.candidates[4].id, "en-000000");
        assert_eq!(de_en.questions[0].text, "de?");
        assert_eq!(de_en.candidates[de_en.questions[1].answer].sentence, "Three four.");
        assert_eq!(de_en.paragraphs[de_en.candidates[5].paragraph].lang, 1);
        let only_de = set.restrict_langs(&["de"]).unwrap();
        assert_eq!(only_de, LareqaSet::from_files(&[("de", "de.json", de.as_bytes())]).unwrap().restrict(|_| true));
        assert!(set.restrict_langs(&["fr"]).unwrap_err().to_string().contains("there are: en, de"));
    }

    #[test]
    fn split_rejects_overlap() {
        let err = ArticleSplit::from_json(br#"{"train": ["A"], "dev": ["A"], "test": []}"#, "split.json").unwrap_err();
        assert!(err.to_string().contains("more than one part"));
    }
}
