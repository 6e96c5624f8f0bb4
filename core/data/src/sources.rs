//! Training data as users have it: each source becomes a [`ParallelPairs`] table.
//!
//! - **LAReQA-format directory** (XQuAD-R, MLQA-R): see [`ParallelPairs::from_lareqa`]; a question
//!   id is a group, its translations the group's languages.
//! - **JSON lines of parallel pairs** ([`parse_jsonl`]): one object per line,
//!   `{"group": "q17", "lang": "de", "query": "…", "passage": "…", "negatives": ["…"]}`.
//!   Rows with the same `group` (a string or an integer) are translations of each other; a group in
//!   one language is fine (it then serves monolingual batches only). `negatives` is optional: hard
//!   negatives for that language's passage (used with `hard_negatives`). Blank lines are skipped;
//!   anything else that is not such an object, an empty text, an unknown field or a second row for
//!   the same (group, lang) is an error naming the line.
//! - **Bitext file pair** ([`parse_bitext`], the Tatoeba layout `<name>.<a>-<b>.<a>` and
//!   `<name>.<a>-<b>.<b>`): line i of one file translates line i of the other. Each line is a
//!   group with the sentence as both query and passage in its language, so such a source gives
//!   **cross-lingual examples only** (a monolingual pair would match a sentence with itself).
//!
//! A source's *size* ([`ParallelPairs::size`]) is the number of (group, language) rows it holds:
//! the examples it can give, the weight of "sampled based on dataset size".

use std::collections::HashMap;

use serde::Deserialize;

use crate::batches::{PairText, ParallelPairs};
use crate::lareqa::json_error_on_line;
use crate::tatoeba::aligned_lines;
use crate::DataError;

/// What kind of file a source was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// A LAReQA-format directory.
    Lareqa,
    /// A JSON-lines file of parallel pairs.
    JsonLines,
    /// A bitext file pair: cross-lingual examples only.
    Bitext,
}

impl SourceKind {
    /// Whether its monolingual pairs are real (query and passage differ); not for bitext.
    pub fn has_monolingual_pairs(self) -> bool {
        self != SourceKind::Bitext
    }
}

/// One training source: where it came from and its pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The path as given (for messages and logs).
    pub name: String,
    /// Its format.
    pub kind: SourceKind,
    /// Its pairs in the training languages.
    pub pairs: ParallelPairs,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum GroupId {
    Text(String),
    Number(i64),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Row {
    group: GroupId,
    lang: String,
    query: String,
    passage: String,
    #[serde(default)]
    negatives: Vec<String>,
}

/// Parses a JSON-lines file of parallel pairs (see the module docs). Languages are listed in
/// order of first appearance, groups likewise.
pub fn parse_jsonl(text: &str, path: &str) -> Result<ParallelPairs, DataError> {
    let mut langs: Vec<String> = Vec::new();
    let mut ids: Vec<String> = Vec::new();
    let mut group_index: HashMap<String, usize> = HashMap::new();
    let mut rows: Vec<(usize, usize, PairText)> = Vec::new();
    let mut seen: HashMap<(usize, usize), usize> = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |message: String| DataError::invalid(path, format!("line {line_no}: {message}"));
        let row: Row = serde_json::from_str(line).map_err(|e| json_error_on_line(path, &e, line_no))?;
        let group = match row.group {
            GroupId::Text(s) if s.is_empty() => return Err(bad("empty \"group\"".into())),
            GroupId::Text(s) => s,
            GroupId::Number(n) => n.to_string(),
        };
        if row.lang.trim().is_empty() || row.lang.chars().any(char::is_whitespace) {
            return Err(bad(format!("\"lang\" must be a language code without spaces, got {:?}", row.lang)));
        }
        for (field, value) in [("query", &row.query), ("passage", &row.passage)] {
            if value.trim().is_empty() {
                return Err(bad(format!("empty \"{field}\"")));
            }
        }
        if let Some(k) = row.negatives.iter().position(|n| n.trim().is_empty()) {
            return Err(bad(format!("\"negatives\"[{k}] is empty")));
        }
        let l = match langs.iter().position(|x| *x == row.lang) {
            Some(l) => l,
            None => {
                langs.push(row.lang.clone());
                langs.len() - 1
            }
        };
        let g = *group_index.entry(group.clone()).or_insert_with(|| {
            ids.push(group.clone());
            ids.len() - 1
        });
        if let Some(first) = seen.insert((g, l), line_no) {
            return Err(bad(format!("group {group:?} already has a {:?} row (line {first})", row.lang)));
        }
        let text = PairText { question: row.query, answer: row.passage, paragraph_others: row.negatives };
        rows.push((g, l, text));
    }
    if rows.is_empty() {
        return Err(DataError::invalid(path, "no rows"));
    }
    let mut groups: Vec<Vec<Option<PairText>>> = vec![vec![None; langs.len()]; ids.len()];
    for (g, l, text) in rows {
        groups[g][l] = Some(text);
    }
    Ok(ParallelPairs { langs, ids, groups })
}

