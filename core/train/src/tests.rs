//! Tiny end-to-end runs: a 2-layer model on a synthetic 3-language parallel set.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use burn::backend::{Autodiff, NdArray};
use mlr_data::batches::ParallelPairs;
use mlr_data::lareqa::LareqaSet;
use mlr_model::{BertConfig, SeededWeights};
use serde_json::json;

use crate::{Event, ModelFiles, Outcome, TrainConfig, TrainData, TrainError, Trainer};

type Cpu = Autodiff<NdArray<f32>>;

const LANGS: [&str; 3] = ["aa", "bb", "cc"];
const GROUPS: usize = 10;

fn words() -> Vec<String> {
    let mut w: Vec<String> =
        ["query", ":", "passage", "what", "is", "answer", "other", "."].iter().map(|s| s.to_string()).collect();
    w.extend(LANGS.iter().map(|s| s.to_string()));
    w.extend((0..GROUPS).map(|g| format!("w{g}")));
    w
}

fn tokenizer_json() -> String {
    let mut vocab = serde_json::Map::new();
    for (i, t) in ["[PAD]", "[CLS]", "[SEP]", "[UNK]"].iter().enumerate() {
        vocab.insert(t.to_string(), json!(i));
    }
    for (i, w) in words().iter().enumerate() {
        vocab.insert(w.clone(), json!(i + 4));
    }
    let special = |id: u32, content: &str| json!({"id": id, "content": content, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true});
    json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [special(0, "[PAD]"), special(1, "[CLS]"), special(2, "[SEP]")],
        "normalizer": null,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [1], "tokens": ["[CLS]"]}, "[SEP]": {"id": "[SEP]", "ids": [2], "tokens": ["[SEP]"]}}},
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}
    })
    .to_string()
}

/// A random 2-layer model written as a Hugging Face directory.
fn tiny_model(dir: &Path) -> ModelFiles {
    tiny_model_with(dir, 2, 32)
}

/// A random model of `layers` layers and feed-forward width `ff`.
fn tiny_model_with(dir: &Path, layers: usize, ff: usize) -> ModelFiles {
    let config = BertConfig::new(words().len() + 4, 16, layers, 2, ff);
    let tensors = mlr_weights::collect_tensors(&config, &mut SeededWeights::new(5, 0.2)).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.json"), config.to_json()).unwrap();
    std::fs::write(dir.join("tokenizer.json"), tokenizer_json()).unwrap();
    std::fs::write(dir.join("model.safetensors"), mlr_weights::write_safetensors(&tensors).unwrap()).unwrap();
    ModelFiles::read(dir).unwrap()
}

/// One LAReQA-format file per language: group g asks about `w<g>`; its paragraph holds the answer
/// sentence and a distractor.
fn tiny_set() -> LareqaSet {
    let files = tiny_files();
    let refs: Vec<(&str, &str, &[u8])> = files.iter().map(|(l, t)| (l.as_str(), "synthetic", t.as_bytes())).collect();
    LareqaSet::from_files(&refs).unwrap()
}

/// The (language, JSON) files of [`tiny_set`].
fn tiny_files() -> Vec<(String, String)> {
    LANGS
        .iter()
        .map(|lang| {
            let articles: Vec<serde_json::Value> = (0..GROUPS)
                .map(|g| {
                    let answer = format!("answer w{g} {lang} .");
                    let other = format!("other {lang} w{} .", (g + 1) % GROUPS);
                    let context = format!("{answer} {other}");
                    json!({"title": format!("article {g}"), "paragraphs": [{
                        "context": context,
                        "sentences": [answer, other],
                        "sentence_breaks": [[0, answer.len()], [answer.len() + 1, context.len()]],
                        "qas": [{"id": format!("q{g}"), "question": format!("what is w{g} {lang}"), "answers": [{"answer_start": 0, "text": "answer"}]}]
                    }]})
                })
                .collect();
            (lang.to_string(), json!({"data": articles}).to_string())
        })
        .collect()
}

