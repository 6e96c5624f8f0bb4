//! `mlr retrieve`'s search at corpus scale, and the approximate nearest-neighbour crates that were
//! candidates for its index (results/bench/retrieve.{json,md} and results/bench/ann.{json,md}).
//!
//! - **Vectors.** Seeds are real multilingual-e5-small vectors: the passages and questions of the
//!   demo's `.mlrv` file (`mlr demo build` writes it: XQuAD-R, 11 languages). The corpus is the real
//!   passages followed by synthetic rows up to `--rows`, each the normalized sum of `--mix` random
//!   real passages with random weights plus Gaussian noise of norm about `--noise`, so that the
//!   rows keep the anisotropy of real embeddings instead of the uniform sphere no index is built
//!   for. `--mix 2` instead makes `a·p + b·p'` (`a` in [0.6, 1], `b` in [0, 0.4]): every real
//!   passage then has rows/passages near-duplicates, a much harder case for recall@100 than a real
//!   corpus. Queries are real questions.
//! - **mlr** (`--candidates mlr`): the rows are written to an f16 store through
//!   `mlr_retrieve::encode` (in `--work`), searched exactly with `mlr_retrieve::search` (all
//!   queries at once on all threads, as `mlr retrieve` does; its results are the truth for recall),
//!   then indexed with `mlr_retrieve::ann` and searched per `ef` on one thread and on all threads.
//! - **Peers** (`--candidates usearch-f32,usearch-f16,usearch-i8,hnsw_rs`): the crates themselves on
//!   the f32 rows, built on all threads, searched one query at a time on one thread, against an
//!   exact SGEMM top-k of the f32 rows (matrixmultiply).
//! - recall@k = |approximate top k ∩ exact top k| / k, averaged over the queries; speed-ups compare
//!   CPU time per query (one-thread time against exact time × threads).
//!
//! Run: `cargo run --release --manifest-path scripts/retrieve_bench/Cargo.toml -- --mlrv
//! ~/.cache/mlr/demo/corpus/e5-small.mlrv --rows 1000000 --candidates mlr --out results/bench/retrieve.json`

use std::collections::BinaryHeap;
use std::cmp::Reverse;
use std::time::Instant;

use mlr_retrieve::ann::{self, AnnOptions};
use mlr_retrieve::corpus::Corpus;
use mlr_retrieve::encode::{encode, EncodeOptions, Slice};
use mlr_retrieve::search::{search, SearchOptions};
use mlr_retrieve::store::{Dtype, StoreSpec, VectorStore};
use rayon::prelude::*;
use serde_json::{json, Value};

struct Args {
    mlrv: String,
    rows: usize,
    queries: usize,
    k: usize,
    noise: f32,
    mix: usize,
    efs: Vec<usize>,
    candidates: Vec<String>,
    connectivity: usize,
    ef_construction: usize,
    work: String,
    out: Option<String>,
}

fn parse_args() -> Args {
    let mut a = Args {
        mlrv: String::new(),
        rows: 100_000,
        queries: 500,
        k: 100,
        noise: 0.35,
        mix: 4,
        efs: vec![128, 256, 512],
        candidates: vec!["mlr".into()],
        connectivity: 16,
        ef_construction: 128,
        work: std::env::temp_dir().join("mlr-retrieve-bench").display().to_string(),
        out: None,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let v = argv.get(i + 1).cloned().unwrap_or_default();
        match argv[i].as_str() {
            "--mlrv" => a.mlrv = v,
            "--rows" => a.rows = v.parse().expect("--rows"),
            "--queries" => a.queries = v.parse().expect("--queries"),
            "--k" => a.k = v.parse().expect("--k"),
            "--noise" => a.noise = v.parse().expect("--noise"),
            "--mix" => a.mix = v.parse().expect("--mix"),
            "--ef" => a.efs = v.split(',').map(|s| s.parse().expect("--ef")).collect(),
            "--candidates" => a.candidates = v.split(',').map(String::from).collect(),
            "--connectivity" => a.connectivity = v.parse().expect("--connectivity"),
            "--ef-construction" => a.ef_construction = v.parse().expect("--ef-construction"),
            "--work" => a.work = v,
            "--out" => a.out = Some(v),
            "--help" | "-h" => {
                println!("ann-compare --mlrv FILE [--rows N] [--queries Q] [--k K] [--noise S] [--mix P] [--ef 128,256] [--candidates mlr,usearch-f32,usearch-f16,usearch-i8,hnsw_rs] [--work DIR] [--connectivity M] [--ef-construction E] [--out JSON]");
                std::process::exit(0);
            }
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    assert!(!a.mlrv.is_empty(), "--mlrv is required");
    a
}

/// splitmix64: a small deterministic generator, so every run builds the same corpus.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn gauss(&mut self) -> f32 {
        let u = self.unit().max(1e-7);
        let v = self.unit();
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    }
}

