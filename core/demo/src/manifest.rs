//! `manifest.json`: what the demo ships, so the browser can check every byte it downloads.

use serde::{Deserialize, Serialize};

use crate::DemoError;

/// Version of the manifest layout.
pub const MANIFEST_VERSION: u32 = 2;

/// The largest file a gzip entry may decompress to (a hostile file cannot exhaust memory).
pub const MAX_DECOMPRESSED: u64 = 1 << 30;

/// One shipped file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path relative to the manifest's directory (`/`-separated).
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Lower-case hex sha256 of the content (as stored, compressed or not).
    pub sha256: String,
    /// `gzip` when the file is stored compressed ([`FileEntry::decode`] inflates it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// What the content is stored as, for people and reports (`q4_0+f32`, `int8`, `json`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

impl FileEntry {
    /// Describes `content` stored at `path`.
    pub fn of(path: &str, content: &[u8]) -> Self {
        Self {
            path: path.to_string(),
            bytes: content.len() as u64,
            sha256: crate::sha256_hex(content),
            encoding: None,
            format: None,
        }
    }

    /// The same entry with its content format named.
    pub fn with_format(mut self, format: &str) -> Self {
        self.format = Some(format.to_string());
        self
    }

    /// Checks `content` ([`FileEntry::verify`]) and returns it decompressed if it is stored so.
    pub fn decode(&self, content: Vec<u8>) -> Result<Vec<u8>, DemoError> {
        self.verify(&content)?;
        self.inflate(content)
    }

    /// Returns already verified `content` decompressed if it is stored so.
    pub fn inflate(&self, content: Vec<u8>) -> Result<Vec<u8>, DemoError> {
        match self.encoding.as_deref() {
            None => Ok(content),
            Some("gzip") => {
                use std::io::Read;
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(content.as_slice())
                    .take(MAX_DECOMPRESSED + 1)
                    .read_to_end(&mut out)
                    .map_err(|e| DemoError::Mismatch(format!("{}: not a gzip file ({e})", self.path)))?;
                if out.len() as u64 > MAX_DECOMPRESSED {
                    return Err(DemoError::Mismatch(format!(
                        "{}: decompresses to more than {} MB",
                        self.path,
                        MAX_DECOMPRESSED >> 20
                    )));
                }
                Ok(out)
            }
            Some(other) => Err(DemoError::Manifest(format!("{}: unknown encoding {other:?} (gzip)", self.path))),
        }
    }

    /// Checks `content` against the size and hash; the error names the file.
    pub fn verify(&self, content: &[u8]) -> Result<(), DemoError> {
        if content.len() as u64 != self.bytes {
            return Err(DemoError::Mismatch(format!(
                "{}: {} bytes, the manifest says {}",
                self.path,
                content.len(),
                self.bytes
            )));
        }
        let got = crate::sha256_hex(content);
        if got != self.sha256 {
            return Err(DemoError::Mismatch(format!(
                "{}: sha256 {}…, the manifest says {}…",
                self.path,
                &got[..12],
                self.sha256.chars().take(12).collect::<String>()
            )));
        }
        Ok(())
    }
}

/// The LAReQA-format dataset of the corpus (XQuAD-R).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetEntry {
    /// Name shown on the page.
    pub name: String,
    /// Language codes, in the order of the vector rows.
    pub langs: Vec<String>,
    /// One `<lang>.json` per language, in `langs` order.
    pub files: Vec<FileEntry>,
    /// The article split (`split.json`).
    pub split: FileEntry,
    /// Candidates of all languages.
    pub n_candidates: usize,
    /// Questions of all languages.
    pub n_questions: usize,
    /// Licence of the data, in words.
    pub licence: String,
}

/// One model the page can load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelEntry {
    /// Short name (a directory name: `e5-small`, `hybrid`, …).
    pub name: String,
    /// What it is, for people.
    pub label: String,
    /// `config.json`, `tokenizer.json`, `model.safetensors` (in this order).
    pub files: Vec<FileEntry>,
    /// Storage of the weights: `f32`, `f16`, or `compact` (Q4_0 where lossless, the rest as
    /// [`FileEntry::format`] of the weights says; see `mlr_weights::to_demo_safetensors`).
    pub dtype: String,
    /// The model whose `model.safetensors` this one's leaves tensors to (a fine-tuned model's
    /// frozen word table): an earlier entry of the manifest, loaded from the same download.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// The word table's pieces when the weights keep it beside them (`mlr_weights::words`), in
    /// order; fetched as queries need them. A model with a `base` uses the base's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub words: Vec<FileEntry>,
    /// The corpus vectors (see [`crate::vectors`]).
    pub vectors: FileEntry,
    /// Vector width.
    pub dim: usize,
    /// The model's LAReQA report from the shipped vectors, on the articles of `report_split`.
    pub report: mlr_eval::lareqa::LareqaReport,
    /// `test` (the held-out articles: fair to fine-tuned models) or `all` (no split file).
    pub report_split: String,
}

