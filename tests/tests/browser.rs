//! Browser tests: wasm32 in headless Chromium (`wasm-bindgen-test-runner`, WebDriver).
//!
//! - the tokenizer gives Hugging Face's ids for the 132 reference texts;
//! - the small random-weight BERT of `mlr_tests::tiny_config` (the e5-small architecture at width
//!   32) gives the native CPU results (`fixtures/tiny_bert.json`) on the wasm CPU backend and on
//!   **WebGPU** through burn's wgpu backend. The WebGPU test fails when the browser gives no
//!   adapter: it never falls back silently.
//!
//! - the CPU path's products (the wasm SIMD GEMM) equal burn's plain matmul on the wasm CPU;
//! - every WGSL kernel of `mlr-kernels` on WebGPU equals its plain-burn reference on the same
//!   device (top-k: on the wasm CPU, as burn's sort cannot run on WebGPU in a browser); the tiny
//!   model above runs with the kernels on, as the demo does;
//! - the page's messages to and from the encoder worker: an undecodable one is answered, never a
//!   panic; the worker's typed errors keep the texts the page shows and say when the CPU may help.
//!
//! Tolerances: cosine ≥ 0.99999 and max abs difference ≤ 1e-4 per component, against native.
#![cfg(target_arch = "wasm32")]

use burn::backend::wgpu::{graphics::WebGpu, init_setup_async, RuntimeOptions, WgpuDevice};
use burn::backend::{NdArray, Wgpu};
use burn::tensor::{Int, Tensor, TensorData};
use mlr_app::gpu::{probe_webgpu, GpuProbe};
use mlr_embed::{Embedder, Role};
use mlr_model::{BertModel, Kernels, SeededWeights};
use mlr_tests::*;
use mlr_tokenize::TextTokenizer;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// The converted model's tokenizer, compiled in (the test script sets MLR_MODEL_DIR).
const TOKENIZER_JSON: &[u8] = include_bytes!(concat!(
    env!("MLR_MODEL_DIR", "set MLR_MODEL_DIR to the converted model directory (scripts/env.sh does)"),
    "/tokenizer.json"
));

fn tiny_embedder<B: Kernels>(device: &B::Device) -> Embedder<B> {
    let config = tiny_config();
    let model = BertModel::from_source(&config, &mut SeededWeights::new(TINY_SEED, TINY_SCALE), device).unwrap();
    Embedder::new(model, TextTokenizer::from_bytes(TOKENIZER_JSON).unwrap(), config, device).unwrap()
}

async fn check_tiny<B: Kernels>(name: &str, device: &B::Device) {
    let embedder = tiny_embedder::<B>(device);
    let want = tiny_fixture();
    assert_eq!(want.seed, TINY_SEED);
    let got = embedder.embed_async(&TINY_TEXTS, Role::Query).await.unwrap();
    let mut worst_cos = 1.0f32;
    let mut worst_abs = 0.0f32;
    for (g, w) in got.iter().zip(&want.embeddings) {
        worst_cos = worst_cos.min(cosine(g, w));
        worst_abs = worst_abs.max(max_abs_diff(g, w));
    }
    console_log!("{name}: tiny model vs native CPU: min cosine {worst_cos:.7}, max abs diff {worst_abs:.2e}");
    assert!(worst_cos >= 0.99999, "{name}: cosine {worst_cos}");
    assert!(worst_abs <= 1e-4, "{name}: max abs diff {worst_abs}");
}

#[wasm_bindgen_test]
fn tokenizer_ids_equal_hugging_face() {
    let tok = TextTokenizer::from_bytes(TOKENIZER_JSON).unwrap();
    let records = reference_records();
    for r in &records {
        let role = if r.is_query { Role::Query } else { Role::Passage };
        assert_eq!(tok.ids(&r.text, role).unwrap(), r.hf_ids, "ids of {:?}", r.text);
    }
    let fixture = tiny_fixture();
    for (text, ids) in TINY_TEXTS.iter().zip(&fixture.ids) {
        assert_eq!(&tok.ids(text, Role::Query).unwrap(), ids);
    }
    console_log!("browser tokenizer: {}/132 id sequences equal Hugging Face's", records.len());
}

