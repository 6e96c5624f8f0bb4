//! `mlr retrieve`'s flags, and the plan they resolve to.
//!
//! [`RetrieveArgs`] is what clap parses; [`RetrievePlan::new`] turns it, once, into what the command
//! does: the corpus (listed and fingerprinted), the model (its files read and hashed: the store's
//! identity), the store directory, the slice, the topics and qrels (read and checked before hours
//! of encoding start) and where results go. Every combination of flags that cannot work is refused
//! here, naming the flag or file; the run then reads no flag.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use mlr_embed::{ModelFiles, Role};
use mlr_eval::trec::{parse_topics, Qrels, TrecOptions};
use mlr_model::BertConfig;
use mlr_retrieve::ann::AnnOptions;
use mlr_retrieve::corpus::Corpus;
use mlr_retrieve::encode::Slice;
use mlr_retrieve::store::{Dtype, StoreSpec, DEFAULT_SHARD_SIZE, MAX_SHARD_SIZE};

use crate::backend::BackendArg;
use crate::{cache_root, default_model_dir, encoder};

/// How the store is searched (`--search`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SearchMode {
    /// The HNSW index when one is built for this store (an earlier `--search ann`), else exact.
    Auto,
    /// Exact inner product over every stored vector (SGEMM on all cores).
    Exact,
    /// The HNSW index (usearch), built first and kept beside the store when it is missing or stale.
    Ann,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DtypeArg {
    /// IEEE half floats: 2 bytes a value (768 bytes a passage at 384 dims).
    F16,
    /// One signed byte a value and an f32 scale per vector: half of f16's size.
    Int8,
}

/// Arguments of `mlr retrieve`.
#[derive(clap::Args)]
#[command(after_long_help = AFTER_HELP)]
pub struct RetrieveArgs {
    /// Hugging Face model directory (config.json, tokenizer.json, model.safetensors).
    #[arg(long, env = "MLR_MODEL_DIR", default_value_os_t = default_model_dir())]
    pub model: PathBuf,
    /// The corpus: MIRACL/pyserini JSON lines {"docid", "title", "text"}, plain or gzip; files or
    /// directories (a directory stands for its *.jsonl, *.jsonl.gz, *.json, *.json.gz). Read in
    /// sorted path order, whatever order they are given in.
    #[arg(long, num_args = 1.., required = true)]
    pub corpus: Vec<PathBuf>,
    /// Topics, `qid<TAB>query` per line (data/miracl/topics.*.tsv). Without it the corpus is only
    /// encoded (and exported with --export-npy).
    #[arg(long)]
    pub topics: Option<PathBuf>,
    /// Qrels, `qid Q0 docid rel` (data/miracl/qrels.*.tsv). Without it the run is written but not
    /// evaluated.
    #[arg(long, requires = "topics")]
    pub qrels: Option<PathBuf>,
    /// Where the vectors are stored (created if needed; re-running resumes it). Default:
    /// $MLR_CACHE/retrieve/<model sha256[..16]>-t<max tokens>-<dtype>-<corpus fingerprint[..16]>,
    /// so that another model, length, dtype or corpus never shares a directory.
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Encode only slice i of n (0-based: shards i, i+n, i+2n, …), e.g. one per machine, then stop.
    /// Each machine reads the whole corpus; combine the slices with --merge.
    #[arg(long, value_name = "i/n")]
    pub shard: Option<Slice>,
    /// Merge these slice stores (written with --shard) into the store first, then go on as usual
    /// (search with --topics). The slices may be the store itself.
    #[arg(long, value_name = "DIR", num_args = 1.., conflicts_with = "shard")]
    pub merge: Vec<PathBuf>,
    /// Passages retrieved per query (the run's depth; Recall@100 needs 100).
    #[arg(long, default_value_t = 100)]
    pub depth: usize,
    /// Write the ranking as a TREC run here (`qid Q0 docid rank score mlr`).
    #[arg(long, requires = "topics")]
    pub run: Option<PathBuf>,
    /// Write the report as JSON here (every query's measures and the means, as `mlr trec-eval
    /// --json`, plus the setting); a markdown table is written beside it (.md). Needs --qrels.
    #[arg(long, requires = "qrels")]
    pub out: Option<PathBuf>,
    /// Also write the stored vectors as DIR/vectors.npy + DIR/docids.txt (row i is line i), for
    /// FAISS, Qdrant, Vespa or any engine that reads NumPy: float16 from an f16 store, float32 from
    /// an int8 one.
    #[arg(long, value_name = "DIR")]
    pub export_npy: Option<PathBuf>,
    /// Texts per encoder batch (queries and passages).
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Longest encoder input in tokens (capped by the model's position table); longer passages
    /// are truncated.
    #[arg(long, default_value_t = 512)]
    pub max_tokens: usize,
    /// How vectors are stored.
    #[arg(long, value_enum, default_value = "f16")]
    pub dtype: DtypeArg,
    /// Passages per shard file (the unit of --shard and of resuming). Must be the same on every
    /// machine of one store.
    #[arg(long, default_value_t = DEFAULT_SHARD_SIZE)]
    pub shard_size: usize,
    /// Compute backend for encoding.
    #[arg(long, value_enum, default_value = "cpu")]
    pub backend: BackendArg,
    /// How to search: exact, the approximate HNSW index (built once, kept beside the store), or
    /// auto (the index if one is already built, else exact). Building costs more than an exact
    /// pass over any MIRACL topic set, so evaluation stays exact unless you ask.
    #[arg(long, value_enum, default_value = "auto")]
    pub search: SearchMode,
    /// Beam width of the approximate search (raised to --depth): larger is slower and finds more.
    #[arg(long, default_value_t = AnnOptions::default().ef_search)]
    pub ef: usize,
}

const AFTER_HELP: &str = "\
Passages are encoded as E5 does: \"passage: \" + title + \" \" + text (text alone when the title is
empty), queries as \"query: \" + query; mean pooling, unit vectors, inner-product (cosine) search.

