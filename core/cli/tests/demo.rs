//! `mlr demo build`, `mlr search` and `mlr eval --vectors` on a tiny random-weight model (the
//! e5-small architecture at width 32, the real tokenizer, matrices on the Q4_0 grid as the
//! converted default model's are), a "fine-tuned" copy of it (every tensor but the word table
//! moved) and a two-language LAReQA set: the manifest describes every file; the base ships as
//! Q4_0 with its word table in pieces and the fine-tuned model leaves that table to it; the
//! stored vectors are the shipped models' embeddings (to int8 precision); `mlr eval --vectors`
//! reproduces the manifest's report; and `mlr search` ranks as a plain dot product + sort over
//! those vectors does, for either model.

use std::path::{Path, PathBuf};
use std::process::Command;

use burn::backend::NdArray;
use mlr_embed::{Embedder, ModelFiles, Role};
use mlr_model::{BertConfig, SeededWeights};
use mlr_weights::Quant;
use serde_json::{json, Value};

fn model_dir() -> PathBuf {
    let dir = std::env::var_os("MLR_MODEL_DIR").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/mlr/models/multilingual-e5-small")
    });
    assert!(dir.join("tokenizer.json").exists(), "no converted model in {}: run scripts/setup.sh", dir.display());
    dir
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn paragraph(sentences: &[&str], qid: &str, question: &str, answer: usize) -> Value {
    let mut breaks = Vec::new();
    let mut context = String::new();
    for s in sentences {
        if !context.is_empty() {
            context.push(' ');
        }
        // Character offsets, as LAReQA's (Python's) spans are.
        let start = context.chars().count();
        breaks.push([start, start + s.chars().count()]);
        context.push_str(s);
    }
    json!({"context": context, "sentences": sentences, "sentence_breaks": breaks,
           "qas": [{"id": qid, "question": question, "answers": [{"text": "x", "answer_start": breaks[answer][0]}]}]})
}

fn write_data(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let en = json!({"data": [{"title": "Libraries", "paragraphs": [
        paragraph(&["The library opens at nine.", "It holds old maps of the city.", "Entry is free."], "q1", "When does the library open?", 0),
        paragraph(&["The river floods in spring.", "Boats stop running then."], "q2", "When does the river flood?", 0),
    ]}]});
    let de = json!({"data": [{"title": "Libraries", "paragraphs": [
        paragraph(&["Die Bibliothek öffnet um neun.", "Sie hat alte Stadtpläne.", "Der Eintritt ist frei."], "q1", "Wann öffnet die Bibliothek?", 0),
        paragraph(&["Der Fluss tritt im Frühling über die Ufer.", "Dann fahren keine Boote."], "q2", "Wann tritt der Fluss über die Ufer?", 0),
    ]}]});
    std::fs::write(dir.join("en.json"), en.to_string()).unwrap();
    std::fs::write(dir.join("de.json"), de.to_string()).unwrap();
    std::fs::write(dir.join("split.json"), r#"{"train": [], "dev": [], "test": ["Libraries"]}"#).unwrap();
}

/// A random model with its matrices on the Q4_0 grid; `tuned` moves every tensor but the word
/// table off it (what fine-tuning with a frozen table does).
fn write_model(dir: &Path, tuned: bool) {
    std::fs::create_dir_all(dir).unwrap();
    let config = BertConfig::new(250_037, 32, 2, 4, 64);
    let mut tensors = mlr_weights::collect_tensors(&config, &mut SeededWeights::new(11, 0.5)).unwrap();
    for t in &mut tensors {
        if t.shape.len() == 2 {
            t.values = Quant::Q4_0.decode(&Quant::Q4_0.encode(&t.values)).unwrap();
        }
        if tuned && t.name != "embeddings.word_embeddings.weight" {
            t.values.iter_mut().enumerate().for_each(|(i, v)| *v += 0.01 * ((i % 5) as f32 - 2.0));
        }
    }
    std::fs::write(dir.join("model.safetensors"), mlr_weights::write_safetensors(&tensors).unwrap()).unwrap();
    std::fs::write(dir.join("config.json"), config.to_json()).unwrap();
    std::fs::copy(model_dir().join("tokenizer.json"), dir.join("tokenizer.json")).unwrap();
}

/// Candidate ids by dot product with `query`, ties by descending id (what `mlr search` promises).
fn dot_ranking(set: &mlr_data::lareqa::LareqaSet, vectors: &mlr_demo::VectorFile, query: &[f32]) -> Vec<String> {
    let mut scored: Vec<(f32, &str)> = set
        .candidates
        .iter()
        .enumerate()
        .map(|(i, c)| (vectors.candidate(i).iter().zip(query).map(|(a, b)| a * b).sum::<f32>(), c.id.as_str()))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(a.1)));
    scored.into_iter().map(|(_, id)| id.to_string()).collect()
}

