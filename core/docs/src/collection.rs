//! A collection: passages from the user's files, the model that embeds them, and their vectors,
//! kept as one file (`.mlrc`) that the page stores, exports and imports and that
//! `mlr search --collection` reads.
//!
//! Layout (little-endian): `b"MLRC"`, `u32` version (1), `u32` length of the header, the header
//! (UTF-8 JSON: name, model, creation time, token budget, sources, passages),
//! then a vector file in the demo's `.mlrv` format (`mlr_demo::vectors`: Q8_0 rows when the width
//! is a multiple of 32, else f16) whose candidate rows are the vectors of the first passages, as
//! many as are embedded, and which has no question rows. A collection can be saved part-way: the
//! passages after the last row are embedded when the job resumes.
//!
//! A passage's id is its index, zero-padded (`000042`): rankings break ties by id as `mlr eval`
//! does, the same on the page and natively. Passages not yet embedded are reordered by token
//! count before embedding ([`Collection::order_for_embedding`]), so that a batch holds passages of
//! like length; each passage keeps its file and place.
//!
//! Translations: passages that share a `group` (given by their file, [`crate::read`], or marked
//! on the page, [`Collection::mark_translations`]) are one text in several languages.

use serde::{Deserialize, Serialize};

use mlr_demo::{VectorFile, VectorFormat};

use crate::lang::{assign, LangSource};
use crate::read::{read, Format, Place};
use crate::split::split;
use crate::DocsError;

const MAGIC: &[u8; 4] = b"MLRC";
const VERSION: u32 = 1;
/// The widest vectors a collection file may declare.
const MAX_DIM: usize = 8192;

/// The model whose vectors a collection holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRef {
    /// Its name in the demo's manifest (`e5-small`, `hybrid`).
    pub name: String,
    /// What identifies its weights: the manifest's [`mlr_demo::Manifest::model_key`].
    pub key: String,
    /// Vector width.
    pub dim: usize,
}

/// A file the collection was made from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// File name.
    pub name: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// How it was read ([`Format::name`]).
    pub format: String,
    /// Lines or rows skipped as malformed.
    pub skipped: usize,
}

/// One passage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Passage {
    /// The text.
    pub text: String,
    /// ISO 639-1 code (or the file's own code).
    pub lang: String,
    /// How the language was decided.
    pub lang_source: LangSource,
    /// Index of its file in [`Collection::sources`].
    pub source: usize,
    /// Where in that file.
    pub place: Place,
    /// 1-based part of the record it was cut from.
    pub part: usize,
    /// The id the file gave its record, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Its translation group, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Token count ([`crate::split`]).
    pub tokens: usize,
}

/// What [`Collection::add_file`] added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Added {
    /// Passages added.
    pub passages: usize,
    /// The read's skipped lines (the first 20) and their count.
    pub skipped: Vec<crate::read::Skip>,
    /// Lines or rows skipped in all.
    pub skipped_count: usize,
}

/// A collection of passages and the vectors of those embedded so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Collection {
    /// A name for people.
    pub name: String,
    /// The model that embeds it.
    pub model: ModelRef,
    /// When it was made (as the maker wrote it: an ISO 8601 time).
    pub created: String,
    /// The token budget its passages were split under.
    pub budget: usize,
    /// Its files.
    pub sources: Vec<Source>,
    /// Its passages; the first [`Collection::embedded`] have vectors.
    pub passages: Vec<Passage>,
    /// Row-major vectors of the embedded passages.
    #[serde(skip)]
    pub vectors: Vec<f32>,
}

impl Collection {
    /// An empty collection for `model`.
    pub fn new(name: &str, model: ModelRef, created: &str, budget: usize) -> Self {
        Collection {
            name: name.to_string(),
            model,
            created: created.to_string(),
            budget: budget.max(crate::split::MIN_BUDGET),
            sources: Vec::new(),
            passages: Vec::new(),
            vectors: Vec::new(),
        }
    }

