//! `mlr eval`'s flags, and the plan they resolve to.
//!
//! [`EvalArgs`] is what clap parses; [`EvalPlan::new`] turns it, once, into what the evaluation
//! does: which data (a LAReQA-format set or Tatoeba, told apart by the directory's files), which
//! vectors (encoded by a model or read from `--vectors`), which articles (the data's `split.json`,
//! read once when `--split` or `--center-langs` names a part) and where the results go. Every
//! combination of flags that cannot work is refused here, before a model is loaded, with an error
//! naming the flag or file; the evaluation itself then reads no flag.

use std::borrow::Cow;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::ValueEnum;
use mlr_data::lareqa::{ArticleSplit, CandidateText, LareqaSet, Split};
use mlr_eval::lareqa::LareqaOptions;

use crate::backend::BackendArg;
use crate::encoder::EncoderSpec;
use crate::{cache, default_model_dir};

#[derive(Clone, Copy, ValueEnum)]
pub enum CandidatesArg {
    /// The answer sentence alone (the paper's setting).
    Sentence,
    /// The sentence followed by its paragraph (LAReQA's sentence + context, as one text).
    SentenceContext,
}

/// `all`, `train`, `dev` or `test`, parsed into a [`Split`] (and listed as such by `--help`).
fn split_parser() -> impl TypedValueParser<Value = Split> {
    let names = [Split::All, Split::Train, Split::Dev, Split::Test].map(Split::name);
    PossibleValuesParser::new(names).map(|name| name.parse().expect("one of the split names"))
}

/// Arguments of `mlr eval`.
#[derive(clap::Args)]
pub struct EvalArgs {
    /// Hugging Face model directory (config.json, tokenizer.json, model.safetensors).
    #[arg(long, env = "MLR_MODEL_DIR", default_value_os_t = default_model_dir())]
    pub model: PathBuf,
    /// A LAReQA-format directory (`<lang>.json` per language, optional `split.json`) or a Tatoeba
    /// directory (`tatoeba.<xxx>-eng.<xxx>` pairs).
    #[arg(long, default_value = "data/xquad-r")]
    pub data: PathBuf,
    /// Languages (comma-separated); default: every language of the directory.
    #[arg(long, value_delimiter = ',')]
    pub langs: Vec<String>,
    /// Articles to evaluate on (the split is read from `<data>/split.json`).
    #[arg(long, default_value = "all", value_parser = split_parser())]
    pub split: Split,
    /// How candidates are encoded.
    #[arg(long, value_enum, default_value = "sentence")]
    pub candidates: CandidatesArg,
    /// Compute backend for encoding.
    #[arg(long, value_enum, default_value = "cpu")]
    pub backend: BackendArg,
    /// Texts per encoder batch.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Longest encoder input in tokens; longer texts are truncated.
    #[arg(long, default_value_t = 512)]
    pub max_tokens: usize,
    /// Write the full report as JSON here (a markdown table is written beside it, `.md`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also write the multilingual (pooled) ranking as a TREC run here, and its qrels beside it
    /// (`<file>.qrels`).
    #[arg(long)]
    pub trec_run: Option<PathBuf>,
    /// Documents per query in the TREC run (0 = the whole pool).
    #[arg(long, default_value_t = 100)]
    pub trec_depth: usize,
    /// k of the language preference rate.
    #[arg(long, default_value_t = 10)]
    pub preference_k: usize,
    /// Skip the mean rank correlation (it sorts every pooled ranking).
    #[arg(long)]
    pub no_rank_correlation: bool,
    /// Language centering: subtract each language's mean query and mean candidate vector,
    /// estimated on the articles of this split (e.g. `train`), and re-normalise, before scoring.
    #[arg(long, value_parser = split_parser())]
    pub center_langs: Option<Split>,
    /// Keep only the questions of the first N distinct question ids (in every language); the
    /// candidate pool stays whole. The browser evaluator's "number of questions" is the same.
    #[arg(long)]
    pub max_questions: Option<usize>,
    /// Score precomputed vectors instead of encoding: a vector file written by `mlr demo build`
    /// (f16 rows of every candidate, then every question, of `--data` with all its languages).
    /// `--model` is not loaded.
    #[arg(long, conflicts_with_all = ["center_langs", "trec_run"])]
    pub vectors: Option<PathBuf>,
    /// Also write every question's scores here, one JSON object per line (`id`, `lang`, `ap` per
    /// corpus language, `multi`, `rank_distance`): the input of paired tests and bootstrap
    /// intervals over questions (scripts/train_report.py).
    #[arg(long)]
    pub per_query: Option<PathBuf>,
    /// Do not read or write the embedding cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Where the embedding cache lives.
    #[arg(long, env = "MLR_EMBED_CACHE")]
    pub cache_dir: Option<PathBuf>,
}

/// What `mlr eval` does, resolved from [`EvalArgs`].
pub struct EvalPlan {
    /// The data directory (`--data`).
    pub data: PathBuf,
    /// What is scored, and with which vectors.
    pub task: Task,
    /// The JSON report (`--out`); its markdown goes beside it.
    pub out: Option<PathBuf>,
}

/// The evaluation a data directory asks for.
pub enum Task {
    /// Tatoeba bitext retrieval of the pairs of `langs` (every pair of the directory when empty).
    Tatoeba { langs: Vec<String>, encoding: Encoding },
    /// Answer retrieval on a LAReQA-format set.
    Lareqa(Box<LareqaPlan>),
}

/// A model encoding the texts (`--model`, on `--backend`).
pub struct Encoding {
    /// The model, its longest input, batch size and embedding cache.
    pub spec: EncoderSpec,
    /// The backend, as the report names it.
    pub backend: BackendArg,
}

