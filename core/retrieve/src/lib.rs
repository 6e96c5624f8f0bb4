//! Corpus-scale dense retrieval for mlr: a MIRACL-format corpus in, a TREC run out.
//!
//! The pipeline `mlr retrieve` drives, one module per step:
//!
//! - [`corpus`]: streams MIRACL / pyserini corpora (JSON lines, plain or gzip, one or many files)
//!   as `(docid, title + " " + text)` passages, with a fingerprint that identifies the corpus.
//! - [`store`]: the on-disk vector store of one (corpus, model) pair (f16 or int8 shards, docids,
//!   `manifest.json`) and its memory-mapped reader.
//! - [`encode`]: fills a store through an encoder callback, resumable after any interruption and
//!   split across machines with `--shard i/n`; [`merge`] combines the slices.
//! - [`export`]: writes a store as `vectors.npy` + `docids.txt` for FAISS, Qdrant or any engine.
//! - [`search`]: exact top-k by inner product over the store on all cores, and TREC runs; the
//!   measures are `mlr_eval::trec::evaluate`'s.
//! - [`ann`]: an HNSW index (usearch) kept beside a store, for corpora searched again and again;
//!   its results are re-scored exactly and ranked as [`search`] ranks.
//!
//! Design: the crate knows no model. Encoding takes a callback from texts to vectors, so it builds
//! and tests without burn, and the same store serves any encoder; the caller's model identity string
//! keeps vectors of different models (or prefixes, or lengths) from mixing.
//!
//! # Example
//! ```
//! use mlr_retrieve::{corpus::Corpus, encode, search, store};
//! # let dir = tempfile::tempdir()?;
//! # let corpus_file = dir.path().join("docs.jsonl");
//! # std::fs::write(&corpus_file, "{\"docid\": \"d1\", \"title\": \"T\", \"text\": \"one\"}\n{\"docid\": \"d2\", \"title\": \"\", \"text\": \"two\"}\n")?;
//! let corpus = Corpus::open(&[&corpus_file])?;
//! let spec = store::StoreSpec { model: "toy".into(), dim: 2, dtype: store::Dtype::F16, shard_size: 1000 };
//! let options = encode::EncodeOptions { batch_size: 32, slice: encode::Slice::ALL };
//! // A stand-in encoder: the model's embedding call in the CLI.
//! let toy = |texts: &[String]| -> Result<Vec<Vec<f32>>, std::io::Error> {
//!     Ok(texts.iter().map(|t| if t.contains("one") { vec![1.0, 0.0] } else { vec![0.0, 1.0] }).collect())
//! };
//! encode::encode(&dir.path().join("vectors"), &corpus, &spec, &options, toy, |_| {})?;
//! let vectors = store::VectorStore::open_for(&dir.path().join("vectors"), &spec, &corpus.fingerprint)?;
//! // Query vectors (the model's, with its query prefix), row-major [queries, dim].
//! let qids = vec!["q1".to_string()];
//! let hits = search::search(&vectors, &qids, &[0.0, 1.0], &search::SearchOptions::default())?;
//! assert_eq!(hits[0][0].docid, "d2");
//! let mut run = Vec::new();
//! search::write_run(&mut run, &qids, &hits, "mlr")?;
//! assert_eq!(String::from_utf8(run)?, "q1 Q0 d2 1 1 mlr\nq1 Q0 d1 2 0 mlr\n");
//! // The measures: the evaluator's, on the same ranking.
//! let qrels = mlr_eval::trec::Qrels::parse("q1 0 d2 1\n", "qrels")?;
//! let trec = mlr_eval::trec::TrecOptions::default();
//! let report = mlr_eval::trec::evaluate(&qrels, &search::to_run(&qids, &hits), &trec)?;
//! assert_eq!(report.mean.values["ndcg_cut_10"], 1.0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod ann;
pub mod corpus;
pub mod encode;
pub mod export;
pub mod merge;
pub mod search;
pub mod store;