    /// Reads a file, splits it under the collection's budget (`tokens`: the tokenizer's count of
    /// a text, special tokens left out), gives each passage its language and adds them. A file
    /// refused whole adds nothing.
    pub fn add_file(
        &mut self,
        name: &str,
        bytes: &[u8],
        format: &Format,
        tokens: &mut dyn FnMut(&str) -> usize,
    ) -> Result<Added, DocsError> {
        let got = read(name, bytes, format)?;
        let pieces = split(&got.records, self.budget, tokens);
        let texts: Vec<&str> = pieces.iter().map(|p| p.text.as_str()).collect();
        let given: Vec<Option<String>> = pieces.iter().map(|p| got.records[p.record].lang.clone()).collect();
        let langs = assign(&texts, &given);
        let source = self.sources.len();
        self.sources.push(Source {
            name: name.to_string(),
            bytes: bytes.len() as u64,
            format: format.name().to_string(),
            skipped: got.skipped_count,
        });
        for (p, (lang, lang_source)) in pieces.iter().zip(langs) {
            let record = &got.records[p.record];
            self.passages.push(Passage {
                text: p.text.clone(),
                lang,
                lang_source,
                source,
                place: record.place,
                part: p.part,
                id: record.id.clone(),
                group: record.group.clone(),
                tokens: p.tokens,
            });
        }
        Ok(Added { passages: pieces.len(), skipped: got.skipped, skipped_count: got.skipped_count })
    }

    /// Passages per language, most first (then by code).
    pub fn lang_counts(&self) -> Vec<(String, usize)> {
        let mut langs: Vec<(String, usize)> = Vec::new();
        for p in &self.passages {
            match langs.iter_mut().find(|(l, _)| *l == p.lang) {
                Some((_, n)) => *n += 1,
                None => langs.push((p.lang.clone(), 1)),
            }
        }
        langs.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        langs
    }

    /// Passages with vectors (the first ones).
    pub fn embedded(&self) -> usize {
        self.vectors.len() / self.model.dim.max(1)
    }

    /// Whether every passage has its vector.
    pub fn is_complete(&self) -> bool {
        self.embedded() == self.passages.len()
    }

    /// Vector of passage `i` (embedded).
    pub fn vector(&self, i: usize) -> &[f32] {
        &self.vectors[i * self.model.dim..(i + 1) * self.model.dim]
    }

    /// The id rankings break ties by: the passage's index, zero-padded.
    pub fn passage_id(i: usize) -> String {
        format!("{i:06}")
    }

    /// Sorts the passages not yet embedded by token count (stable), so batches hold passages of
    /// like length.
    pub fn order_for_embedding(&mut self) {
        let start = self.embedded();
        self.passages[start..].sort_by_key(|p| p.tokens);
    }

    /// The translation groups: each group's key and its passages (two or more), by key.
    pub fn groups(&self) -> Vec<(String, Vec<usize>)> {
        let mut by_key: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
        for (i, p) in self.passages.iter().enumerate() {
            if let Some(g) = &p.group {
                by_key.entry(g).or_default().push(i);
            }
        }
        by_key.into_iter().filter(|(_, v)| v.len() >= 2).map(|(k, v)| (k.to_string(), v)).collect()
    }

    /// Marks passages as translations of each other: they join the group one of them is in
    /// already (the first such), else a new one. Returns the group's key.
    pub fn mark_translations(&mut self, passages: &[usize]) -> Result<String, DocsError> {
        let mut set = passages.to_vec();
        set.sort_unstable();
        set.dedup();
        if set.len() < 2 {
            return Err(DocsError::Search("mark two passages or more as translations".into()));
        }
        if let Some(&i) = set.iter().find(|&&i| i >= self.passages.len()) {
            return Err(DocsError::Search(format!("no passage {i} (the collection has {})", self.passages.len())));
        }
        let key = match set.iter().find_map(|&i| self.passages[i].group.clone()) {
            Some(k) => k,
            None => (1..)
                .map(|n| format!("marked-{n}"))
                .find(|k| self.passages.iter().all(|p| p.group.as_ref() != Some(k)))
                .expect("a free key"),
        };
        for i in set {
            self.passages[i].group = Some(key.clone());
        }
        Ok(key)
    }

    /// Appends the vectors of the next passages (row-major, the model's width, finite), rounded
    /// as the file stores them.
    pub fn push_vectors(&mut self, rows: &[f32]) -> Result<(), DocsError> {
        let dim = self.model.dim;
        if dim == 0 || !rows.len().is_multiple_of(dim) {
            return Err(DocsError::Search(format!("{} values are not rows of width {dim}", rows.len())));
        }
        if self.embedded() + rows.len() / dim > self.passages.len() {
            return Err(DocsError::Search("more vectors than passages".into()));
        }
        if let Some(i) = rows.iter().position(|x| !x.is_finite()) {
            return Err(DocsError::Search(format!(
                "the encoder gave a non-finite value (row {}, dimension {})",
                i / dim,
                i % dim
            )));
        }
        // Kept as the file stores them, so a search gives the same ranking before and after a
        // save, an export or a reload.
        let stored = VectorFile::decode(&VectorFile::encode_as(self.vector_format(), dim, rows, &[]))
            .map_err(|e| DocsError::Search(format!("the vectors do not store: {e}")))?;
        self.vectors.extend_from_slice(&stored.candidates);
        Ok(())
    }