/// Pairs two line-aligned files (`a` in language `lang_a`, `b` in `lang_b`): line i is group i.
/// The line counts must agree, languages must differ, and no line may be empty.
pub fn parse_bitext(lang_a: &str, a: &str, lang_b: &str, b: &str, path: &str) -> Result<ParallelPairs, DataError> {
    if lang_a == lang_b {
        return Err(DataError::invalid(path, format!("both sides are in {lang_a:?}")));
    }
    let (a, b) = aligned_lines(lang_a, a, lang_b, b, path)?;
    let side = |s: &str| PairText { question: s.to_string(), answer: s.to_string(), paragraph_others: Vec::new() };
    let mut groups = Vec::with_capacity(a.len());
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        if x.trim().is_empty() || y.trim().is_empty() {
            let lang = if x.trim().is_empty() { lang_a } else { lang_b };
            return Err(DataError::invalid(path, format!("line {}: empty sentence in {lang}", i + 1)));
        }
        groups.push(vec![Some(side(x)), Some(side(y))]);
    }
    Ok(ParallelPairs {
        langs: vec![lang_a.to_string(), lang_b.to_string()],
        ids: (1..=a.len()).map(|i| format!("line {i}")).collect(),
        groups,
    })
}

/// The two languages of a bitext file in the Tatoeba layout, `<name>.<a>-<b>.<side>` with side
/// `a` or `b`: `(a, b)`, or `None` if the name does not follow it.
pub fn bitext_langs(file_name: &str) -> Option<(String, String)> {
    let mut parts = file_name.rsplitn(3, '.');
    let side = parts.next()?;
    let pair = parts.next()?;
    parts.next()?;
    let (a, b) = pair.split_once('-')?;
    let code = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    (code(a) && code(b) && a != b && (side == a || side == b)).then(|| (a.to_string(), b.to_string()))
}

impl ParallelPairs {
    /// The (group, language) rows: a source's size.
    pub fn size(&self) -> usize {
        self.groups.iter().map(|g| g.iter().filter(|p| p.is_some()).count()).sum()
    }