fn data(dev: bool) -> TrainData {
    let set = tiny_set();
    TrainData::from_pairs(ParallelPairs::from_lareqa(&set, &LANGS).unwrap(), dev.then_some(set))
}

fn config() -> TrainConfig {
    TrainConfig {
        train_langs: LANGS.iter().map(|s| s.to_string()).collect(),
        steps: 6,
        batch_size: 4,
        lr: 1e-3,
        warmup_steps: 2,
        eval_every: 0,
        checkpoint_every: 0,
        max_query_tokens: 12,
        max_passage_tokens: 12,
        hard_negatives: true,
        // The tiny model's table is part of what it learns.
        freeze_word_embeddings: false,
        ..TrainConfig::default()
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mlr-train-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    dir
}

fn no_events(_: Event) {}

/// One training test at a time. Training runs its backward passes on rayon's global pool while
/// burn's autodiff graph is locked (`mlr_kernels::run_on_pool`); two trainings in one process can
/// then deadlock when a pool thread waiting in a join steals the other's backward job, which waits
/// for the lock. `mlr train` runs one training per process; the tests share one.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[test]
fn two_sources_train_as_a_mix_and_each_batch_keeps_its_sources_languages() {
    let _serial = serial();
    let root = scratch("sources");
    let files = tiny_model(&root.join("model"));
    let dir = root.join("lareqa");
    std::fs::create_dir_all(&dir).unwrap();
    for (lang, text) in tiny_files() {
        std::fs::write(dir.join(format!("{lang}.json")), text).unwrap();
    }
    // A second source in other languages ("dd", "ee"), partly parallel, with negatives.
    let jsonl = root.join("pairs.jsonl");
    let rows: Vec<String> = (0..12)
        .flat_map(|g| {
            let row = move |lang: &str| {
                json!({"group": g, "lang": lang, "query": format!("what is w{} {lang}", g % GROUPS),
                       "passage": format!("answer w{} {lang} .", g % GROUPS), "negatives": ["other ."]})
                .to_string()
            };
            if g % 3 == 0 {
                vec![row("dd")]
            } else {
                vec![row("dd"), row("ee")]
            }
        })
        .collect();
    std::fs::write(&jsonl, rows.join("\n") + "\n").unwrap();
    let all = vec![crate::ALL_LANGS.to_string()];
    let data = TrainData::load(&[dir.clone(), jsonl.clone()], None, &all).unwrap();
    assert_eq!(data.sources[0].pairs.langs, LANGS);
    assert_eq!(
        (data.sources[1].pairs.langs.clone(), data.sources[1].pairs.groups.len()),
        (vec!["dd".to_string(), "ee".into()], 12)
    );
    assert!(data.dev.is_none(), "no split.json: no dev set");

    let config = TrainConfig { train_langs: all, steps: 16, data_weights: vec![1.0, 1.0], ..config() };
    let mut trainer = Trainer::<Cpu>::new(config, files, data, &root.join("run"), &Default::default()).unwrap();
    assert_eq!(trainer.sampling().1, vec![0.5, 0.5]);
    assert_eq!(trainer.run(&AtomicBool::new(false), &mut no_events).unwrap(), Outcome::Finished);
    let mut seen = std::collections::BTreeMap::new();
    for log in &trainer.state().history {
        let source = log.source.clone().expect("a multi-source run names each batch's source");
        if let Some(lang) = log.batch.strip_prefix("mono:") {
            let langs: &[&str] = if source.ends_with("pairs.jsonl") { &["dd", "ee"] } else { &LANGS };
            assert!(langs.contains(&lang), "step {}: a {lang} batch from {source}", log.step);
        }
        *seen.entry(source).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 2, "both sources drawn in 16 steps: {seen:?}");

    // Bad rows and unknown sources are clear errors naming the file and line.
    std::fs::write(&jsonl, "{\"group\": 1, \"lang\": \"dd\", \"query\": \"q\"}\n").unwrap();
    let err = TrainData::load(&[dir.clone(), jsonl.clone()], None, &LANGS.map(String::from)).unwrap_err().to_string();
    assert!(err.contains("pairs.jsonl: line 1") && err.contains("passage"), "{err}");
    let err = TrainData::load(&[root.join("notes.txt")], None, &LANGS.map(String::from)).unwrap_err().to_string();
    assert!(err.contains("notes.txt: no such file"), "{err}");
    let err = TrainData::load(&[dir], None, &["aa".to_string(), "zz".to_string()]).unwrap_err().to_string();
    assert!(err.contains("training language \"zz\" is in none of the sources"), "{err}");
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn an_interrupted_run_resumes_bit_for_bit() {
    let _serial = serial();
    let root = scratch("resume");
    let files = tiny_model(&root.join("model"));
    let device = Default::default();

    let mut whole = Trainer::<Cpu>::new(config(), files.clone(), data(false), &root.join("whole"), &device).unwrap();
    assert_eq!(whole.run(&AtomicBool::new(false), &mut no_events).unwrap(), Outcome::Finished);

    // Stop after step 3, as Ctrl-C does: the flag is seen between steps and a checkpoint written.
    let stop = AtomicBool::new(false);
    let mut first = Trainer::<Cpu>::new(config(), files.clone(), data(false), &root.join("split"), &device).unwrap();
    let outcome = first
        .run(&stop, &mut |e| {
            if let Event::Step(log) = e {
                if log.step == 3 {
                    stop.store(true, Ordering::SeqCst);
                }
            }
        })
        .unwrap();
    assert_eq!(outcome, Outcome::Interrupted { step: 3 });
    drop(first);
    // A second start in the same directory is refused; resuming continues.
    assert!(Trainer::<Cpu>::new(config(), files.clone(), data(false), &root.join("split"), &device).is_err());
    let changed = TrainConfig { lr: 2e-3, ..config() };
    let err = Trainer::<Cpu>::resume(&changed, files.clone(), data(false), &root.join("split"), &device).err().unwrap();
    assert!(err.to_string().contains("lr"), "{err}");
    let mut resumed =
        Trainer::<Cpu>::resume(&config(), files.clone(), data(false), &root.join("split"), &device).unwrap();
    assert_eq!(resumed.state().step, 3);
    assert_eq!(resumed.run(&AtomicBool::new(false), &mut no_events).unwrap(), Outcome::Finished);

    let losses = |t: &Trainer<Cpu>| {
        t.state().history.iter().map(|s| (s.loss.to_bits(), s.lr.to_bits(), s.batch.clone())).collect::<Vec<_>>()
    };
    assert_eq!(losses(&whole).len(), 6);
    assert_eq!(losses(&whole), losses(&resumed), "the resumed loss curve differs");
    let a = crate::export::model_tensors(whole.model()).unwrap();
    let b = crate::export::model_tensors(resumed.model()).unwrap();
    assert!(a == b, "the resumed model differs");
    // The exports are the same bytes.
    let bytes = |run: &str| std::fs::read(root.join(run).join("final/model.safetensors")).unwrap();
    assert!(bytes("whole") == bytes("split"));
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn training_lowers_the_loss_and_the_export_loads() {
    let _serial = serial();
    let root = scratch("learn");
    let files = tiny_model(&root.join("model"));
    let device = Default::default();
    let config = TrainConfig { steps: 30, eval_every: 15, warmup_steps: 3, lr: 3e-3, ..config() };
    let mut trainer = Trainer::<Cpu>::new(config, files.clone(), data(true), &root.join("run"), &device).unwrap();
    let mut evals = Vec::new();
    trainer
        .run(&AtomicBool::new(false), &mut |e| {
            if let Event::Eval { log, .. } = e {
                evals.push(log.clone())
            }
        })
        .unwrap();
    let h = &trainer.state().history;
    let mean = |s: &[crate::StepLog]| s.iter().map(|l| l.loss as f64).sum::<f64>() / s.len() as f64;
    assert!(
        mean(&h[24..]) < 0.8 * mean(&h[..6]),
        "loss did not fall: {:?}",
        h.iter().map(|l| l.loss).collect::<Vec<_>>()
    );
    assert_eq!(evals.iter().map(|e| e.step).collect::<Vec<_>>(), vec![15, 30]);
    assert!(evals.iter().all(|e| e.multi.is_finite() && e.multi > 0.0 && e.multi <= 1.0));
    // The exported final model, loaded through the inference path, embeds like the trained one.
    let exported = ModelFiles::read(&root.join("run/final")).unwrap();
    let embedder = mlr_embed::Embedder::<NdArray<f32>>::from_bytes(
        &exported.config_json,
        &exported.tokenizer_json,
        &exported.safetensors,
        &device,
    )
    .unwrap();
    let texts = ["what is w3 bb".to_string(), "answer w3 cc .".to_string()];
    let got = embedder.embed(&texts, mlr_embed::Role::Query).unwrap();
    use burn::module::AutodiffModule;
    let tok = mlr_tokenize::TextTokenizer::from_bytes(&files.tokenizer_json).unwrap();
    // The training path's encoding (one ragged pass, texts in length groups).
    let side = (&texts[..], mlr_tokenize::Role::Query, 512);
    let (want, _) =
        crate::trainer::encode_ragged(&trainer.model().valid(), &tok, &[side], 8, &device).unwrap().pop().unwrap();
    let want: Vec<f32> = want.into_data().to_vec().unwrap();
    for (g, w) in got.concat().iter().zip(&want) {
        assert!((g - w).abs() < 1e-5, "{g} vs {w}");
    }
    // best/ holds the better of the two evaluations.
    let best = trainer.state().best.clone().unwrap();
    assert_eq!(best.multi, evals.iter().map(|e| e.multi).fold(f64::MIN, f64::max));
    let provenance: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("run/best/mlr_training.json")).unwrap()).unwrap();
    assert_eq!(provenance["step"], best.step);
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn dev_scores_equal_the_evaluator_on_the_same_vectors() {
    let _serial = serial();
    // The trainer's dev evaluation is mlr-eval on vectors from the inference path.
    let root = scratch("dev");
    let files = tiny_model(&root.join("model"));
    let device = Default::default();
    let mut trainer = Trainer::<Cpu>::new(config(), files.clone(), data(true), &root.join("run"), &device).unwrap();
    let log = trainer.evaluate_dev(&mut no_events).unwrap().unwrap();
    let set = tiny_set();
    let embedder = mlr_embed::Embedder::<NdArray<f32>>::from_bytes(
        &files.config_json,
        &files.tokenizer_json,
        &files.safetensors,
        &device,
    )
    .unwrap();
    let q: Vec<String> = set.questions.iter().map(|q| q.text.clone()).collect();
    let c: Vec<String> =
        (0..set.candidates.len()).map(|i| set.candidate_text(i, mlr_data::lareqa::CandidateText::Sentence)).collect();
    let qv = embedder.embed(&q, mlr_embed::Role::Query).unwrap().concat();
    let cv = embedder.embed(&c, mlr_embed::Role::Passage).unwrap().concat();
    let report = crate::trainer::score_lareqa(&set, &cv, &qv, 16).unwrap();
    assert!((report.multi.unwrap().map - log.multi).abs() < 1e-6);
    assert!((report.mono.unwrap().map - log.mono.unwrap()).abs() < 1e-6);
    assert!((report.rank_distance.unwrap() - log.rank_distance.unwrap()).abs() < 1e-9);
    std::fs::remove_dir_all(&root).ok();
}

/// A finished two-step run of the tiny model under `root`: its model files, run directory and config.
fn two_step_run(root: &Path) -> (ModelFiles, PathBuf, TrainConfig) {
    let files = tiny_model(&root.join("model"));
    let run = root.join("run");
    let config = TrainConfig { steps: 2, ..config() };
    Trainer::<Cpu>::new(config.clone(), files.clone(), data(false), &run, &Default::default())
        .unwrap()
        .run(&AtomicBool::new(false), &mut no_events)
        .unwrap();
    (files, run, config)
}

#[test]
fn a_damaged_checkpoint_is_an_error_not_a_panic() {
    let _serial = serial();
    let root = scratch("corrupt");
    let (files, run, config) = two_step_run(&root);
    let device = Default::default();
    let resume = || Trainer::<Cpu>::resume(&config, files.clone(), data(false), &run, &device).map(|_| ());
    resume().unwrap();
    let model = run.join("checkpoint/model.bin");
    let mut bytes = std::fs::read(&model).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    std::fs::write(&model, &bytes).unwrap();
    let err = resume().unwrap_err();
    assert!(matches!(err, TrainError::Checkpoint { .. }) && err.to_string().contains("model.bin is corrupt"), "{err}");
    std::fs::write(&model, &bytes[..n / 3]).unwrap();
    assert!(resume().unwrap_err().to_string().contains("corrupt"));
    std::fs::write(run.join("checkpoint/state.json"), "{\"format\": ").unwrap();
    let err = resume().unwrap_err().to_string();
    assert!(err.contains("state.json is damaged"), "{err}");
    std::fs::remove_dir_all(run.join("checkpoint")).unwrap();
    assert!(resume().unwrap_err().to_string().contains("no checkpoint"));
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn resuming_with_another_model_is_an_error_not_a_panic() {
    let _serial = serial();
    let root = scratch("other-model");
    let (_, run, config) = two_step_run(&root);
    let device = Default::default();
    let before: Vec<Vec<u8>> = ["model.bin", "optimizer.bin", "state.json"]
        .iter()
        .map(|f| std::fs::read(run.join("checkpoint").join(f)).unwrap())
        .collect();
    // Before, a model with another layer count panicked in burn's load_record, and one with
    // other widths failed mid-step.
    for (layers, ff, want) in [
        (3, 32, "model.bin has 2 layers, the model 3"),
        (2, 48, "model.bin's `layers.0.feed_forward.intermediate.weight` has shape [16, 32], the model's [16, 48]"),
    ] {
        let other = tiny_model_with(&root.join(format!("other-{layers}-{ff}")), layers, ff);
        let err = Trainer::<Cpu>::resume(&config, other, data(false), &run, &device).map(|_| ()).unwrap_err();
        let err = err.to_string();
        assert!(err.contains(want) && err.contains("the checkpoint was not trained from this --model"), "{err}");
    }
    let after: Vec<Vec<u8>> = ["model.bin", "optimizer.bin", "state.json"]
        .iter()
        .map(|f| std::fs::read(run.join("checkpoint").join(f)).unwrap())
        .collect();
    assert!(before == after, "a refused resume changed the checkpoint");
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn the_same_steps_run_on_wgpu() {
    let _serial = serial();
    // burn's wgpu backend (lavapipe on a machine without a GPU): same batches, same losses
    // within float tolerance.
    use burn::backend::wgpu::{Wgpu, WgpuDevice};
    let root = scratch("wgpu");
    let files = tiny_model(&root.join("model"));
    let config = TrainConfig { steps: 3, ..config() };
    let mut cpu =
        Trainer::<Cpu>::new(config.clone(), files.clone(), data(false), &root.join("cpu"), &Default::default())
            .unwrap();
    cpu.run(&AtomicBool::new(false), &mut no_events).unwrap();
    let device = WgpuDevice::default();
    let mut gpu = Trainer::<Autodiff<Wgpu>>::new(config, files, data(false), &root.join("wgpu"), &device).unwrap();
    gpu.run(&AtomicBool::new(false), &mut no_events).unwrap();
    for (a, b) in cpu.state().history.iter().zip(&gpu.state().history) {
        assert_eq!(a.batch, b.batch);
        assert!(
            (a.loss - b.loss).abs() < 1e-3 * a.loss.abs().max(1.0),
            "step {}: cpu {} wgpu {}",
            a.step,
            a.loss,
            b.loss
        );
    }
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn frozen_word_embeddings_stay_fixed_across_a_resume() {
    let _serial = serial();
    let root = scratch("frozen");
    let files = tiny_model(&root.join("model"));
    let device = Default::default();
    let run = root.join("run");
    let config = TrainConfig { steps: 4, freeze_word_embeddings: true, ..config() };
    let stop = AtomicBool::new(false);
    let mut first = Trainer::<Cpu>::new(config.clone(), files.clone(), data(false), &run, &device).unwrap();
    first
        .run(&stop, &mut |e| {
            if matches!(e, Event::Step(l) if l.step == 2) {
                stop.store(true, Ordering::SeqCst)
            }
        })
        .unwrap();
    drop(first);
    let mut resumed = Trainer::<Cpu>::resume(&config, files.clone(), data(false), &run, &device).unwrap();
    resumed.run(&AtomicBool::new(false), &mut no_events).unwrap();
    let before = mlr_weights::collect_tensors(
        &BertConfig::new(words().len() + 4, 16, 2, 2, 32),
        &mut SeededWeights::new(5, 0.2),
    )
    .unwrap();
    let after = crate::export::model_tensors(resumed.model()).unwrap();
    assert_eq!(before[0].name, "embeddings.word_embeddings.weight");
    assert!(before[0] == after[0], "the frozen word embeddings changed");
    let changed = before.iter().zip(&after).skip(1).filter(|(b, a)| b != a).count();
    assert_eq!(changed, before.len() - 1, "every other tensor trains");
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn a_shared_answer_is_not_a_negative() {
    let _serial = serial();
    use mlr_data::batches::{BatchKind, Item, PairText, TrainBatch};
    let root = scratch("shared");
    let files = tiny_model(&root.join("model"));
    // Groups 0 and 1 ask different questions with the same answer sentence (as XQuAD's do); group
    // 2's answer is group 0's hard negative.
    let text = |q: &str, a: &str, others: &[&str]| {
        Some(PairText {
            question: q.into(),
            answer: a.into(),
            paragraph_others: others.iter().map(|s| s.to_string()).collect(),
        })
    };
    let pairs = ParallelPairs {
        langs: vec!["aa".into(), "bb".into()],
        ids: vec!["q0".into(), "q1".into(), "q2".into()],
        groups: vec![
            vec![
                text("what is w0 aa", "answer w0 aa .", &["answer w2 aa ."]),
                text("what is w0 bb", "answer w0 bb .", &[]),
            ],
            vec![text("what is w1 aa", "answer w0 aa .", &[]), text("what is w1 bb", "answer w0 bb .", &[])],
            vec![text("what is w2 aa", "answer w2 aa .", &[]), text("what is w2 bb", "answer w2 bb .", &[])],
        ],
    };
    let item = |group, query_lang, passage_lang, hard_negative| Item { group, query_lang, passage_lang, hard_negative };
    let batch = TrainBatch {
        source: 0,
        kind: BatchKind::Cross,
        items: vec![item(0, 1, 0, Some(0)), item(1, 0, 1, None), item(2, 1, 0, None)],
    };
    let data = TrainData::from_pairs(pairs, None);
    let config = TrainConfig { batch_size: 2, ..config() };
    let trainer =
        Trainer::<Cpu>::new(config.clone(), files.clone(), data.clone(), &root.join("a"), &Default::default()).unwrap();
    let (queries, passages, ignore) = trainer.batch_texts(&batch);
    assert_eq!(queries, ["what is w0 bb", "what is w1 aa", "what is w2 bb"]);
    assert_eq!(passages, ["answer w0 aa .", "answer w0 bb .", "answer w2 aa .", "answer w2 aa ."]);
    let on: Vec<(usize, usize)> = (0..12).filter(|i| ignore[*i]).map(|i| (i / 4, i % 4)).collect();
    // q0's answer in aa is p0 (its own) and in bb p1 (group 1's positive): p1 ignored. q1's answer
    // in aa is p0: ignored. q2's answer in aa is p2 (its own) and p3 (group 0's hard negative).
    assert_eq!(on, vec![(0, 1), (1, 0), (2, 3)]);
    let plain = Trainer::<Cpu>::new(
        TrainConfig { mask_shared_answers: false, ..config },
        files,
        data,
        &root.join("b"),
        &Default::default(),
    )
    .unwrap();
    assert!(plain.batch_texts(&batch).2.iter().all(|m| !m));
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn checkpoints_from_before_the_mask_option_resume_without_the_mask() {
    let _serial = serial();
    let root = scratch("legacy");
    let files = tiny_model(&root.join("model"));
    let device = Default::default();
    let run = root.join("run");
    let config = TrainConfig { steps: 2, mask_shared_answers: false, ..config() };
    Trainer::<Cpu>::new(config.clone(), files.clone(), data(false), &run, &device)
        .unwrap()
        .run(&AtomicBool::new(false), &mut no_events)
        .unwrap();
    let path = run.join("checkpoint/state.json");
    let mut state: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    state["config"].as_object_mut().unwrap().remove("mask_shared_answers");
    std::fs::write(&path, state.to_string()).unwrap();
    Trainer::<Cpu>::resume(&config, files.clone(), data(false), &run, &device).unwrap();
    let masked = TrainConfig { mask_shared_answers: true, ..config };
    let err = Trainer::<Cpu>::resume(&masked, files, data(false), &run, &device).err().unwrap().to_string();
    assert!(err.contains("mask_shared_answers"), "{err}");
    std::fs::remove_dir_all(&root).ok();
}

/// Every trained parameter's gradient, in the model's parameter order.
fn parameter_grads(model: &mlr_model::BertModel<Cpu>, grads: &burn::optim::GradientsParams) -> Vec<Vec<f32>> {
    use burn::module::{Module, ModuleVisitor, Param};
    use burn::tensor::Tensor;
    struct Collect<'a> {
        grads: &'a burn::optim::GradientsParams,
        out: Vec<Vec<f32>>,
    }
    impl ModuleVisitor<Cpu> for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<Cpu, D>>) {
            if let Some(g) = self.grads.get::<NdArray<f32>, D>(param.id) {
                self.out.push(g.into_data().into_vec::<f32>().unwrap());
            }
        }
    }
    let mut collect = Collect { grads, out: Vec::new() };
    model.visit(&mut collect);
    collect.out
}

/// The largest relative error over parameters: max |a − b| / max |b| per parameter. A parameter
/// whose gradient is zero in exact arithmetic (the key projection's bias: softmax ignores what it
/// adds to every score of a row) holds only rounding noise, so the denominator is at least 1e-3 of
/// the largest gradient entry of the model.
fn worst_relative(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len(), "different parameters have gradients");
    let largest = b.iter().flatten().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(largest > 0.0, "every gradient is zero");
    a.iter()
        .zip(b)
        .map(|(a, b)| {
            assert_eq!(a.len(), b.len());
            assert!(a.iter().chain(b).all(|v| v.is_finite()), "a gradient is not finite");
            let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-3 * largest);
            a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max) / scale
        })
        .fold(0.0, f32::max)
}

/// The loss and every parameter's gradient of the next `steps` batches, for one way of training.
fn step_grads(
    files: &ModelFiles,
    data: &TrainData,
    config: &TrainConfig,
    kernels: bool,
    out: &Path,
    steps: usize,
) -> Vec<(f32, Vec<Vec<f32>>)> {
    let mut trainer = Trainer::<Cpu>::new(config.clone(), files.clone(), data.clone(), out, &Default::default())
        .unwrap()
        .with_kernels(kernels);
    (0..steps)
        .map(|_| {
            let (loss, grads) = trainer.next_gradients().unwrap();
            (loss, parameter_grads(trainer.model(), &grads))
        })
        .collect()
}

/// Kernels vs the references, and cached InfoNCE vs the whole batch, on the same batches.
fn compare_training_paths(
    files: &ModelFiles,
    data: &TrainData,
    config: &TrainConfig,
    root: &Path,
    steps: usize,
    mini: usize,
    cached_tolerance: f32,
) {
    let reference = step_grads(files, data, config, false, &root.join("reference"), steps);
    let kernels = step_grads(files, data, config, true, &root.join("kernels"), steps);
    let cached =
        step_grads(files, data, &TrainConfig { mini_batch: mini, ..config.clone() }, true, &root.join("cached"), steps);
    let cached_reference = step_grads(
        files,
        data,
        &TrainConfig { mini_batch: 1, ..config.clone() },
        false,
        &root.join("cached-reference"),
        steps,
    );
    for (step, (((r, k), c), cr)) in reference.iter().zip(&kernels).zip(&cached).zip(&cached_reference).enumerate() {
        let loss = |a: f32, b: f32| ((a - b).abs() / b.abs().max(1e-6)) as f64;
        let kernel_err = worst_relative(&k.1, &r.1);
        let cached_err = worst_relative(&c.1, &k.1);
        let cached_ref_err = worst_relative(&cr.1, &r.1);
        println!(
            "step {step}: loss {:.6} (kernels {:.1e}, cached {:.1e}); gradients: kernels vs reference {kernel_err:.2e}, cached (mini-batch {mini}) vs whole {cached_err:.2e}, cached reference (mini-batch 1) vs whole {cached_ref_err:.2e}",
            r.0,
            loss(k.0, r.0),
            loss(c.0, k.0)
        );
        assert!(
            loss(k.0, r.0) <= 1e-4 && kernel_err <= 1e-4,
            "step {step}: the kernels' gradients differ from the reference's"
        );
        let tol = f64::from(cached_tolerance);
        assert!(
            loss(c.0, k.0) <= tol && cached_err <= cached_tolerance,
            "step {step}: cached InfoNCE differs from the whole batch"
        );
        assert!(
            loss(cr.0, r.0) <= tol && cached_ref_err <= cached_tolerance,
            "step {step}: cached InfoNCE differs on the reference path"
        );
    }
}

#[test]
fn kernel_gradients_equal_the_reference_and_cached_infonce_the_whole_batch() {
    let _serial = serial();
    let root = scratch("gradients");
    let files = tiny_model(&root.join("model"));
    // Trained word embeddings (the tiny config): their gradient is checked too.
    compare_training_paths(&files, &data(false), &TrainConfig { batch_size: 6, ..config() }, &root, 3, 4, 1e-5);
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn kernel_gradients_equal_the_reference_on_e5_small() {
    let _serial = serial();
    let dir = std::env::var_os("MLR_MODEL_DIR").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/mlr/models/multilingual-e5-small")
    });
    assert!(
        dir.join("model.safetensors").exists(),
        "no converted model in {}: run `bash scripts/setup.sh` (or set MLR_MODEL_DIR)",
        dir.display()
    );
    let files = ModelFiles::read(&dir).unwrap();
    let xquad = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/xquad-r");
    let langs: Vec<String> = ["de", "en", "zh"].iter().map(|s| s.to_string()).collect();
    let data = TrainData::from_lareqa_dir(&xquad, &langs).unwrap();
    let config = TrainConfig {
        train_langs: langs,
        batch_size: 8,
        max_query_tokens: 32,
        max_passage_tokens: 64,
        eval_every: 0,
        checkpoint_every: 0,
        ..TrainConfig::default()
    };
    let root = scratch("e5-gradients");
    // Twelve layers of float rounding in another order: cached InfoNCE within 1e-4 here (3e-5 seen).
    compare_training_paths(&files, &TrainData { dev: None, ..data }, &config, &root, 2, 3, 1e-4);
    std::fs::remove_dir_all(&root).ok();
}
