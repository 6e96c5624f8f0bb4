//! `mlr retrieve` on a tiny random-weight model (the e5-small architecture at width 32, the real
//! tokenizer) and a small MIRACL-format corpus: the run ranks by the model's inner products, the
//! report's measures are `mlr trec-eval`'s on the written run, a second run encodes nothing, two
//! `--shard` slices merged give the one-machine store file for file and the same run, and the
//! `.npy` export holds every passage. Bad input ends in an error naming the flag or file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use burn::backend::NdArray;
use mlr_embed::{Embedder, Role};
use mlr_model::{BertConfig, SeededWeights};
use serde_json::Value;

fn model_dir() -> PathBuf {
    let dir = std::env::var_os("MLR_MODEL_DIR").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/mlr/models/multilingual-e5-small")
    });
    assert!(dir.join("tokenizer.json").exists(), "no converted model in {}: run scripts/setup.sh", dir.display());
    dir
}

fn write_model(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let config = BertConfig::new(250_037, 32, 2, 4, 64);
    let tensors = mlr_weights::collect_tensors(&config, &mut SeededWeights::new(5, 0.5)).unwrap();
    std::fs::write(dir.join("model.safetensors"), mlr_weights::write_safetensors(&tensors).unwrap()).unwrap();
    std::fs::write(dir.join("config.json"), config.to_json()).unwrap();
    std::fs::copy(model_dir().join("tokenizer.json"), dir.join("tokenizer.json")).unwrap();
}

const PASSAGES: [(&str, &str, &str); 12] = [
    ("10#0", "Nairobi", "Nairobi is the capital of Kenya."),
    ("10#1", "Nairobi", "The city lies on the Nairobi River."),
    ("11#0", "Mombasa", "Mombasa is the largest port of Kenya."),
    ("11#1", "Mombasa", "It lies on the coast of the Indian Ocean."),
    ("12#0", "Pinocchio", "Carlo Collodi wrote Pinocchio in 1883."),
    ("12#1", "Pinocchio", "The puppet's nose grows when he lies."),
    ("13#0", "Canberra", "Canberra is the capital of Australia."),
    ("13#1", "", "Sydney is larger than Canberra."),
    ("14#0", "Tea", "Kenya exports a lot of tea."),
    ("14#1", "Tea", "Tea grows in the highlands."),
    ("15#0", "Rivers", "The Nile is the longest river of Africa."),
    ("15#1", "Rivers", "The Amazon carries the most water."),
];

fn write_corpus(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let line =
        |(d, t, x): &(&str, &str, &str)| serde_json::json!({"docid": d, "title": t, "text": x}).to_string() + "\n";
    let (a, b) = PASSAGES.split_at(7);
    std::fs::write(dir.join("docs-0.jsonl"), a.iter().map(line).collect::<String>()).unwrap();
    std::fs::write(dir.join("docs-1.jsonl"), b.iter().map(line).collect::<String>()).unwrap();
}

const TOPICS: [(&str, &str); 3] = [
    ("6", "Where is the largest port of Kenya?"),
    ("8", "What is the capital of Australia?"),
    ("12", "When was Pinocchio written?"),
];
const QRELS: &str = "6\tQ0\t11#0\t1\n6\tQ0\t10#0\t0\n8\tQ0\t13#0\t1\n8\tQ0\t13#1\t0\n12\tQ0\t12#0\t1\n";

fn mlr(cache: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mlr")).args(args).env("MLR_CACHE", cache).output().unwrap()
}

fn ok(out: Output, args: &[&str]) -> (String, String) {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "mlr {args:?}: {stderr}");
    (String::from_utf8(out.stdout).unwrap(), stderr)
}

/// Every file of a store but its lock, with its bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap() != ".lock")
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect()
}

struct Setup {
    tmp: PathBuf,
    model: String,
    corpus: String,
    topics: String,
    qrels: String,
    cache: PathBuf,
}