    /// Only the languages of `keep` that the table has (in `keep`'s order); groups left in no
    /// language are dropped.
    pub fn restrict_langs(&self, keep: &[&str]) -> ParallelPairs {
        let slots: Vec<usize> = keep.iter().filter_map(|k| self.langs.iter().position(|l| l == k)).collect();
        let mut ids = Vec::new();
        let mut groups = Vec::new();
        for (id, group) in self.ids.iter().zip(&self.groups) {
            let kept: Vec<Option<PairText>> = slots.iter().map(|&l| group[l].clone()).collect();
            if kept.iter().any(Option::is_some) {
                ids.push(id.clone());
                groups.push(kept);
            }
        }
        ParallelPairs { langs: slots.iter().map(|&l| self.langs[l].clone()).collect(), ids, groups }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROWS: &str = r#"{"group": "q1", "lang": "de", "query": "Wer?", "passage": "Er.", "negatives": ["Sie."]}
{"group": "q1", "lang": "en", "query": "Who?", "passage": "He."}

{"group": 2, "lang": "en", "query": "Where?", "passage": "There."}
"#;

    #[test]
    fn json_lines_group_translations() {
        let p = parse_jsonl(ROWS, "pairs.jsonl").unwrap();
        assert_eq!(p.langs, ["de", "en"]);
        assert_eq!(p.ids, ["q1", "2"]);
        assert_eq!(p.groups[0][0].as_ref().unwrap().paragraph_others, ["Sie."]);
        assert_eq!(p.groups[0][1].as_ref().unwrap().answer, "He.");
        assert!(p.groups[1][0].is_none());
        assert_eq!((p.size(), p.langs_of(1)), (3, vec![1]));
    }

    #[test]
    fn bad_json_lines_name_the_line() {
        let cases = [
            ("{\"group\": \"a\", \"lang\": \"de\", \"query\": \"x\"}\n", "line 1", "passage"),
            (
                "\n{\"group\": \"a\", \"lang\": \"de\", \"query\": \"\", \"passage\": \"p\"}\n",
                "line 2",
                "empty \"query\"",
            ),
            (
                "{\"group\": \"a\", \"lang\": \"de\", \"query\": \"q\", \"passage\": \"p\", \"pasage\": 1}\n",
                "line 1",
                "pasage",
            ),
            ("[1, 2]\n", "line 1", ""),
            ("{\"group\": 1.5, \"lang\": \"de\", \"query\": \"q\", \"passage\": \"p\"}\n", "line 1", ""),
            (
                "{\"group\": \"a\", \"lang\": \"d e\", \"query\": \"q\", \"passage\": \"p\"}\n",
                "line 1",
                "language code",
            ),
            (
                "{\"group\": \"a\", \"lang\": \"de\", \"query\": \"q\", \"passage\": \"p\", \"negatives\": [\" \"]}\n",
                "line 1",
                "negatives",
            ),
        ];
        for (text, line, what) in cases {
            let err = parse_jsonl(text, "p.jsonl").unwrap_err().to_string();
            assert!(err.starts_with("p.jsonl: ") && err.contains(line) && err.contains(what), "{err}");
        }
        let twice =
            format!("{}{}", ROWS, "{\"group\": \"q1\", \"lang\": \"en\", \"query\": \"W?\", \"passage\": \"H.\"}\n");
        let err = parse_jsonl(&twice, "p.jsonl").unwrap_err().to_string();
        assert!(err.contains("line 5: group \"q1\" already has a \"en\" row (line 2)"), "{err}");
        assert!(parse_jsonl("\n\n", "p.jsonl").unwrap_err().to_string().contains("no rows"));
    }

    #[test]
    fn bitext_lines_are_groups_in_two_languages() {
        let p = parse_bitext("deu", "Hallo.\nJa.\n", "eng", "Hello.\nYes.\n", "t").unwrap();
        assert_eq!((p.langs.clone(), p.groups.len(), p.size()), (vec!["deu".to_string(), "eng".into()], 2, 4));
        assert_eq!(p.groups[1][1].as_ref().unwrap().question, "Yes.");
        assert!(parse_bitext("deu", "a\nb\n", "eng", "a\n", "t").unwrap_err().to_string().contains("not aligned"));
        assert!(parse_bitext("deu", "a\n\n", "eng", "a\nb\n", "t").unwrap_err().to_string().contains("line 2"));
        assert!(parse_bitext("deu", "a\n", "deu", "a\n", "t").is_err());
        assert_eq!(bitext_langs("tatoeba.deu-eng.eng"), Some(("deu".into(), "eng".into())));
        assert_eq!(bitext_langs("x.de-fr.de"), Some(("de".into(), "fr".into())));
        assert_eq!(bitext_langs("x.de-fr.it"), None);
        assert_eq!(bitext_langs("pairs.jsonl"), None);
    }

    #[test]
    fn restricting_languages_keeps_order_and_drops_empty_groups() {
        let p = parse_jsonl(ROWS, "p").unwrap();
        let de = p.restrict_langs(&["fr", "de"]);
        assert_eq!((de.langs.clone(), de.ids.clone()), (vec!["de".to_string()], vec!["q1".to_string()]));
        let both = p.restrict_langs(&["en", "de"]);
        assert_eq!(both.langs, ["en", "de"]);
        assert_eq!(both.groups[0][0].as_ref().unwrap().question, "Who?");
    }
}