The store is resumable: Ctrl-C (or a crash) stops between batches, and running the same command
again encodes only what is missing. Its identity is the sha256 of the model's three files, the
prefix, the maximum length, the pooling and the passage text: anything else is refused.
--backend and --no-kernels change vectors only by float rounding (cosine with the CPU path
≥ 0.9999999999995 in results/bench/encode.json), so they are not part of it: one store serves all.

Measures (trec_eval's conventions, mlr_eval::trec): nDCG@10, Recall@100, MRR@10, MAP, P@10.";

/// What `mlr retrieve` does, resolved from [`RetrieveArgs`].
pub struct RetrievePlan {
    /// The corpus, listed and fingerprinted.
    pub corpus: Corpus,
    /// The model's files (loaded on the backend later).
    pub files: ModelFiles,
    /// sha256 of the model's files, as `mlr eval` records it.
    pub model_sha: String,
    /// What the store must hold.
    pub spec: StoreSpec,
    /// The store directory.
    pub store: PathBuf,
    /// The slice to encode, then stop (`--shard`).
    pub slice: Option<Slice>,
    /// Slice stores to merge into `store` first.
    pub merge: Vec<PathBuf>,
    /// Texts per encoder batch.
    pub batch_size: usize,
    /// The encoder's longest input (capped by the model).
    pub max_tokens: usize,
    /// Queries, search and evaluation.
    pub search: Option<SearchPlan>,
    /// `--export-npy`.
    pub export: Option<PathBuf>,
    /// The backend.
    pub backend: BackendArg,
}

/// The queries and what is done with their ranking.
pub struct SearchPlan {
    /// The topics file.
    pub topics_path: PathBuf,
    /// `(qid, query)` in file order.
    pub topics: Vec<(String, String)>,
    /// The qrels and their file.
    pub qrels: Option<(PathBuf, Qrels)>,
    /// Passages per query.
    pub depth: usize,
    /// `--run`.
    pub run: Option<PathBuf>,
    /// `--out` (markdown beside it).
    pub out: Option<PathBuf>,
    /// The measures.
    pub trec: TrecOptions,
    /// `--search`.
    pub mode: SearchMode,
    /// The index's options (`--ef` as the search beam).
    pub ann: AnnOptions,
}

/// The store identity string of a model: everything that changes passage vectors.
pub fn model_identity(model_sha: &str, max_tokens: usize) -> String {
    format!(
        "sha256:{model_sha} prefix:{:?} max_tokens:{max_tokens} pooling:mean-l2 passage:title+\" \"+text",
        Role::Passage.prefix()
    )
}

fn read_text(path: &Path, flag: &str) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("{flag} {}: cannot read it", path.display()))
}

