//! What a run trains and evaluates on: one or more training sources and a dev set.
//!
//! A source path is read by its form (formats in [`mlr_data::sources`]):
//!
//! - a **directory** is a LAReQA-format set: with `split.json`, its train articles train and its
//!   dev articles are the dev set (unless `dev` names another); without, all of it trains;
//! - a file named **`*.jsonl`** holds parallel pairs, one JSON object per line;
//! - a file named like **`<name>.<a>-<b>.<a>`** (Tatoeba's layout) is one side of a bitext pair,
//!   read with its sibling `<name>.<a>-<b>.<b>`.
//!
//! Every source keeps the languages of `train_langs` it has (`["all"]`: every language); a
//! training language in no source, or a source left with none, is an error. The dev set is `dev`
//! (a LAReQA-format directory: its dev articles if it has a `split.json`, else all of it), or else
//! the dev articles of the first LAReQA source with a split, or none (then no best model is chosen
//! and the final one is the result).

use std::path::{Path, PathBuf};

use mlr_data::batches::ParallelPairs;
use mlr_data::lareqa::{ArticleSplit, LareqaSet, Split};
use mlr_data::sources::{bitext_langs, parse_bitext, parse_jsonl, Source, SourceKind};

use crate::TrainError;

/// Training sources and the dev set.
#[derive(Debug, Clone)]
pub struct TrainData {
    /// The training sources, in the order given (their pairs in the training languages).
    pub sources: Vec<Source>,
    /// Evaluated every `eval_every` steps (every language, zero-shot ones included).
    pub dev: Option<LareqaSet>,
}

/// `train_langs` meaning every language of the data.
pub const ALL_LANGS: &str = "all";

fn read(path: &Path) -> Result<String, TrainError> {
    std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))
}

fn read_split(dir: &Path) -> Result<Option<ArticleSplit>, TrainError> {
    let path = dir.join("split.json");
    if !path.exists() {
        return Ok(None);
    }
    let bytes = std::fs::read(&path).map_err(|e| TrainError::io(&path, e))?;
    Ok(Some(ArticleSplit::from_json(&bytes, &path.display().to_string())?))
}

/// Why the training sources (or the dev set) cannot be used; each names the source.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// No `--data` at all.
    #[error("no training source given")]
    NoSource,
    /// A path that does not exist.
    #[error("{path}: no such file or directory")]
    Missing {
        /// The path given.
        path: String,
    },
    /// A path that is none of the source kinds.
    #[error(
        "{path}: not a training source (a LAReQA-format directory, a .jsonl file of parallel pairs, or one side of a bitext pair named <name>.<a>-<b>.<a>)"
    )]
    Unrecognised {
        /// The path given.
        path: String,
    },
    /// The pairs of a LAReQA-format directory could not be made.
    #[error("{path}: {source}")]
    Pairs {
        /// The directory.
        path: String,
        /// Why.
        source: mlr_data::batches::BatchError,
    },
    /// A source with nothing in the training languages.
    #[error("{path}: nothing left in the training languages ({langs}): pass --train-langs {ALL_LANGS} or name its languages")]
    NothingLeft {
        /// The source.
        path: String,
        /// The training languages, comma-separated.
        langs: String,
    },
    /// A training language no source has.
    #[error("training language {lang:?} is in none of the sources ({sources}): pass --train-langs {ALL_LANGS} or the languages they have")]
    LanguageInNoSource {
        /// The language.
        lang: String,
        /// The sources, comma-separated.
        sources: String,
    },
    /// A dev set without questions.
    #[error("{path}: the dev set has no questions")]
    EmptyDev {
        /// The dev set's directory.
        path: String,
    },
    /// A dev set on which Mul. mAP is undefined.
    #[error("the dev set gives no Mul. score (no question has an answer in the pool)")]
    NoDevScore,
}

/// A LAReQA-format directory in every language it has, and its split (if any).
fn read_lareqa(dir: &Path) -> Result<(LareqaSet, Option<ArticleSplit>), TrainError> {
    let langs = LareqaSet::dir_langs(dir)?;
    let refs: Vec<&str> = langs.iter().map(String::as_str).collect();
    Ok((LareqaSet::load_dir(dir, &refs)?, read_split(dir)?))
}