#[wasm_bindgen_test]
async fn tiny_model_on_wasm_cpu_matches_native() {
    check_tiny::<NdArray<f32>>("wasm CPU (ndarray)", &Default::default()).await;
}

#[wasm_bindgen_test]
async fn tiny_model_on_webgpu_matches_native() {
    let (adapter, device) = webgpu().await;
    check_tiny::<Wgpu>(&format!("WebGPU ({adapter})"), &device).await;
}

thread_local! {
    /// Whether burn's WebGPU runtime is set up: it may be set up once per page, and the tests
    /// (run one after another in one page) share it.
    static WEBGPU_READY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The browser's WebGPU adapter (name, "(software)" when it says so) and burn's device on it,
/// set up on first use. Panics when there is no adapter: these tests never fall back silently.
async fn webgpu() -> (String, WgpuDevice) {
    let adapter = match probe_webgpu().await {
        GpuProbe::NoApi => {
            panic!("navigator.gpu is missing: this browser has no WebGPU (start Chromium with --enable-unsafe-webgpu)")
        }
        GpuProbe::NoAdapter => panic!("navigator.gpu.requestAdapter() returned null: no WebGPU adapter"),
        GpuProbe::Software(name) => format!("{name} (software)"),
        GpuProbe::Hardware(name) => name,
    };
    // As the demo's worker does: on SwiftShader the linear layers run the kernel at any row count.
    mlr_kernels::tune_for_adapter(&adapter);
    let device = WgpuDevice::default();
    if !WEBGPU_READY.get() {
        let setup = init_setup_async::<WebGpu>(&device, RuntimeOptions::default()).await;
        console_log!("WebGPU adapter: {adapter}; wgpu sees {:?}", setup.adapter.get_info().name);
        WEBGPU_READY.set(true);
    }
    (adapter, device)
}

/// The evaluation crate in wasm gives the native numbers (fixture written by the native run).
#[wasm_bindgen_test]
fn evaluator_in_wasm_matches_native() {
    let got = eval_case().measure();
    let diff = json_max_diff(&got, &eval_fixture(), "").unwrap();
    console_log!("evaluator in wasm: max |wasm − native fixture| = {diff:.1e}");
    assert!(diff < 1e-9, "evaluator in wasm differs from native by {diff}");
}

async fn read<const D: usize>(t: Tensor<Wgpu, D>) -> Vec<f32> {
    t.into_data_async().await.unwrap().convert::<f32>().into_vec().unwrap()
}

async fn read_int(t: Tensor<Wgpu, 2, Int>) -> Vec<i64> {
    t.into_data_async().await.unwrap().convert::<i64>().into_vec().unwrap()
}

fn values(n: usize, seed: u32, scale: f32) -> Vec<f32> {
    // A small LCG: reproducible inputs without a rand dependency.
    let mut state = seed.wrapping_mul(747796405).wrapping_add(2891336453);
    (0..n)
        .map(|_| {
            state = state.wrapping_mul(747796405).wrapping_add(2891336453);
            ((state >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            assert!(x.is_finite() && y.is_finite(), "non-finite: {x} vs {y}");
            (x - y).abs()
        })
        .fold(0.0, f32::max)
}

/// Each kernel on WebGPU against its reference on the same device.
#[wasm_bindgen_test]
async fn kernels_on_webgpu_match_their_references() {
    let (adapter, device) = webgpu().await;
    console_log!("kernel parity on WebGPU: {adapter}");
    let t = |v: &[f32], shape: [usize; 3]| Tensor::<Wgpu, 3>::from_data(TensorData::new(v.to_vec(), shape), &device);
    let (b, s, heads, d) = (3usize, 20usize, 4usize, 8usize);
    let h = heads * d;
    let mask_v: Vec<f32> =
        [20usize, 7, 1].iter().flat_map(|&l| (0..s).map(move |j| if j < l { 1.0 } else { 0.0 })).collect();
    let mask = || Tensor::<Wgpu, 2>::from_data(TensorData::new(mask_v.clone(), [b, s]), &device);
    let [q, k, v, x, r] = [1, 2, 3, 4, 5].map(|seed| values(b * s * h, seed, 2.0));
    let [bias, gamma, beta] = [6, 7, 8].map(|seed| values(h, seed, 1.0));
    let vec1 = |v: &[f32]| Tensor::<Wgpu, 1>::from_data(TensorData::new(v.to_vec(), [v.len()]), &device);

    let attn =
        |fused| mlr_kernels::attention(t(&q, [b, s, h]), t(&k, [b, s, h]), t(&v, [b, s, h]), mask(), heads, fused);
    let diff = max_diff(&read(attn(true)).await, &read(attn(false)).await);
    console_log!("attention: max |fused - plain| {diff:.2e}");
    assert!(diff < 2e-5);

    // 8 rows, and 59 (the kernel on SwiftShader, where `tune_for_adapter` lifts the row limit,
    // with a last partial 4-row block; burn's matmul on other adapters).
    let limit = mlr_kernels::tune_for_adapter(&adapter);
    console_log!(
        "linear.wgsl up to {} rows on {adapter}",
        if limit == usize::MAX { "any number of".to_string() } else { limit.to_string() }
    );
    let w = values(h * 3 * h, 11, 0.5);
    let wb = values(3 * h, 12, 1.0);
    for rows in [8usize, b * s - 1] {
        let lin = |fused| {
            let x = Tensor::<Wgpu, 3>::from_data(TensorData::new(x[..rows * h].to_vec(), [1, rows, h]), &device);
            let w = Tensor::<Wgpu, 2>::from_data(TensorData::new(w.clone(), [h, 3 * h]), &device);
            mlr_kernels::linear(x, w, Some(vec1(&wb)), fused)
        };
        let diff = max_diff(&read(lin(true)).await, &read(lin(false)).await);
        console_log!("linear ({rows} rows): max |fused - plain| {diff:.2e}");
        assert!(diff < 1e-5);
    }

    let gelu = |fused| mlr_kernels::bias_gelu(t(&x, [b, s, h]), vec1(&bias), fused);
    let diff = max_diff(&read(gelu(true)).await, &read(gelu(false)).await);
    console_log!("bias_gelu: max |fused - plain| {diff:.2e}");
    assert!(diff < 1e-5);

    let ln = |fused| {
        mlr_kernels::layer_norm(
            t(&x, [b, s, h]),
            vec1(&bias),
            Some(t(&r, [b, s, h])),
            vec1(&gamma),
            vec1(&beta),
            1e-12,
            fused,
        )
    };
    let diff = max_diff(&read(ln(true)).await, &read(ln(false)).await);
    console_log!("layer_norm: max |fused - plain| {diff:.2e}");
    assert!(diff < 1e-5);

    for normalize in [true, false] {
        let pool = |fused| mlr_kernels::mean_pool(t(&x, [b, s, h]), mask(), normalize, fused);
        let diff = max_diff(&read(pool(true)).await, &read(pool(false)).await);
        console_log!("mean_pool (normalize {normalize}): max |fused - plain| {diff:.2e}");
        assert!(diff < 1e-5);
    }

    let corpus = values(500 * h, 9, 1.0);
    let queries = values(3 * h, 10, 1.0);
    let m2 = |v: &[f32], rows: usize| Tensor::<Wgpu, 2>::from_data(TensorData::new(v.to_vec(), [rows, h]), &device);
    let (fs, fi) = mlr_kernels::cosine_top_k(m2(&queries, 3), m2(&corpus, 500), 10, true);
    // The plain reference sorts, and burn's sort on WebGPU needs a synchronous read the browser
    // cannot do: the reference runs on the wasm CPU backend, on the same values.
    let cpu = |v: &[f32], rows: usize| {
        Tensor::<NdArray<f32>, 2>::from_data(TensorData::new(v.to_vec(), [rows, h]), &Default::default())
    };
    let (ps, pi) = mlr_kernels::cosine_top_k(cpu(&queries, 3), cpu(&corpus, 500), 10, false);
    let plain_ids: Vec<i64> = pi.into_data().convert::<i64>().into_vec().unwrap();
    assert_eq!(read_int(fi).await, plain_ids, "top-10 ids");
    let diff = max_diff(&read(fs).await, &ps.into_data().convert::<f32>().into_vec::<f32>().unwrap());
    console_log!("cosine_top_k: ids equal to the reference's (wasm CPU), max score diff {diff:.2e}");
    assert!(diff < 1e-5);
}

/// The CPU path's own products on the wasm CPU (the wasm SIMD GEMM microkernel, with weights packed
/// once) against burn's plain matmul (matrixmultiply) on the same values: every shape around the
/// kernel's 4 × 8 tile, its 144-row blocks and its 256-step k blocks; a weight used again (its
/// packed copy) and a weight changed after packing; attention, whose per-head products read
/// strided views.
#[wasm_bindgen_test]
fn cpu_products_on_wasm_match_the_plain_matmul() {
    // Without wasm SIMD both sides would be matrixmultiply (the GEMM has no other wasm kernel).
    assert!(
        cfg!(target_feature = "simd128"),
        "built without wasm SIMD (scripts/env.sh sets -C target-feature=+simd128)"
    );
    type Cpu = NdArray<f32>;
    let device = Default::default();
    let mut worst = 0.0f32;
    let mut case = 0u32;
    for m in [1usize, 3, 4, 5, 17, 149, 300] {
        for k in [1usize, 7, 384, 259] {
            for n in [1usize, 7, 8, 9, 37, 384] {
                case += 1;
                let x = Tensor::<Cpu, 3>::from_data(TensorData::new(values(m * k, case, 1.0), [1, m, k]), &device);
                let w = Tensor::<Cpu, 2>::from_data(TensorData::new(values(k * n, case + 5000, 1.0), [k, n]), &device);
                let bias = Tensor::<Cpu, 1>::from_data(TensorData::new(values(n, case + 9000, 1.0), [n]), &device);
                let plain: Vec<f32> = mlr_kernels::linear(x.clone(), w.clone(), Some(bias.clone()), false)
                    .into_data()
                    .into_vec()
                    .unwrap();
                for _ in 0..2 {
                    let fused: Vec<f32> = mlr_kernels::linear(x.clone(), w.clone(), Some(bias.clone()), true)
                        .into_data()
                        .into_vec()
                        .unwrap();
                    let diff = max_diff(&fused, &plain);
                    // Each value is a bias plus k products of values below 1 in magnitude.
                    assert!(diff <= 1e-6 * (k as f32).max(8.0), "linear {m}×{k}·{k}×{n}: max |fast − plain| {diff}");
                    worst = worst.max(diff);
                }
            }
        }
    }
    console_log!("linear on the wasm CPU, {case} shapes: max |fast − plain| {worst:.2e}");

    // A weight changed after it was packed gives the new product.
    let (m, k, n) = (6usize, 40usize, 70usize);
    let x = Tensor::<Cpu, 3>::from_data(TensorData::new(values(m * k, 1, 1.0), [1, m, k]), &device);
    let w = Tensor::<Cpu, 2>::from_data(TensorData::new(values(k * n, 2, 1.0), [k, n]), &device);
    let run = |w: Tensor<Cpu, 2>, fused| -> Vec<f32> {
        mlr_kernels::linear(x.clone(), w, None, fused).into_data().into_vec().unwrap()
    };
    assert!(max_diff(&run(w.clone(), true), &run(w.clone(), false)) < 1e-5);
    let w1 = w + 1.0;
    let diff = max_diff(&run(w1.clone(), true), &run(w1, false));
    assert!(diff < 1e-5, "a stale packed weight was used: {diff}");

    // 37 tokens: the per-head products copy their blocks of b; 16 tokens: they read b in place.
    for (s, lens) in [(37usize, [37usize, 9, 1]), (16, [16, 5, 1])] {
        let (b, heads, d) = (3usize, 4usize, 8usize);
        let h = heads * d;
        let t = |seed| Tensor::<Cpu, 3>::from_data(TensorData::new(values(b * s * h, seed, 2.0), [b, s, h]), &device);
        let mask_v: Vec<f32> = lens.iter().flat_map(|&l| (0..s).map(move |j| if j < l { 1.0 } else { 0.0 })).collect();
        let mask = Tensor::<Cpu, 2>::from_data(TensorData::new(mask_v, [b, s]), &device);
        let attn = |fused| -> Vec<f32> {
            mlr_kernels::attention(t(1), t(2), t(3), mask.clone(), heads, fused).into_data().into_vec().unwrap()
        };
        let diff = max_diff(&attn(true), &attn(false));
        console_log!("attention on the wasm CPU, {s} tokens: max |fast − plain| {diff:.2e}");
        assert!(diff < 2e-5);
    }
}

/// The browser benchmark page (`scripts/bench_browser/mlr.html`) reads its options from the query string.
#[wasm_bindgen_test]
fn bench_page_options_come_from_the_query_string() {
    use mlr_app::bench::{Backend, Options};
    let o = Options::from_query("?backend=cpu&model=%2Fmodel&inputs=/in.json&batches=1,8&max_tokens=128").unwrap();
    assert_eq!(o.backend, Backend::Cpu);
    assert_eq!(o.model, "/model/");
    assert_eq!(o.inputs, "/in.json");
    assert_eq!(o.batches, [1, 8]);
    assert_eq!(o.max_tokens, 128);
    assert_eq!((o.min_time, o.min_runs), (2.0, 2));
    assert!(Options::from_query("?backend=tpu&model=m&inputs=i").unwrap_err().contains("tpu"));
    assert!(Options::from_query("?backend=cpu&inputs=i").unwrap_err().contains("model"));
    assert!(Options::from_query("?backend=cpu&model=m&inputs=i&batches=0").unwrap_err().contains("batches"));
}

/// The page runs the threaded CPU worker only where threads are possible and WebGPU is not wanted
/// (`app/src/workers.rs`); the two workers are trunk's outputs.
#[wasm_bindgen_test]
fn the_threaded_worker_is_chosen_only_where_it_can_serve() {
    use mlr_app::workers::WorkerChoice;
    let choice = |threads_possible, hardware_gpu| WorkerChoice { threaded: false, threads_possible, hardware_gpu };
    // (threads possible, hardware adapter, software adapter asked, CPU asked) → threaded.
    let cases = [
        ((true, false, false, false), true),
        ((true, true, false, false), false),
        ((true, false, true, false), false),
        ((true, true, false, true), true),
        ((true, false, true, true), true),
        ((false, false, false, false), false),
        ((false, false, false, true), false),
    ];
    for ((possible, hardware, software, cpu), threaded) in cases {
        assert_eq!(
            choice(possible, hardware).threaded_for(software, cpu),
            threaded,
            "possible {possible}, hardware {hardware}, software {software}, cpu {cpu}"
        );
    }
    assert_eq!(WorkerChoice { threaded: true, ..choice(true, false) }.path(), "/worker-mt.js");
    assert_eq!(choice(true, true).path(), "/worker.js");
}

/// A worker message that does not decode is answered (`Malformed`), never a panic of the worker.
#[wasm_bindgen_test]
fn an_undecodable_worker_message_becomes_malformed() {
    use mlr_app::protocol::{JsCodec, Request, WorkerEvent};
    let request = Request::Reembed { id: 3, count: 5 };
    assert_eq!(JsCodec::decode_value::<Request>(JsCodec::encode_value(&request)), request);
    let bad: Request = JsCodec::decode_value(wasm_bindgen::JsValue::from(42));
    assert!(
        matches!(&bad, Request::Malformed { message } if message.starts_with("an undecodable worker message")),
        "{bad:?}"
    );
    let bad: WorkerEvent = JsCodec::decode_value(wasm_bindgen::JsValue::from_str("{\"Ready\": 1}"));
    assert!(matches!(bad, WorkerEvent::Malformed { .. }), "{bad:?}");
}

/// The worker's errors read as the page has always shown them, say which of them leave no model
/// loaded and which offer the CPU backend, and cross the worker boundary intact; the evaluator's
/// split travels by its name.
#[wasm_bindgen_test]
fn worker_errors_keep_their_texts_and_say_when_the_cpu_may_help() {
    use mlr_app::protocol::{JsCodec, Request, Split, WorkerError, WorkerEvent};
    let message = || "the encoder failed on WebGPU: adapter: lost".to_string();
    let cases = [
        (WorkerError::NotLoaded, "the model is not loaded yet", false, false),
        (
            WorkerError::Load { message: message() },
            "loading the model failed: the encoder failed on WebGPU: adapter: lost",
            true,
            false,
        ),
        (
            WorkerError::EncoderOnGpu { message: message() },
            "loading the model failed: the encoder failed on WebGPU: adapter: lost",
            true,
            true,
        ),
        (WorkerError::Search { message: "x".into(), gpu: true }, "search failed: x", false, true),
        (WorkerError::Search { message: "x".into(), gpu: false }, "search failed: x", false, false),
        (WorkerError::Reembed { message: "x".into(), gpu: true }, "re-embedding failed: x", false, true),
        (WorkerError::Evaluate { message: "x".into() }, "evaluation failed: x", false, false),
    ];
    for (error, text, load, gpu) in cases {
        assert_eq!(error.to_string(), text);
        assert_eq!((error.is_load(), error.gpu()), (load, gpu), "{error:?}");
        let event = WorkerEvent::Error { id: 7, error };
        assert_eq!(JsCodec::decode_value::<WorkerEvent>(JsCodec::encode_value(&event)), event);
    }
    let request = Request::Evaluate { id: 1, langs: vec!["en".into()], split: Split::Dev, max_questions: Some(5) };
    assert_eq!(serde_json::to_value(&request).unwrap()["Evaluate"]["split"], "dev");
    assert_eq!(JsCodec::decode_value::<Request>(JsCodec::encode_value(&request)), request);
}

/// "Your documents" messages carry files as `Uint8Array`s (one copy, not an array of numbers) and
/// cross the worker boundary intact.
#[wasm_bindgen_test]
fn document_files_cross_the_worker_boundary_as_bytes() {
    use mlr_app::docs::protocol::{DocFile, DocsOp};
    use mlr_app::protocol::{JsCodec, Request};
    use wasm_bindgen::JsCast;
    let bytes: Vec<u8> = (0..=255).collect();
    let request = Request::Docs {
        id: 4,
        op: DocsOp::Create {
            name: "notes".into(),
            budget: 128,
            column: None,
            files: vec![DocFile { name: "a.txt".into(), bytes: bytes.clone() }],
        },
    };
    let value = JsCodec::encode_value(&request);
    let file = js_sys::Reflect::get(&value, &"Docs".into())
        .and_then(|d| js_sys::Reflect::get(&d, &"op".into()))
        .and_then(|o| js_sys::Reflect::get(&o, &"Create".into()))
        .and_then(|c| js_sys::Reflect::get(&c, &"files".into()))
        .and_then(|f| js_sys::Reflect::get(&f, &0.into()))
        .and_then(|f| js_sys::Reflect::get(&f, &"bytes".into()))
        .unwrap();
    assert!(file.is_instance_of::<js_sys::Uint8Array>(), "bytes travel as a Uint8Array: {file:?}");
    assert_eq!(js_sys::Uint8Array::from(file).to_vec(), bytes);
    assert_eq!(JsCodec::decode_value::<Request>(value), request);
}

/// The documents tab's state: the first usable collection is chosen, an embedding's progress and
/// end are followed by its request id, only the newest search's answer is shown and counted in
/// the bias table, and an error ends what it answers.
#[wasm_bindgen_test]
fn the_documents_tab_follows_the_worker_by_request_id() {
    use mlr_app::docs::protocol::{CollectionInfo, DocsEvent, DocsResults, EmbedProgress, LangShare};
    use mlr_app::docs::state::{DocsAction, DocsState, Sent};
    let info = |file: &str, usable: bool, embedded: usize| CollectionInfo {
        file: file.into(),
        name: file.into(),
        model: "e5-small".into(),
        usable,
        created: "2026-12-08T00:00:00.000Z".into(),
        passages: 10,
        embedded,
        tokens: 100,
        bytes: 1000,
        budget: 128,
        langs: vec![("de".into(), 6), ("en".into(), 4)],
        sources: vec!["a.md".into()],
        groups: 0,
        damaged: None,
    };
    let mut s = DocsState::default();
    s.apply(DocsAction::Sent(1, Sent::List));
    assert!(s.owns(1));
    s.on_event(1, DocsEvent::Listed { collections: vec![info("old", false, 10), info("new", true, 0)], storage: None });
    assert_eq!(s.selected.as_deref(), Some("new"), "the first collection the loaded model can search");
    assert!(!s.owns(1));
    s.apply(DocsAction::Sent(2, Sent::Embed));
    let progress = |done: usize| EmbedProgress {
        file: "new".into(),
        done,
        total: 10,
        this_job: done,
        tokens: 10 * done,
        ms: 100.0,
        eta_s: 1.0,
    };
    s.on_event(2, DocsEvent::Progress(progress(4)));
    assert_eq!(s.embedding.as_ref().map(|(id, p)| (*id, p.done)), Some((2, 4)));
    assert_eq!(s.chosen().unwrap().embedded, 4, "the list follows the progress");
    assert!(s.owns(2), "the job's later events are still the page's");
    // Two searches: only the newest counts.
    let results = |query: &str| {
        Box::new(DocsResults {
            file: "new".into(),
            query: query.into(),
            query_lang: "en".into(),
            query_lang_reliable: true,
            hits: Vec::new(),
            shares: vec![LangShare { lang: "de".into(), passages: 6, pool_share: 0.6, top: 1, top_share: 0.25 }],
            groups: Vec::new(),
            embedded: 4,
            passages: 10,
            k: 4,
            encode_ms: 1.0,
        })
    };
    s.apply(DocsAction::Sent(3, Sent::Search));
    s.apply(DocsAction::Sent(4, Sent::Search));
    s.on_event(3, DocsEvent::Results(results("first")));
    assert!(s.results.is_none(), "a superseded search's answer is dropped");
    s.on_event(4, DocsEvent::Results(results("second")));
    assert_eq!(s.results.as_ref().map(|r| r.query.as_str()), Some("second"));
    assert_eq!(s.results_id, 4);
    assert_eq!(s.bias.rows.len(), 1);
    assert_eq!(s.bias.rows[0].mean_top_share, vec![("de".to_string(), 0.25)]);
    // A cancel is answered by the job's end.
    s.apply(DocsAction::Sent(5, Sent::Cancel));
    s.on_event(
        2,
        DocsEvent::Embedded { info: info("new", true, 6), stopped: Some("cancelled".into()), progress: progress(6) },
    );
    assert!(s.embedding.is_none() && !s.owns(5) && !s.owns(2));
    assert_eq!(s.last_embed.as_ref().and_then(|e| e.stopped.as_deref()), Some("cancelled"));
    assert_eq!(s.chosen().unwrap().embedded, 6);
    // An error answers its request and is shown.
    s.apply(DocsAction::Sent(6, Sent::Delete));
    s.on_error(6, "deleting the collection: gone".into());
    assert!(!s.owns(6));
    assert_eq!(s.error.as_deref(), Some("deleting the collection: gone"));
    // Choosing another collection clears the answer and the bias table.
    s.apply(DocsAction::Select("old".into()));
    assert!(s.results.is_none() && s.bias.rows.is_empty());
}