/// The ids of `mlr search --json`'s hits, in order.
fn hit_ids(search: &Value) -> Vec<String> {
    search["hits"].as_array().unwrap().iter().map(|h| h["id"].as_str().unwrap().to_string()).collect()
}

fn mlr(cache: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mlr")).args(args).env("MLR_CACHE", cache).output().unwrap();
    assert!(out.status.success(), "mlr {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn demo_build_search_and_eval_agree_with_the_model() {
    let tmp = std::env::temp_dir().join(format!("mlr-demo-test-{}", std::process::id()));
    let (data, model, out, cache) = (tmp.join("data"), tmp.join("tiny"), tmp.join("out"), tmp.join("cache"));
    let tuned_model = tmp.join("tuned");
    write_data(&data);
    write_model(&model, false);
    write_model(&tuned_model, true);
    let s = |p: &Path| p.display().to_string();
    let (tiny, tuned) = (format!("tiny={}", s(&model)), format!("tuned={}", s(&tuned_model)));
    mlr(&cache, &["demo", "build", "--model", &tiny, "--model", &tuned, "--data", &s(&data), "--out", &s(&out)]);

    // The manifest describes every file it lists.
    let manifest: Value = serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let m = &manifest["models"][0];
    assert_eq!((m["name"].as_str(), m["dtype"].as_str(), m["dim"].as_u64()), (Some("tiny"), Some("compact"), Some(32)));
    let t = &manifest["models"][1];
    assert_eq!((t["name"].as_str(), t["base"].as_str()), (Some("tuned"), Some("tiny")));
    assert!(t.get("words").is_none(), "the fine-tuned model uses the base's word table");
    let pieces = m["words"].as_array().unwrap();
    assert_eq!(pieces.len(), 250_037usize.div_ceil(4096), "pieces of 4,096 rows");
    let entries = [m, t]
        .into_iter()
        .flat_map(|m| m["files"].as_array().unwrap().iter().chain([&m["vectors"]]))
        .chain(pieces)
        .chain([&manifest["dataset"]["split"]])
        .chain(manifest["dataset"]["files"].as_array().unwrap());
    for f in entries {
        let bytes = std::fs::read(out.join(f["path"].as_str().unwrap())).unwrap();
        assert_eq!(bytes.len() as u64, f["bytes"].as_u64().unwrap(), "{f}");
        assert_eq!(sha256(&bytes), f["sha256"].as_str().unwrap(), "{f}");
    }
    assert_eq!(manifest["dataset"]["files"][0]["encoding"].as_str(), Some("gzip"));
    assert_eq!(m["files"][1]["path"].as_str(), Some("models/tiny/tokenizer.json.gz"));
    // Q4_0 is 4.5 bits a value: the base (file and pieces) is about a seventh of its f32 file.
    let f32_size = std::fs::metadata(model.join("model.safetensors")).unwrap().len();
    let shipped: u64 =
        m["files"][2]["bytes"].as_u64().unwrap() + pieces.iter().map(|p| p["bytes"].as_u64().unwrap()).sum::<u64>();
    assert!(shipped * 6 < f32_size, "compact base: {shipped} vs {f32_size} bytes");
    // The fine-tuned model's file holds no word table: Q8_0 matrices and f16 vectors only.
    assert!(t["files"][2]["bytes"].as_u64().unwrap() * 20 < f32_size);
    assert!(t["files"][2]["format"].as_str().unwrap().contains("q8_0"), "{}", t["files"][2]);

    // The stored vectors are the shipped model's embeddings, in the set's order (the shipped
    // directories read natively: the pieces beside the base, the base beside the fine-tuned).
    let embedder =
        Embedder::<NdArray<f32>>::from_files(&ModelFiles::read(&out.join("models/tiny")).unwrap(), &Default::default())
            .unwrap();
    assert!(embedder.word_table().is_some_and(|t| t.is_complete()));
    let vectors = mlr_demo::VectorFile::decode(&std::fs::read(out.join("corpus/tiny.mlrv")).unwrap()).unwrap();
    let set = mlr_data::lareqa::LareqaSet::load_dir(&data, &["de", "en"]).unwrap();
    assert_eq!((vectors.n_candidates(), vectors.n_questions()), (set.candidates.len(), set.questions.len()));
    let sentences: Vec<&str> = set.candidates.iter().map(|c| c.sentence.as_str()).collect();
    let questions: Vec<&str> = set.questions.iter().map(|q| q.text.as_str()).collect();
    for (i, v) in embedder.embed(&sentences, Role::Passage).unwrap().iter().enumerate() {
        let c = mlr_embed::cosine(v, vectors.candidate(i));
        assert!(c > 0.9999, "candidate {i}: cosine {c}");
    }
    for (i, v) in embedder.embed(&questions, Role::Query).unwrap().iter().enumerate() {
        assert!(mlr_embed::cosine(v, vectors.question(i)) > 0.9999, "question {i}");
    }

    // `mlr eval --vectors` gives the manifest's report; --max-questions keeps the first ids.
    let eval_out = tmp.join("eval.json");
    let vec_path = s(&out.join("corpus/tiny.mlrv"));
    mlr(&cache, &["eval", "--vectors", &vec_path, "--data", &s(&data), "--out", &s(&eval_out)]);
    let eval: Value = serde_json::from_slice(&std::fs::read(&eval_out).unwrap()).unwrap();
    for (k, r) in [("mAP_mono", "mono"), ("mAP_cross", "cross"), ("mAP_multi", "multi")] {
        assert_eq!(eval[k].as_f64(), m["report"][r]["map"].as_f64(), "{k}");
    }
    assert_eq!(eval["rank_distance"].as_f64(), m["report"]["rank_distance"].as_f64());
    mlr(&cache, &["eval", "--vectors", &vec_path, "--data", &s(&data), "--max-questions", "1", "--out", &s(&eval_out)]);
    let one: Value = serde_json::from_slice(&std::fs::read(&eval_out).unwrap()).unwrap();
    assert_eq!(one["n_queries"].as_u64(), Some(2), "one question id in two languages");

    // `mlr search` ranks by dot product with the stored vectors, ties by descending id.
    let query = "When does the library open?";
    let got: Value =
        serde_json::from_str(&mlr(&cache, &["search", "--demo", &s(&out), "--json", "-k", "10", query])).unwrap();
    let q = embedder.embed(&[query], Role::Query).unwrap().remove(0);
    let want_ids = dot_ranking(&set, &vectors, &q);
    assert_eq!(hit_ids(&got), want_ids);
    assert_eq!(got["group"].as_str(), Some("q1"), "the query is dataset question q1");
    let ranks: Vec<u64> = got["bias"].as_array().unwrap().iter().map(|b| b["rank"].as_u64().unwrap()).collect();
    let expect: Vec<u64> =
        ["de-000000", "en-000000"].iter().map(|id| 1 + want_ids.iter().position(|w| w == id).unwrap() as u64).collect();
    assert_eq!(ranks, expect, "pooled ranks of q1's answers (de, en)");
    assert_eq!(got["rank_distance"].as_u64(), Some(expect[0].abs_diff(expect[1])));
    let de_only: Value =
        serde_json::from_str(&mlr(&cache, &["search", "--demo", &s(&out), "--json", "--lang", "de", query])).unwrap();
    assert!(de_only["hits"].as_array().unwrap().iter().all(|h| h["lang"] == "de"));

    // The fine-tuned model, through its base's file and word table, natively and in `mlr search`.
    let tuned_embedder = Embedder::<NdArray<f32>>::from_files(
        &ModelFiles::read(&out.join("models/tuned")).unwrap(),
        &Default::default(),
    )
    .unwrap();
    let tuned_vectors = mlr_demo::VectorFile::decode(&std::fs::read(out.join("corpus/tuned.mlrv")).unwrap()).unwrap();
    for (i, v) in tuned_embedder.embed(&sentences, Role::Passage).unwrap().iter().enumerate() {
        assert!(mlr_embed::cosine(v, tuned_vectors.candidate(i)) > 0.9999, "tuned candidate {i}");
    }
    let tq = tuned_embedder.embed(&[query], Role::Query).unwrap().remove(0);
    assert!(mlr_embed::cosine(&tq, &q) < 0.9999, "the fine-tuned model is another model");
    let got: Value = serde_json::from_str(&mlr(
        &cache,
        &["search", "--demo", &s(&out), "--model", "tuned", "--json", "-k", "10", query],
    ))
    .unwrap();
    assert_eq!(hit_ids(&got), dot_ranking(&set, &tuned_vectors, &tq));
    std::fs::remove_dir_all(&tmp).ok();
}

/// `mlr eval` with the WGSL kernels (wgpu's default), without them (`--no-kernels`) and on the CPU:
/// the same numbers within 1e-4 (tiny random model, so lavapipe finishes in seconds).
#[test]
fn eval_with_kernels_equals_the_plain_path() {
    let tmp = std::env::temp_dir().join(format!("mlr-kernels-eval-{}", std::process::id()));
    let (data, model, cache) = (tmp.join("data"), tmp.join("tiny"), tmp.join("cache"));
    write_data(&data);
    write_model(&model, false);
    let s = |p: &Path| p.display().to_string();
    let run = |extra: &[&str], name: &str| -> Value {
        let out = tmp.join(format!("{name}.json"));
        let (model_s, data_s, out_s) = (s(&model), s(&data), s(&out));
        let mut args = vec!["eval", "--no-cache", "--model", &model_s, "--data", &data_s, "--out", &out_s];
        args.extend_from_slice(extra);
        mlr(&cache, &args);
        serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap()
    };
    let fused = run(&["--backend", "wgpu"], "fused");
    let plain = run(&["--backend", "wgpu", "--no-kernels"], "plain");
    let cpu = run(&["--backend", "cpu"], "cpu");
    assert_eq!(fused["backend"].as_str(), Some("wgpu (mlr kernels)"));
    assert_eq!(plain["backend"].as_str(), Some("wgpu (plain burn, --no-kernels)"));
    let keys = ["mAP_mono", "mAP_cross", "mAP_multi", "R@1_mono", "R@1_cross", "R@10_multi", "rank_distance"];
    for k in keys {
        let (f, p, c) = (fused[k].as_f64().unwrap(), plain[k].as_f64().unwrap(), cpu[k].as_f64().unwrap());
        assert!((f - p).abs() <= 1e-4 && (f - c).abs() <= 1e-4, "{k}: kernels {f}, plain {p}, cpu {c}");
    }
    // A path that is not UTF-8 is a valid Unix path: the report is written and the command
    // line recorded lossily (std::env::args panicked on it before).
    use std::os::unix::ffi::OsStrExt;
    let odd = tmp.join(std::ffi::OsStr::from_bytes(b"report-\xff.json"));
    let out = Command::new(env!("CARGO_BIN_EXE_mlr"))
        .args(["eval", "--no-cache", "--model"])
        .arg(&model)
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&odd)
        .env("MLR_CACHE", &cache)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&std::fs::read(&odd).unwrap()).unwrap();
    assert!(report["command"].as_str().unwrap().contains("report-\u{fffd}.json"), "{}", report["command"]);
    assert_eq!(report["mAP_multi"], cpu["mAP_multi"]);
    std::fs::remove_dir_all(&tmp).ok();
}