fn read_mlrv(path: &str) -> (usize, Vec<f32>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(&bytes[..4], b"MLRV", "{path}: not an .mlrv file");
    let word = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap()) as usize;
    let (dim, nc, nq) = (word(8), word(12), word(16));
    let vals: Vec<f32> =
        bytes[20..].chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect();
    assert_eq!(vals.len(), (nc + nq) * dim);
    let (c, q) = vals.split_at(nc * dim);
    (dim, c.to_vec(), q.to_vec())
}

fn normalize(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
}

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + ra.iter().zip(rb).map(|(x, y)| x * y).sum::<f32>()
}

/// hnsw_rs's own `DistDot` asserts `dot <= 1`, which rounding breaks on unit vectors.
#[derive(Clone, Copy, Default)]
struct OneMinusDot;
impl hnsw_rs::prelude::Distance<f32> for OneMinusDot {
    fn eval(&self, va: &[f32], vb: &[f32]) -> f32 {
        (1.0 - dot(va, vb)).max(0.0)
    }
}

#[derive(PartialEq, PartialOrd)]
struct Scored(f32, u32);
impl Eq for Scored {}
impl Ord for Scored {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.partial_cmp(o).expect("finite")
    }
}

/// Exact top-k of every query: row blocks on all threads, one SGEMM per block.
fn exact(corpus: &[f32], queries: &[f32], dim: usize, k: usize) -> Vec<Vec<u32>> {
    let nq = queries.len() / dim;
    let block = 4096;
    let heaps: Vec<Vec<BinaryHeap<Reverse<Scored>>>> = corpus
        .par_chunks(block * dim)
        .enumerate()
        .map(|(b, rows)| {
            let n = rows.len() / dim;
            let mut scores = vec![0f32; nq * n];
            unsafe {
                matrixmultiply::sgemm(
                    nq, dim, n, 1.0, queries.as_ptr(), dim as isize, 1, rows.as_ptr(), 1, dim as isize, 0.0,
                    scores.as_mut_ptr(), n as isize, 1,
                );
            }
            (0..nq)
                .map(|q| {
                    let mut h = BinaryHeap::with_capacity(k + 1);
                    for (j, &s) in scores[q * n..(q + 1) * n].iter().enumerate() {
                        if h.len() < k {
                            h.push(Reverse(Scored(s, (b * block + j) as u32)));
                        } else if s > h.peek().unwrap().0 .0 {
                            h.pop();
                            h.push(Reverse(Scored(s, (b * block + j) as u32)));
                        }
                    }
                    h
                })
                .collect()
        })
        .collect();
    (0..nq)
        .map(|q| {
            let mut all: Vec<Scored> = heaps.iter().flat_map(|h| h[q].iter().map(|r| Scored(r.0 .0, r.0 .1))).collect();
            all.sort_by(|a, b| b.cmp(a));
            all.truncate(k);
            all.into_iter().map(|s| s.1).collect()
        })
        .collect()
}