impl TrainData {
    /// Reads `sources` (at least one) and the dev set; see the module docs.
    pub fn load(sources: &[PathBuf], dev: Option<&Path>, train_langs: &[String]) -> Result<Self, TrainError> {
        if sources.is_empty() {
            return Err(SourceError::NoSource.into());
        }
        let all = train_langs.iter().any(|l| l == ALL_LANGS);
        let keep: Vec<&str> = train_langs.iter().map(String::as_str).collect();
        let mut loaded = Vec::with_capacity(sources.len());
        let mut dev_set = None;
        for path in sources {
            let name = path.display().to_string();
            let file_name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            let (kind, pairs) = if path.is_dir() {
                let (full, split) = read_lareqa(path)?;
                let train = match &split {
                    Some(split) => {
                        if dev_set.is_none() && dev.is_none() {
                            let d = full.split(split, Split::Dev);
                            dev_set = (!d.questions.is_empty()).then_some(d);
                        }
                        full.split(split, Split::Train)
                    }
                    None => full,
                };
                let langs: Vec<&str> = if all {
                    train.langs.iter().map(String::as_str).collect()
                } else {
                    keep.iter().copied().filter(|l| train.langs.iter().any(|x| x == l)).collect()
                };
                let pairs = ParallelPairs::from_lareqa(&train, &langs)
                    .map_err(|source| SourceError::Pairs { path: name.clone(), source })?;
                (SourceKind::Lareqa, pairs)
            } else if file_name.ends_with(".jsonl") {
                let pairs = parse_jsonl(&read(path)?, &name)?;
                (SourceKind::JsonLines, if all { pairs } else { pairs.restrict_langs(&keep) })
            } else if let Some((a, b)) = bitext_langs(&file_name) {
                let stem = &file_name[..file_name.rfind('.').expect("a bitext name has a dot")];
                let side = |lang: &str| path.with_file_name(format!("{stem}.{lang}"));
                let pairs = parse_bitext(&a, &read(&side(&a))?, &b, &read(&side(&b))?, &format!("{stem}.*"))?;
                (SourceKind::Bitext, if all { pairs } else { pairs.restrict_langs(&keep) })
            } else if !path.exists() {
                return Err(SourceError::Missing { path: name }.into());
            } else {
                return Err(SourceError::Unrecognised { path: name }.into());
            };
            let left = pairs.langs.len();
            if pairs.groups.is_empty() || (kind == SourceKind::Bitext && left < 2) {
                return Err(SourceError::NothingLeft { path: name, langs: train_langs.join(",") }.into());
            }
            loaded.push(Source { name, kind, pairs });
        }
        if !all {
            for l in train_langs {
                if !loaded.iter().any(|s| s.pairs.langs.contains(l)) {
                    let names: Vec<&str> = loaded.iter().map(|s| s.name.as_str()).collect();
                    return Err(SourceError::LanguageInNoSource { lang: l.clone(), sources: names.join(", ") }.into());
                }
            }
        }
        if let Some(dir) = dev {
            let (full, split) = read_lareqa(dir)?;
            let d = match split {
                Some(split) => full.split(&split, Split::Dev),
                None => full,
            };
            if d.questions.is_empty() {
                return Err(SourceError::EmptyDev { path: dir.display().to_string() }.into());
            }
            dev_set = Some(d);
        }
        Ok(Self { sources: loaded, dev: dev_set })
    }

    /// The train articles of one LAReQA-format directory in `train_langs`, and its dev articles
    /// in every language of the directory (`load` with that one source).
    pub fn from_lareqa_dir(dir: &Path, train_langs: &[String]) -> Result<Self, TrainError> {
        Self::load(&[dir.to_path_buf()], None, train_langs)
    }

    /// One table of pairs (named `pairs`) as the only source.
    pub fn from_pairs(pairs: ParallelPairs, dev: Option<LareqaSet>) -> Self {
        Self { sources: vec![Source { name: "pairs".into(), kind: SourceKind::JsonLines, pairs }], dev }
    }
}