/// Everything the demo ships.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_VERSION`].
    pub version: u32,
    /// The corpus.
    pub dataset: DatasetEntry,
    /// The models; the first is the default.
    pub models: Vec<ModelEntry>,
    /// The command that wrote the manifest.
    pub command: String,
}

impl Manifest {
    /// Parses and checks `manifest.json`.
    pub fn from_json(bytes: &[u8]) -> Result<Self, DemoError> {
        let m: Manifest = serde_json::from_slice(bytes).map_err(|e| DemoError::Manifest(e.to_string()))?;
        if m.version != MANIFEST_VERSION {
            return Err(DemoError::Manifest(format!("version {} (this build reads {MANIFEST_VERSION})", m.version)));
        }
        if m.models.is_empty() {
            return Err(DemoError::Manifest("no models".into()));
        }
        if m.dataset.files.len() != m.dataset.langs.len() {
            return Err(DemoError::Manifest(format!(
                "{} languages but {} data files",
                m.dataset.langs.len(),
                m.dataset.files.len()
            )));
        }
        for (i, model) in m.models.iter().enumerate() {
            if let Some(base) = &model.base {
                match m.models[..i].iter().find(|b| b.name == *base) {
                    None => {
                        return Err(DemoError::Manifest(format!(
                            "model {}: its base {base:?} is not listed before it",
                            model.name
                        )))
                    }
                    Some(b) if b.base.is_some() => {
                        return Err(DemoError::Manifest(format!(
                            "model {}: its base {base:?} has a base itself",
                            model.name
                        )))
                    }
                    Some(_) => {}
                }
            }
            if model.files.len() != 3 {
                return Err(DemoError::Manifest(format!(
                    "model {}: {} files, expected 3",
                    model.name,
                    model.files.len()
                )));
            }
            // The page shows these numbers as they are: one outside its range (a damaged or edited
            // manifest) is refused, as the evaluator refuses to print one.
            if let Err(e) = mlr_eval::lareqa::check_ranges(&model.report) {
                let why = match e {
                    mlr_eval::EvalError::OutOfRange { measure, value, range } => {
                        format!("{measure} = {value} lies outside {range}")
                    }
                    other => other.to_string(),
                };
                return Err(DemoError::Manifest(format!("model {}: report: {why}", model.name)));
            }
        }
        Ok(m)
    }

    /// The model whose weights `entry`'s leave tensors to, if any (checked when parsing).
    pub fn base_of(&self, entry: &ModelEntry) -> Option<&ModelEntry> {
        entry.base.as_ref().and_then(|b| self.models.iter().find(|m| m.name == *b))
    }

    /// The first file the manifest lists with `entry`'s content (the same sha256): a later model's
    /// `tokenizer.json` that is the base's is then fetched, and cached, once.
    pub fn canonical<'a>(&'a self, entry: &'a FileEntry) -> &'a FileEntry {
        let models = self.models.iter().flat_map(|m| m.files.iter().chain([&m.vectors]).chain(&m.words));
        models.chain(&self.dataset.files).find(|f| f.sha256 == entry.sha256 && f.bytes == entry.bytes).unwrap_or(entry)
    }

    /// What identifies a model's weights, for the vectors made with it (a collection of the
    /// user's documents, `mlr_docs`): the sha256 of the sha256s of its files (config, tokenizer,
    /// weights), of its word table's pieces, and of those of its base when it leaves tensors to
    /// one. Its corpus vectors and report are left out: they follow from the weights.
    pub fn model_key(&self, entry: &ModelEntry) -> String {
        let mut parts: Vec<&str> = Vec::new();
        for m in [Some(entry), self.base_of(entry)].into_iter().flatten() {
            parts.extend(m.files.iter().chain(&m.words).map(|f| f.sha256.as_str()));
        }
        crate::sha256_hex(parts.join("\n").as_bytes())
    }