    /// The vector format the file stores rows in.
    fn vector_format(&self) -> VectorFormat {
        if self.model.dim.is_multiple_of(32) {
            VectorFormat::Q8
        } else {
            VectorFormat::F16
        }
    }

    /// The collection as a file.
    pub fn encode(&self) -> Vec<u8> {
        let header = serde_json::to_vec(self).expect("a collection serialises");
        let vectors = VectorFile::encode_as(self.vector_format(), self.model.dim.max(1), &self.vectors, &[]);
        let mut out = Vec::with_capacity(12 + header.len() + vectors.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&vectors);
        out
    }

    /// Reads a collection file, checking every field; an error names the one at fault.
    pub fn decode(bytes: &[u8]) -> Result<Self, DocsError> {
        let bad = |m: String| DocsError::Collection(m);
        if bytes.len() < 12 || &bytes[..4] != MAGIC {
            return Err(bad("not an mlr collection (no MLRC header)".into()));
        }
        let word = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
        if word(4) != VERSION {
            return Err(bad(format!("version {} (this build reads {VERSION})", word(4))));
        }
        let len = word(8) as usize;
        let header = bytes
            .get(12..12usize.saturating_add(len))
            .ok_or_else(|| bad(format!("the header is {len} bytes, the file has {} after it", bytes.len() - 12)))?;
        let mut c: Collection = serde_json::from_slice(header).map_err(|e| bad(format!("header: {e}")))?;
        let dim = c.model.dim;
        if dim == 0 || dim > MAX_DIM {
            return Err(bad(format!("model.dim is {dim} (1 to {MAX_DIM})")));
        }
        if c.budget == 0 {
            return Err(bad("budget is 0".into()));
        }
        for (i, p) in c.passages.iter().enumerate() {
            let field = |f: &str| format!("passages[{i}].{f}");
            if p.source >= c.sources.len() {
                return Err(bad(format!("{}: file {} of {}", field("source"), p.source, c.sources.len())));
            }
            if p.text.trim().is_empty() {
                return Err(bad(format!("{} is empty", field("text"))));
            }
            if !crate::read::is_lang_code(&p.lang) {
                return Err(bad(format!("{} is not a language code: {:?}", field("lang"), p.lang)));
            }
            if p.part == 0 {
                return Err(bad(format!("{} is 0 (parts count from 1)", field("part"))));
            }
        }
        let v = VectorFile::decode(&bytes[12 + len..]).map_err(|e| bad(format!("vectors: {e}")))?;
        if v.dim != dim {
            return Err(bad(format!("vectors: width {}, model.dim {dim}", v.dim)));
        }
        if v.n_questions() != 0 {
            return Err(bad(format!("vectors: {} question rows (a collection has none)", v.n_questions())));
        }
        if v.n_candidates() > c.passages.len() {
            return Err(bad(format!("vectors: {} rows for {} passages", v.n_candidates(), c.passages.len())));
        }
        if v.candidates.iter().any(|x| !x.is_finite()) {
            return Err(bad("vectors: a non-finite value".into()));
        }
        c.vectors = v.candidates;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> usize {
        s.split_whitespace().count()
    }

    fn collection() -> Collection {
        let model = ModelRef { name: "e5-small".into(), key: "abc".into(), dim: 32 };
        let mut c = Collection::new("notes", model, "2026-12-07T20:00:00Z", 16);
        let en = "The university was founded in 1890 by John D. Rockefeller.\n\nIt lies in Hyde Park, on the South Side of Chicago.";
        c.add_file("en.txt", en.as_bytes(), &Format::Text, &mut words).unwrap();
        let de = "{\"text\": \"Die Universität wurde 1890 von John D. Rockefeller gegründet.\", \"id\": \"u1\"}\n{\"text\": \"ok\", \"lang\": \"de\"}\nbroken\n";
        let added = c.add_file("de.jsonl", de.as_bytes(), &Format::JsonLines, &mut words).unwrap();
        assert_eq!((added.passages, added.skipped_count), (2, 1));
        c
    }

    #[test]
    fn files_become_passages_with_languages_and_places() {
        let c = collection();
        let got: Vec<(&str, usize, String, usize)> =
            c.passages.iter().map(|p| (p.lang.as_str(), p.source, p.place.to_string(), p.tokens)).collect();
        assert_eq!(
            got,
            vec![
                ("en", 0, "¶1".to_string(), 10),
                ("en", 0, "¶2".to_string(), 11),
                ("de", 1, "line 1".to_string(), 9),
                ("de", 1, "line 2".to_string(), 1)
            ]
        );
        assert_eq!(c.passages[2].id.as_deref(), Some("u1"));
        // Two of each: a tie, broken by code.
        assert_eq!(c.lang_counts(), vec![("de".to_string(), 2), ("en".to_string(), 2)]);
        assert_eq!(c.passages[3].lang_source, LangSource::Given);
        assert_eq!(c.sources[1], Source { name: "de.jsonl".into(), bytes: 124, format: "jsonl".into(), skipped: 1 });
        // A refused file adds nothing.
        let mut d = c.clone();
        assert!(d.add_file("x.csv", b"\x00\x01", &Format::Csv { column: None, tab: false }, &mut words).is_err());
        assert_eq!(d, c);
    }

    #[test]
    fn ordering_embedding_and_the_file_round_trip() {
        let mut c = collection();
        assert_eq!(c.mark_translations(&[2, 0, 2]).unwrap(), "marked-1");
        c.order_for_embedding();
        let tokens: Vec<usize> = c.passages.iter().map(|p| p.tokens).collect();
        assert_eq!(tokens, vec![1, 9, 10, 11]);
        // The group follows its passages: the German sentence is now 1, the English one 2.
        assert_eq!(c.groups(), vec![("marked-1".to_string(), vec![1, 2])]);
        assert_eq!(c.passages[1].text, "Die Universität wurde 1890 von John D. Rockefeller gegründet.");
        // Marking one of them again with another passage joins the group.
        assert_eq!(c.clone().mark_translations(&[3, 1]).unwrap(), "marked-1");

        // Half embedded: a partial collection survives the round trip.
        let row = |k: usize| (0..32).map(|j| if j == k { 1.0 } else { 0.0 }).collect::<Vec<f32>>();
        c.push_vectors(&[row(0), row(1)].concat()).unwrap();
        assert_eq!((c.embedded(), c.is_complete()), (2, false));
        let back = Collection::decode(&c.encode()).unwrap();
        assert_eq!(back, c);
        // Adding more passages later reorders only those not embedded.
        c.push_vectors(&[row(2), row(3)].concat()).unwrap();
        assert!(c.is_complete());
        assert!(c.push_vectors(&row(4)).is_err());
        assert!(c.clone().push_vectors(&[f32::NAN; 32]).is_err());
        assert!(c.mark_translations(&[1, 1]).is_err() && c.mark_translations(&[1, 9]).is_err());
        assert_eq!(Collection::passage_id(42), "000042");
    }

    #[test]
    fn a_damaged_file_is_refused_naming_the_field() {
        let c = collection();
        let bytes = c.encode();
        let err = |b: &[u8]| Collection::decode(b).unwrap_err().to_string();
        assert!(err(b"MLRV").contains("no MLRC header"));
        let mut v2 = bytes.clone();
        v2[4] = 2;
        assert!(err(&v2).contains("version 2"));
        assert!(err(&bytes[..40]).contains("the header is"));
        let edit = |from: &str, to: &str| {
            let len = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
            let header = String::from_utf8(bytes[12..12 + len].to_vec()).unwrap().replacen(from, to, 1);
            let mut out = bytes[..8].to_vec();
            out.extend_from_slice(&(header.len() as u32).to_le_bytes());
            out.extend_from_slice(header.as_bytes());
            out.extend_from_slice(&bytes[12 + len..]);
            out
        };
        assert!(err(&edit("\"source\":1", "\"source\":5")).contains("passages[2].source: file 5 of 2"));
        assert!(err(&edit("\"lang\":\"de\"", "\"lang\":\"<b>\"")).contains("passages[2].lang"));
        assert!(err(&edit("\"dim\":32", "\"dim\":0")).contains("model.dim is 0"));
        assert!(err(&edit("\"part\":1", "\"part\":0")).contains("passages[0].part is 0"));
        assert!(err(&edit("\"name\":\"notes\",", "")).contains("missing field `name`"));
        // Vectors of another width than the model's.
        let mut other = c.clone();
        other.model.dim = 64;
        let mut wrong = other.encode();
        let header_end = 12 + u32::from_le_bytes(wrong[8..12].try_into().unwrap()) as usize;
        wrong.truncate(header_end);
        wrong.extend_from_slice(&VectorFile::encode_as(VectorFormat::Q8, 32, &[0.5; 32], &[]));
        assert!(err(&wrong).contains("vectors: width 32, model.dim 64"));
    }
}