impl RetrievePlan {
    /// Resolves `args`: lists and fingerprints the corpus, reads and hashes the model, reads the
    /// topics and qrels, and refuses what cannot work.
    pub fn new(args: &RetrieveArgs) -> Result<Self> {
        if args.batch_size == 0 {
            bail!("--batch-size must be at least 1");
        }
        if args.depth == 0 {
            bail!("--depth must be at least 1");
        }
        if args.ef == 0 {
            bail!("--ef must be at least 1");
        }
        if args.shard_size == 0 || args.shard_size > MAX_SHARD_SIZE {
            bail!("--shard-size must lie in 1..={MAX_SHARD_SIZE}");
        }
        if args.max_tokens < 3 {
            bail!("--max-tokens must be at least 3 (two special tokens and one of text)");
        }
        if args.shard.is_some() {
            for (flag, given) in [
                ("--topics", args.topics.is_some()),
                ("--export-npy", args.export_npy.is_some()),
                ("--run", args.run.is_some()),
                ("--out", args.out.is_some()),
            ] {
                if given {
                    bail!("--shard encodes one slice and stops: {flag} needs the whole store (merge the slices with --merge, then search)");
                }
            }
        }
        let corpus = Corpus::open(&args.corpus).context("--corpus")?;
        let files = ModelFiles::read(&args.model).with_context(|| format!("--model {}", args.model.display()))?;
        let config = BertConfig::from_json(&String::from_utf8_lossy(&files.config_json))
            .with_context(|| format!("--model {}: config.json", args.model.display()))?;
        let max_tokens = args.max_tokens.min(config.max_tokens());
        let model_sha = encoder::sha256_files(&files)?;
        let dtype = match args.dtype {
            DtypeArg::F16 => Dtype::F16,
            DtypeArg::Int8 => Dtype::Int8,
        };
        let spec = StoreSpec {
            model: model_identity(&model_sha, max_tokens),
            dim: config.hidden_size,
            dtype,
            shard_size: args.shard_size,
        };
        let store = args.store.clone().unwrap_or_else(|| {
            cache_root().join("retrieve").join(format!(
                "{}-t{max_tokens}-{}-{}",
                &model_sha[..16],
                dtype.extension(),
                &corpus.fingerprint[..16]
            ))
        });
        let search = match &args.topics {
            None => None,
            Some(topics_path) => {
                let topics = parse_topics(&read_text(topics_path, "--topics")?, &topics_path.display().to_string())
                    .context("--topics")?;
                if topics.is_empty() {
                    bail!("--topics {}: no topics in it", topics_path.display());
                }
                let mut seen = std::collections::HashSet::new();
                if let Some((qid, _)) = topics.iter().find(|(q, _)| !seen.insert(q.as_str())) {
                    bail!("--topics {}: query id {qid} appears twice", topics_path.display());
                }
                let qrels = match &args.qrels {
                    None => None,
                    Some(path) => {
                        let qrels = Qrels::parse(&read_text(path, "--qrels")?, &path.display().to_string())
                            .context("--qrels")?;
                        let judged = topics.iter().filter(|(q, _)| qrels.queries.contains_key(q)).count();
                        if judged == 0 {
                            bail!(
                                "--qrels {} judges none of the {} queries of --topics {}",
                                path.display(),
                                topics.len(),
                                topics_path.display()
                            );
                        }
                        Some((path.clone(), qrels))
                    }
                };
                Some(SearchPlan {
                    topics_path: topics_path.clone(),
                    topics,
                    qrels,
                    depth: args.depth,
                    run: args.run.clone(),
                    out: args.out.clone(),
                    trec: TrecOptions::default(),
                    mode: args.search,
                    ann: AnnOptions { ef_search: args.ef, ..AnnOptions::default() },
                })
            }
        };
        Ok(Self {
            corpus,
            files,
            model_sha,
            spec,
            store,
            slice: args.shard,
            merge: args.merge.clone(),
            batch_size: args.batch_size,
            max_tokens,
            search,
            export: args.export_npy.clone(),
            backend: args.backend,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_changes_with_what_changes_vectors() {
        let a = model_identity("ab", 512);
        assert_ne!(a, model_identity("ac", 512));
        assert_ne!(a, model_identity("ab", 256));
        assert!(a.contains("prefix:\"passage: \""), "{a}");
    }
}