    /// The model called `name`, or the default (first) one.
    pub fn model(&self, name: Option<&str>) -> Result<&ModelEntry, DemoError> {
        match name {
            None => Ok(&self.models[0]),
            Some(n) => self.models.iter().find(|m| m.name == n).ok_or_else(|| {
                let names: Vec<&str> = self.models.iter().map(|m| m.name.as_str()).collect();
                DemoError::Manifest(format!("no model {n:?} (there are: {})", names.join(", ")))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_names_the_file_and_the_difference() {
        let e = FileEntry::of("models/a/model.safetensors", b"abc");
        assert_eq!(e.sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        e.verify(b"abc").unwrap();
        assert!(e.verify(b"abd").unwrap_err().to_string().contains("models/a/model.safetensors: sha256"));
        assert!(e.verify(b"ab").unwrap_err().to_string().contains("2 bytes, the manifest says 3"));
    }

    #[test]
    fn gzip_entries_are_checked_then_inflated() {
        use std::io::Write;
        let text = b"{\"tokens\": [1, 2, 3]}".repeat(100);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&text).unwrap();
        let gz = gz.finish().unwrap();
        let mut e = FileEntry::of("models/a/tokenizer.json.gz", &gz);
        e.encoding = Some("gzip".into());
        assert_eq!(e.decode(gz.clone()).unwrap(), text);
        // The check runs on the stored bytes, before inflating.
        let mut damaged = gz.clone();
        damaged[20] ^= 1;
        assert!(e.decode(damaged).unwrap_err().to_string().contains("sha256"));
        let plain = FileEntry { encoding: Some("gzip".into()), ..FileEntry::of("x.json.gz", b"not gzip") };
        assert!(plain.decode(b"not gzip".to_vec()).unwrap_err().to_string().contains("x.json.gz: not a gzip file"));
        let zstd = FileEntry { encoding: Some("zstd".into()), ..FileEntry::of("x", b"x") };
        assert!(zstd.decode(b"x".to_vec()).unwrap_err().to_string().contains("unknown encoding \"zstd\""));
        assert_eq!(FileEntry::of("y", b"y").decode(b"y".to_vec()).unwrap(), b"y");
    }

    #[test]
    fn bad_manifests_are_rejected() {
        assert!(Manifest::from_json(b"{").unwrap_err().to_string().starts_with("manifest.json:"));
        let m = serde_json::json!({"version": 99, "dataset": {"name": "x", "langs": [], "files": [],
            "split": {"path": "s", "bytes": 0, "sha256": ""}, "n_candidates": 0, "n_questions": 0, "licence": ""},
            "models": [], "command": ""});
        let err = Manifest::from_json(m.to_string().as_bytes()).unwrap_err().to_string();
        assert!(err.contains("version 99"), "{err}");
    }

    #[test]
    fn a_report_number_out_of_its_range_is_refused() {
        // Found by tests/fuzz.rs: a manifest whose report said mAP 4096 loaded, and the page
        // would have shown it.
        let manifest = |map: f64| {
            let file = serde_json::json!({"path": "f", "bytes": 0, "sha256": ""});
            let report = serde_json::json!({"langs": ["en"], "n_queries": 1, "n_candidates": 2,
                "mono": {"map": map, "recall": {"1": 1.0}, "n": 1}, "cross": null, "multi": null,
                "rank_distance": null, "rank_correlation": null, "per_lang": [], "pairs": [],
                "correlation_pairs": [],
                "options": {"recall_at": [1], "preference_at": 10, "rank_correlation": false, "threads": 1}});
            serde_json::json!({"version": MANIFEST_VERSION, "command": "",
                "dataset": {"name": "x", "langs": [], "files": [], "split": file, "n_candidates": 2,
                    "n_questions": 1, "licence": ""},
                "models": [{"name": "m", "label": "", "files": [file, file, file], "dtype": "f16",
                    "vectors": file, "dim": 4, "report": report, "report_split": "all"}]})
            .to_string()
        };
        assert!(Manifest::from_json(manifest(0.5).as_bytes()).is_ok());
        let err = Manifest::from_json(manifest(4096.0).as_bytes()).unwrap_err().to_string();
        assert_eq!(err, "manifest.json: model m: report: Mo. mAP = 4096 lies outside [0, 1]");

        // A base must be an earlier model without a base of its own.
        let mut m: serde_json::Value = serde_json::from_str(&manifest(0.5)).unwrap();
        let first = m["models"][0].clone();
        let mut second = first.clone();
        second["name"] = "tuned".into();
        second["base"] = "m".into();
        m["models"] = serde_json::json!([first.clone(), second.clone()]);
        let parsed = Manifest::from_json(m.to_string().as_bytes()).unwrap();
        assert_eq!(parsed.base_of(&parsed.models[1]).map(|b| b.name.as_str()), Some("m"));
        // The same content under two paths is fetched from the first.
        let second_config = &parsed.models[1].files[0];
        assert!(std::ptr::eq(parsed.canonical(second_config), &parsed.models[0].files[0]));
        assert!(parsed.base_of(&parsed.models[0]).is_none());
        // A model's key covers its files and its base's: here both models list the same files,
        // so only the base tells them apart; the key is the sha256 of the files' sha256s.
        let (k0, k1) = (parsed.model_key(&parsed.models[0]), parsed.model_key(&parsed.models[1]));
        assert_ne!(k0, k1);
        assert_eq!(k0, crate::sha256_hex(b"\n\n"));
        let mut changed = parsed.clone();
        changed.models[0].files[2].sha256 = "ab".into();
        assert_ne!(changed.model_key(&changed.models[1]), k1);
        m["models"] = serde_json::json!([second.clone(), first.clone()]);
        let err = Manifest::from_json(m.to_string().as_bytes()).unwrap_err().to_string();
        assert!(err.contains("model tuned: its base \"m\" is not listed before it"), "{err}");
        let mut third = second.clone();
        third["name"] = "again".into();
        third["base"] = "tuned".into();
        m["models"] = serde_json::json!([first, second, third]);
        let err = Manifest::from_json(m.to_string().as_bytes()).unwrap_err().to_string();
        assert!(err.contains("model again: its base \"tuned\" has a base itself"), "{err}");
    }
}