/// The source of a LAReQA-format set's vectors.
pub enum Vectors {
    /// Encoded by a model.
    Encode(Encoding),
    /// Read from a vector file of `mlr demo build` (`--vectors`).
    File(PathBuf),
}

/// An evaluation on a LAReQA-format set.
pub struct LareqaPlan {
    /// Where the vectors come from.
    pub vectors: Vectors,
    /// The languages evaluated, in order (`--langs`, else every language of the directory).
    pub langs: Vec<String>,
    /// The articles evaluated (`--split`).
    pub split: Split,
    /// The articles language centering estimates its means on (`--center-langs`).
    pub center: Option<Split>,
    /// The data's `split.json`, read when `split` or `center` is a part other than `all`.
    articles: Option<ArticleSplit>,
    /// How candidates are turned into text (`--candidates`).
    pub candidates: CandidateText,
    /// `--max-questions` (at least 1).
    pub max_questions: Option<usize>,
    /// The metrics' options (`--preference-k`, `--no-rank-correlation`).
    pub options: LareqaOptions,
    /// The pooled ranking as a TREC run (`--trec-run`) and its depth (`--trec-depth`, 0: all).
    pub trec_run: Option<(PathBuf, usize)>,
    /// Every question's scores as JSON lines (`--per-query`).
    pub per_query: Option<PathBuf>,
}

impl EvalPlan {
    /// Resolves `args`: looks at the data directory, reads its `split.json` if a flag needs it,
    /// and refuses what cannot work.
    pub fn new(args: &EvalArgs) -> Result<Self> {
        let data = args.data.clone();
        if !data.is_dir() {
            bail!("{}: not a directory (give --data a LAReQA-format or Tatoeba directory)", data.display());
        }
        let tatoeba = std::fs::read_dir(&data)
            .with_context(|| format!("reading {}", data.display()))?
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().starts_with("tatoeba."));
        let cache = (!args.no_cache).then(|| args.cache_dir.clone().unwrap_or_else(cache::default_dir));
        let spec =
            EncoderSpec { model: args.model.clone(), max_tokens: args.max_tokens, batch_size: args.batch_size, cache };
        let encoding = Encoding { spec, backend: args.backend };
        let task = if tatoeba {
            if args.per_query.is_some() {
                bail!(
                    "--per-query writes the questions of a LAReQA-format set; Tatoeba's report has no per-question scores"
                );
            }
            if args.vectors.is_some() {
                bail!("--vectors holds the vectors of a LAReQA-format set (from `mlr demo build`), not Tatoeba's");
            }
            if args.center_langs.is_some() {
                bail!("--center-langs applies to LAReQA-format sets, not to Tatoeba");
            }
            Task::Tatoeba { langs: args.langs.clone(), encoding }
        } else {
            let vectors = match &args.vectors {
                Some(_) if matches!(args.candidates, CandidatesArg::SentenceContext) => bail!(
                    "--vectors holds sentence vectors (`mlr demo build`): --candidates sentence-context needs encoding"
                ),
                Some(path) => Vectors::File(path.clone()),
                None => Vectors::Encode(encoding),
            };
            Task::Lareqa(Box::new(LareqaPlan::new(args, vectors)?))
        };
        Ok(Self { data, task, out: args.out.clone() })
    }

    /// The backend texts are encoded on (the CPU, which does nothing, for `--vectors`).
    pub fn backend(&self) -> BackendArg {
        let encoding = match &self.task {
            Task::Tatoeba { encoding, .. } => encoding,
            Task::Lareqa(lareqa) => match &lareqa.vectors {
                Vectors::Encode(encoding) => encoding,
                Vectors::File(_) => return BackendArg::Cpu,
            },
        };
        encoding.backend
    }
}

impl LareqaPlan {
    fn new(args: &EvalArgs, vectors: Vectors) -> Result<Self> {
        if args.max_questions == Some(0) {
            bail!("--max-questions must be at least 1");
        }
        let langs = if args.langs.is_empty() { LareqaSet::dir_langs(&args.data)? } else { args.langs.clone() };
        // split.json, for the first flag that names a part.
        let needed_by = if args.split != Split::All {
            Some(format!("--split {}", args.split.name()))
        } else {
            args.center_langs.filter(|&s| s != Split::All).map(|_| "--center-langs".to_string())
        };
        let articles = match needed_by {
            Some(flag) => {
                let path = args.data.join("split.json");
                let bytes =
                    std::fs::read(&path).with_context(|| format!("reading {} (needed for {flag})", path.display()))?;
                Some(ArticleSplit::from_json(&bytes, &path.display().to_string())?)
            }
            None => None,
        };
        Ok(Self {
            vectors,
            langs,
            split: args.split,
            center: args.center_langs,
            articles,
            candidates: match args.candidates {
                CandidatesArg::Sentence => CandidateText::Sentence,
                CandidatesArg::SentenceContext => CandidateText::SentenceContext,
            },
            max_questions: args.max_questions,
            options: LareqaOptions {
                preference_at: args.preference_k,
                rank_correlation: !args.no_rank_correlation,
                ..LareqaOptions::default()
            },
            trec_run: args.trec_run.clone().map(|path| (path, args.trec_depth)),
            per_query: args.per_query.clone(),
        })
    }

    /// The articles of `part` in `full` (`full` itself for [`Split::All`]).
    pub fn articles<'a>(&self, full: &'a LareqaSet, part: Split) -> Cow<'a, LareqaSet> {
        match (&self.articles, part) {
            (_, Split::All) => Cow::Borrowed(full),
            (Some(articles), part) => Cow::Owned(full.split(articles, part)),
            (None, _) => unreachable!("split.json is read whenever --split or --center-langs names a part"),
        }
    }
}
