//! Browser tests: wasm32 in headless Chromium (`wasm-bindgen-test-runner`, WebDriver).
//!
//! - the tokenizer gives Hugging Face's ids for the 132 reference texts;
//! - the small random-weight BERT of `mlr_tests::tiny_config` (the e5-small architecture at width
//!   32) gives the native CPU results (`fixtures/tiny_bert.json`) on the wasm CPU backend and on
//!   **WebGPU** through burn's wgpu backend. The WebGPU test fails when the browser gives no
//!   adapter: it never falls back silently.
//!
//! Tolerances: cosine ≥ 0.99999 and max abs difference ≤ 1e-4 per component, against native.
#![cfg(target_arch = "wasm32")]

use burn::backend::wgpu::{graphics::WebGpu, init_setup_async, RuntimeOptions, WgpuDevice};
use burn::backend::{NdArray, Wgpu};
use burn::tensor::backend::Backend;
use mlr_app::gpu::{probe_webgpu, GpuProbe};
use mlr_embed::{Embedder, Role};
use mlr_model::{BertModel, SeededWeights};
use mlr_tests::*;
use mlr_tokenize::TextTokenizer;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// The converted model's tokenizer, compiled in (the test script sets MLR_MODEL_DIR).
const TOKENIZER_JSON: &[u8] = include_bytes!(concat!(
    env!("MLR_MODEL_DIR", "set MLR_MODEL_DIR to the converted model directory (scripts/env.sh does)"),
    "/tokenizer.json"
));

fn tiny_embedder<B: Backend>(device: &B::Device) -> Embedder<B> {
    let config = tiny_config();
    let model = BertModel::from_source(&config, &mut SeededWeights::new(TINY_SEED, TINY_SCALE), device).unwrap();
    Embedder::new(model, TextTokenizer::from_bytes(TOKENIZER_JSON).unwrap(), config, device).unwrap()
}

async fn check_tiny<B: Backend>(name: &str, device: &B::Device) {
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
    let adapter = match probe_webgpu().await {
        GpuProbe::NoApi => panic!("navigator.gpu is missing: this browser has no WebGPU (start Chromium with --enable-unsafe-webgpu)"),
        GpuProbe::NoAdapter => panic!("navigator.gpu.requestAdapter() returned null: no WebGPU adapter"),
        GpuProbe::Software(name) => format!("{name} (software)"),
        GpuProbe::Hardware(name) => name,
    };
    let device = WgpuDevice::default();
    let setup = init_setup_async::<WebGpu>(&device, RuntimeOptions::default()).await;
    console_log!("WebGPU adapter: {adapter}; wgpu sees {:?}", setup.adapter.get_info().name);
    check_tiny::<Wgpu>(&format!("WebGPU ({adapter})"), &device).await;
}

/// The evaluation crate in wasm gives the native numbers (fixture written by the native run).
#[wasm_bindgen_test]
fn evaluator_in_wasm_matches_native() {
    let got = eval_case().measure();
    let diff = json_max_diff(&got, &eval_fixture(), "").unwrap();
    console_log!("evaluator in wasm: max |wasm − native fixture| = {diff:.1e}");
    assert!(diff < 1e-9, "evaluator in wasm differs from native by {diff}");
}