fn recall(found: &[u32], truth: &[u32]) -> f64 {
    let t: std::collections::HashSet<u32> = truth.iter().copied().collect();
    found.iter().filter(|id| t.contains(id)).count() as f64 / truth.len() as f64
}

fn main() {
    let args = parse_args();
    let threads = rayon::current_num_threads();
    let (dim, passages, questions) = read_mlrv(&args.mlrv);
    let np = passages.len() / dim;
    let rows = args.rows.max(np);
    let mut rng = Rng(0x6d6c72);
    let mut corpus = Vec::with_capacity(rows * dim);
    corpus.extend_from_slice(&passages);
    let sigma = args.noise / (dim as f32).sqrt();
    let mut row = vec![0f32; dim];
    while corpus.len() < rows * dim {
        // --mix 2: a·p + b·p' (a in [0.6, 1], b in [0, 0.4]): each real passage spawns rows/passages
        // near-duplicates, the hard case; --mix P > 2: P passages with uniform weights.
        row.iter_mut().for_each(|x| *x = 0.0);
        for m in 0..args.mix {
            let i = rng.below(np);
            let w = match (args.mix, m) {
                (2, 0) => 0.6 + 0.4 * rng.unit(),
                (2, _) => 0.4 * rng.unit(),
                _ => rng.unit(),
            };
            for d in 0..dim {
                row[d] += w * passages[i * dim + d];
            }
        }
        for x in row.iter_mut() {
            *x += sigma * rng.gauss();
        }
        normalize(&mut row);
        corpus.extend_from_slice(&row);
    }
    let nq_all = questions.len() / dim;
    let step = (nq_all / args.queries.min(nq_all)).max(1);
    let queries: Vec<f32> =
        (0..args.queries.min(nq_all)).flat_map(|q| questions[q * step * dim..(q * step + 1) * dim].to_vec()).collect();
    let nq = queries.len() / dim;
    eprintln!("{rows} rows × {dim} ({np} real passages), {nq} real questions, {threads} threads");

    let mut results = Vec::new();
    let mut mlr = Value::Null;
    let peers: Vec<&String> = args.candidates.iter().filter(|c| c.as_str() != "mlr").collect();
    if args.candidates.iter().any(|c| c == "mlr") {
        mlr = bench_mlr(&args, &corpus, &queries, dim);
    }
    let (mut exact_batched_ms, mut truth) = (0.0, Vec::new());
    if !peers.is_empty() {
        let t = Instant::now();
        truth = exact(&corpus, &queries, dim, args.k);
        exact_batched_ms = t.elapsed().as_secs_f64() * 1e3 / nq as f64;
        eprintln!("peers' exact top-k (SGEMM, f32 rows): {exact_batched_ms:.3} ms/query, all queries at once");
    }

    for cand in peers {
        let rss0 = rss_mb();
        let t = Instant::now();
        #[allow(clippy::type_complexity)]
        let (search, memory_mb): (Box<dyn Fn(&[f32], usize) -> Vec<u32> + Sync>, f64) = match cand.as_str() {
            "hnsw_rs" => {
                let h = hnsw_rs::hnsw::Hnsw::<f32, OneMinusDot>::new(
                    args.connectivity,
                    rows,
                    16,
                    args.ef_construction,
                    OneMinusDot,
                );
                let data: Vec<(&[f32], usize)> = corpus.chunks_exact(dim).enumerate().map(|(i, r)| (r, i)).collect();
                h.parallel_insert_slice(&data);
                let mb = rss_mb() - rss0;
                let k = args.k;
                (Box::new(move |q: &[f32], ef: usize| h.search(q, k, ef).into_iter().map(|n| n.d_id as u32).collect()), mb)
            }
            usearch if usearch.starts_with("usearch-") => {
                let quantization = match &usearch[8..] {
                    "f32" => usearch::ScalarKind::F32,
                    "f16" => usearch::ScalarKind::F16,
                    "i8" => usearch::ScalarKind::I8,
                    other => panic!("unknown usearch scalar {other}"),
                };
                let options = usearch::IndexOptions {
                    dimensions: dim,
                    metric: usearch::MetricKind::IP,
                    quantization,
                    connectivity: args.connectivity,
                    expansion_add: args.ef_construction,
                    expansion_search: 64,
                    multi: false,
                };
                let index = usearch::Index::new(&options).expect("usearch index");
                index.reserve_capacity_and_threads(rows, threads).expect("reserve");
                corpus.par_chunks_exact(dim).enumerate().for_each(|(i, r)| index.add(i as u64, r).expect("add"));
                let mb = index.memory_usage() as f64 / (1 << 20) as f64;
                let k = args.k;
                (
                    Box::new(move |q: &[f32], ef: usize| {
                        index.change_expansion_search(ef);
                        index.search(q, k).expect("search").keys.into_iter().map(|key| key as u32).collect()
                    }),
                    mb,
                )
            }
            other => panic!("unknown candidate {other}"),
        };
        let build_s = t.elapsed().as_secs_f64();
        eprintln!("{cand}: built in {build_s:.1} s, {memory_mb:.0} MB");
        for &ef in &args.efs {
            let t = Instant::now();
            let found: Vec<Vec<u32>> = (0..nq).map(|q| search(&queries[q * dim..(q + 1) * dim], ef.max(args.k))).collect();
            let ms = t.elapsed().as_secs_f64() * 1e3 / nq as f64;
            let r = found.iter().zip(&truth).map(|(f, t)| recall(f, t)).sum::<f64>() / nq as f64;
            eprintln!(
                "  ef {ef}: {ms:.3} ms/query (1 thread), recall@{} {r:.4}, {:.1}x exact",
                args.k,
                exact_batched_ms * threads as f64 / ms,
            );
            results.push(json!({
                "candidate": cand, "ef": ef, "build_s": build_s, "memory_mb": memory_mb,
                "ms_per_query_1_thread": ms, "recall": r,
                "speedup_vs_exact_per_thread": exact_batched_ms * threads as f64 / ms,
            }));
        }
    }
    let report: Value = json!({
        "rows": rows, "dim": dim, "real_passages": np, "queries": nq, "k": args.k, "noise": args.noise, "mix": args.mix,
        "connectivity": args.connectivity, "ef_construction": args.ef_construction, "threads": threads,
        "machine": machine(),
        "mlr": mlr,
        "peers": {"exact_ms_per_query_all_queries_at_once": exact_batched_ms, "results": results},
    });
    if let Some(out) = &args.out {
        std::fs::write(out, serde_json::to_string_pretty(&report).unwrap() + "\n").expect("--out");
    }
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| c.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string()))
        .unwrap_or_default();
    json!({"cpu": cpu, "threads": rayon::current_num_threads(), "avx2": std::is_x86_feature_detected!("avx2")})
}