fn setup(name: &str) -> Setup {
    let tmp = std::env::temp_dir().join(format!("mlr-retrieve-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&tmp).ok();
    write_model(&tmp.join("tiny"));
    write_corpus(&tmp.join("corpus"));
    let topics: String = TOPICS.iter().map(|(q, t)| format!("{q}\t{t}\n")).collect();
    std::fs::write(tmp.join("topics.tsv"), topics).unwrap();
    std::fs::write(tmp.join("qrels.tsv"), QRELS).unwrap();
    let s = |p: PathBuf| p.display().to_string();
    Setup {
        model: s(tmp.join("tiny")),
        corpus: s(tmp.join("corpus")),
        topics: s(tmp.join("topics.tsv")),
        qrels: s(tmp.join("qrels.tsv")),
        cache: tmp.join("cache"),
        tmp,
    }
}

#[test]
fn retrieve_ranks_scores_resumes_and_merges() {
    let t = setup("e2e");
    let p = |n: &str| t.tmp.join(n).display().to_string();
    let (store, run, out, npy) = (p("store"), p("run.trec"), p("report.json"), p("npy"));
    let base = ["retrieve", "--model", &t.model, "--corpus", &t.corpus, "--shard-size", "5", "--batch-size", "2"];
    let full: Vec<&str> = base
        .iter()
        .copied()
        .chain(["--store", &store, "--topics", &t.topics, "--qrels", &t.qrels, "--run", &run, "--out", &out])
        .chain(["--export-npy", &npy])
        .collect();
    let (stdout, stderr) = ok(mlr(&t.cache, &full), &full);
    assert!(stderr.contains("encoded 12 passages"), "{stderr}");
    assert!(stdout.contains("| nDCG@10 |") && stdout.contains("| Recall@100 |"), "{stdout}");

    // The report's measures are `mlr trec-eval`'s on the written run.
    let report: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let trec_args = ["trec-eval", &t.qrels, &run, "--json"];
    let (trec, _) = ok(mlr(&t.cache, &trec_args), &trec_args);
    let trec: Value = serde_json::from_str(&trec).unwrap();
    assert_eq!(report["trec"], trec);
    assert_eq!(report["n_passages"].as_u64(), Some(12));
    assert_eq!(report["qrels_coverage"]["relevant_found"].as_u64(), Some(3));
    assert!(Path::new(&out).with_extension("md").exists());

    // The run: every passage per query (depth 100 > 12), ranked by the model's inner products
    // (f16-stored passages: scores within 2e-3 of the f32 products).
    let embedder = Embedder::<NdArray<f32>>::from_files(
        &mlr_embed::ModelFiles::read(Path::new(&t.model)).unwrap(),
        &Default::default(),
    )
    .unwrap();
    let texts: Vec<String> =
        PASSAGES.iter().map(|(_, title, text)| mlr_retrieve::corpus::passage_text(title, text)).collect();
    let passages = embedder.embed(&texts, Role::Passage).unwrap();
    let queries = embedder.embed(&TOPICS.map(|t| t.1), Role::Query).unwrap();
    let run_text = std::fs::read_to_string(&run).unwrap();
    for (q, (qid, _)) in TOPICS.iter().enumerate() {
        let rows: Vec<(&str, f32)> = run_text
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .filter(|f| f[0] == *qid)
            .map(|f| (f[2], f[4].parse().unwrap()))
            .collect();
        assert_eq!(rows.len(), 12, "query {qid}");
        assert!(rows.windows(2).all(|w| w[0].1 >= w[1].1), "query {qid}: not in score order");
        for (docid, score) in rows {
            let i = PASSAGES.iter().position(|p| p.0 == docid).unwrap();
            let want: f32 = queries[q].iter().zip(&passages[i]).map(|(a, b)| a * b).sum();
            assert!((score - want).abs() < 2e-3, "query {qid} {docid}: {score} vs {want}");
        }
    }

    // The export: 12 rows of 32 float16 values, docids in corpus order.
    let bytes = std::fs::read(Path::new(&npy).join("vectors.npy")).unwrap();
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    assert!(String::from_utf8_lossy(&bytes[10..10 + header_len])
        .contains("'descr': '<f2', 'fortran_order': False, 'shape': (12, 32)"));
    assert_eq!(bytes.len(), 10 + header_len + 12 * 32 * 2);
    let docids = std::fs::read_to_string(Path::new(&npy).join("docids.txt")).unwrap();
    assert_eq!(docids.lines().collect::<Vec<_>>(), PASSAGES.map(|p| p.0));

    // Again: nothing is encoded, the run is the same.
    let before = files(Path::new(&store));
    let (_, stderr) = ok(mlr(&t.cache, &full), &full);
    assert!(stderr.contains("all 12 passages of this store were encoded already"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&run).unwrap(), run_text);
    assert_eq!(files(Path::new(&store)), before);

    // Two slices, merged: the same store and run.
    let (s0, s1, merged, run2) = (p("slice0"), p("slice1"), p("merged"), p("run2.trec"));
    for (i, dir) in [&s0, &s1].into_iter().enumerate() {
        let shard = format!("{i}/2");
        let args: Vec<&str> = base.iter().copied().chain(["--store", dir, "--shard", &shard]).collect();
        let (_, stderr) = ok(mlr(&t.cache, &args), &args);
        assert!(stderr.contains(&format!("slice {i}/2 done")) && stderr.contains("--merge"), "{stderr}");
    }
    let args: Vec<&str> = base
        .iter()
        .copied()
        .chain(["--store", &merged, "--merge", &s0, &s1, "--topics", &t.topics, "--run", &run2])
        .collect();
    let (_, stderr) = ok(mlr(&t.cache, &args), &args);
    assert!(stderr.contains("merged 2 slice stores"), "{stderr}");
    assert_eq!(files(Path::new(&merged)), before, "merged slices differ from the one-machine store");
    assert_eq!(std::fs::read_to_string(&run2).unwrap(), run_text);
    // The same command again (as after Ctrl-C while searching): the merged store is used as it is.
    let (_, stderr) = ok(mlr(&t.cache, &args), &args);
    assert!(stderr.contains("nothing to merge"), "{stderr}");
    assert_eq!(files(Path::new(&merged)), before, "a second merge changed the store");
    assert_eq!(std::fs::read_to_string(&run2).unwrap(), run_text);
    // The approximate index: built on request, kept, used by default afterwards; with every row
    // found (depth 100 > 12 rows) the run is the exact one, scores and ties included.
    let ann_run = p("ann.trec");
    let with = |extra: &[&'static str]| -> Vec<String> {
        full.iter().map(|s| s.to_string()).chain(extra.iter().map(|s| s.to_string())).collect()
    };
    for (extra, want) in [
        (&["--search", "ann"][..], "built the HNSW index of 12 rows"),
        (&[][..], "using the HNSW index beside the store (12 rows)"),
        (&["--search", "exact"][..], "(exact, depth 100)"),
    ] {
        let mut args = with(extra);
        let i = args.iter().position(|a| a == "--run").unwrap();
        args[i + 1] = ann_run.clone();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (_, stderr) = ok(mlr(&t.cache, &args), &args);
        assert!(stderr.contains(want), "{extra:?}: {stderr}");
        assert_eq!(std::fs::read_to_string(&ann_run).unwrap(), run_text, "{extra:?}");
    }
    let report: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert!(report["search"]["method"].as_str().unwrap().starts_with("exact"), "{}", report["search"]);
    // A stale index (the store is another one now) is rebuilt by --search ann, skipped by auto.
    let meta = Path::new(&store).join(mlr_retrieve::ann::INDEX_META);
    let text = std::fs::read_to_string(&meta).unwrap().replace("\"rows\": 12", "\"rows\": 13");
    std::fs::write(&meta, text).unwrap();
    let (_, stderr) = ok(mlr(&t.cache, &full), &full);
    assert!(stderr.contains("cannot be used") && stderr.contains("searching exactly"), "{stderr}");
    let args: Vec<String> = with(&["--search", "ann"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (_, stderr) = ok(mlr(&t.cache, &args), &args);
    assert!(stderr.contains("building it again") && stderr.contains("built the HNSW index"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&run).unwrap(), run_text);
    // A slice of another model is refused before anything is copied.
    let other = p("other");
    let args: Vec<&str> =
        base.iter().copied().chain(["--max-tokens", "7", "--store", &other, "--merge", &s0, &s1]).collect();
    refused(mlr(&t.cache, &args), "is a store of another model or corpus");
    assert!(!Path::new(&other).join("manifest.json").exists(), "a refused merge wrote a store");
    std::fs::remove_dir_all(&t.tmp).ok();
}

/// The command failed with an error message (not a panic) containing `want`.
fn refused(out: Output, want: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "expected a clean error, got {:?}: {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains(want), "wanted {want:?} in: {stderr}");
}

#[test]
fn retrieve_refuses_bad_input_naming_the_flag_or_file() {
    let t = setup("bad");
    let store = t.tmp.join("store").display().to_string();
    let base = ["retrieve", "--model", &t.model, "--store", &store];
    let with = |extra: &[&str]| -> Vec<String> { base.iter().chain(extra).map(|s| s.to_string()).collect() };
    let run = |args: Vec<String>| {
        Command::new(env!("CARGO_BIN_EXE_mlr")).args(args).env("MLR_CACHE", &t.cache).output().unwrap()
    };
    refused(
        run(with(&["--corpus", &t.corpus, "--shard", "0/2", "--topics", &t.topics])),
        "--shard encodes one slice and stops: --topics needs the whole store",
    );
    let missing = t.tmp.join("none").display().to_string();
    refused(run(with(&["--corpus", &missing])), "--corpus");
    let other = t.tmp.join("other.tsv");
    std::fs::write(&other, "99\tQ0\t10#0\t1\n").unwrap();
    refused(
        run(with(&["--corpus", &t.corpus, "--topics", &t.topics, "--qrels", &other.display().to_string()])),
        "judges none of the 3 queries of --topics",
    );
    let bad_topics = t.tmp.join("bad-topics.tsv");
    std::fs::write(&bad_topics, "6 no tab here\n").unwrap();
    refused(run(with(&["--corpus", &t.corpus, "--topics", &bad_topics.display().to_string()])), "bad-topics.tsv:1");
    std::fs::write(
        t.tmp.join("corpus/docs-2.jsonl"),
        serde_json::json!({"docid": "10#0", "title": "", "text": "again"}).to_string() + "\n",
    )
    .unwrap();
    refused(run(with(&["--corpus", &t.corpus])), "docs-2.jsonl:1: docid \"10#0\" appears a second time in the corpus");
    assert!(!Path::new(&store).join("shard-00000.f16").exists(), "nothing is stored from a bad corpus");
    std::fs::remove_dir_all(&t.tmp).ok();
}