fn dir_bytes(dir: &std::path::Path, keep: impl Fn(&str) -> bool) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| keep(&e.file_name().to_string_lossy()))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// mlr's own path: an f16 store written by `mlr_retrieve::encode`, exact search, the HNSW index.
fn bench_mlr(args: &Args, corpus: &[f32], queries: &[f32], dim: usize) -> Value {
    let rows = corpus.len() / dim;
    let nq = queries.len() / dim;
    let work = std::path::Path::new(&args.work).join(format!("rows-{rows}-mix-{}", args.mix));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).expect("--work");
    let lines: String = (0..rows).map(|i| format!("{{\"docid\":\"d{i}\",\"title\":\"\",\"text\":\"{i}\"}}\n")).collect();
    std::fs::write(work.join("corpus.jsonl"), lines).expect("corpus");
    let docs = Corpus::open(&[work.join("corpus.jsonl")]).expect("corpus");
    let spec = StoreSpec { model: "retrieve-bench".into(), dim, dtype: Dtype::F16, shard_size: 100_000 };
    let encoder = |texts: &[String]| -> Result<Vec<Vec<f32>>, std::num::ParseIntError> {
        texts.iter().map(|t| Ok(corpus[t.parse::<usize>()? * dim..][..dim].to_vec())).collect()
    };
    let store_dir = work.join("store");
    encode(&store_dir, &docs, &spec, &EncodeOptions { batch_size: 4096, slice: Slice::ALL }, encoder, |_| {})
        .expect("writing the store");
    let store = VectorStore::open(&store_dir).expect("store");
    let store_bytes = dir_bytes(&store_dir, |n| n.ends_with(".f16"));
    let qids: Vec<String> = (0..nq).map(|q| format!("q{q}")).collect();
    let options = SearchOptions { depth: args.k, ..SearchOptions::default() };
    // Exact: twice, the first run paging the store in.
    search(&store, &qids, queries, &options).expect("exact search");
    let t = Instant::now();
    let exact = search(&store, &qids, queries, &options).expect("exact search");
    let exact_ms = t.elapsed().as_secs_f64() * 1e3 / nq as f64;
    let threads = rayon::current_num_threads();
    eprintln!("mlr exact: {exact_ms:.3} ms/query ({nq} queries at once, {threads} threads), store {:.0} MB", store_bytes as f64 / 1e6);
    let truth: Vec<Vec<u32>> = exact.iter().map(|h| h.iter().map(|h| h.row as u32).collect()).collect();
    let opts = AnnOptions { connectivity: args.connectivity, ef_construction: args.ef_construction, ..AnnOptions::default() };
    let t = Instant::now();
    let index = ann::build(&store, &opts, |_| {}).expect("building the index");
    let build_s = t.elapsed().as_secs_f64();
    let index_bytes = dir_bytes(&store_dir, |n| n == ann::INDEX_FILE);
    eprintln!("mlr HNSW index: built in {build_s:.1} s, {:.0} MB on disk, {:.0} MB in memory", index_bytes as f64 / 1e6, index.memory_bytes() as f64 / 1e6);
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("pool");
    let mut per_ef = Vec::new();
    for &ef in &args.efs {
        let t = Instant::now();
        let hits = one.install(|| ann::search(&index, &store, &qids, queries, args.k, ef)).expect("ann search");
        let ms1 = t.elapsed().as_secs_f64() * 1e3 / nq as f64;
        let t = Instant::now();
        ann::search(&index, &store, &qids, queries, args.k, ef).expect("ann search");
        let ms_all = t.elapsed().as_secs_f64() * 1e3 / nq as f64;
        let r = hits
            .iter()
            .zip(&truth)
            .map(|(h, t)| recall(&h.iter().map(|h| h.row as u32).collect::<Vec<_>>(), t))
            .sum::<f64>()
            / nq as f64;
        let speedup = exact_ms * threads as f64 / ms1;
        eprintln!("  ef {ef}: {ms1:.3} ms/query on 1 thread, {ms_all:.3} on {threads}; recall@{} {r:.4}; {speedup:.1}x exact per thread", args.k);
        per_ef.push(json!({"ef": ef.max(args.k), "ms_per_query_1_thread": ms1, "ms_per_query_all_threads": ms_all,
                           "recall": r, "speedup_vs_exact_per_thread": speedup}));
    }
    let _ = std::fs::remove_dir_all(&work);
    json!({
        "rows": rows, "store_dtype": "f16", "store_bytes": store_bytes, "index_file_bytes": index_bytes,
        "index_memory_bytes": index.memory_bytes(),
        "exact_ms_per_query_all_queries_at_once": exact_ms, "threads": threads,
        "index": {"connectivity": opts.connectivity, "ef_construction": opts.ef_construction, "build_s": build_s},
        "ann": per_ef,
    })
}
