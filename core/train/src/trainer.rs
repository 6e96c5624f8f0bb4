//! The training loop.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use burn::module::{AutodiffModule, Module, ModuleVisitor, Param};
use burn::optim::{GradientsAccumulator, GradientsParams, Optimizer};
use burn::record::{BinFileRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Bool, Int, Tensor, TensorData};
use mlr_data::batches::{BatchKind, TrainBatch};
use mlr_data::lareqa::LareqaSet;
use mlr_data::mix::MixedSampler;
use mlr_embed::{Embedder, ModelFiles};
use mlr_eval::lareqa::{evaluate, LareqaInput, LareqaOptions};
use mlr_model::{l2_normalize, masked_mean, AutodiffKernels, BertConfig, BertModel, Kernels, Ragged, RaggedGroup};
use mlr_tokenize::{Batch, Overflow, Role, TextTokenizer};

use crate::checkpoint::{self, CheckpointState, EvalLog, RunState, StepLog};
use crate::data::{SourceError, TrainData};
use crate::export::export_hf;
use crate::loss::info_nce;
use crate::optim::{GradScale, KernelAdamW, Optim};
use crate::schedule::learning_rate;
use crate::{TrainConfig, TrainError};

/// What the loop reports as it goes (for progress bars and logs).
#[derive(Debug)]
pub enum Event<'a> {
    /// A step finished.
    Step(&'a StepLog),
    /// A dev evaluation starts, encoding this many texts.
    EvalStart {
        /// Texts to encode.
        texts: usize,
    },
    /// Texts encoded so far in the running evaluation.
    EvalProgress(usize),
    /// A dev evaluation finished; `best` if it is the best so far (then exported).
    Eval {
        /// The scores.
        log: &'a EvalLog,
        /// A new best.
        best: bool,
    },
    /// A checkpoint was written.
    Checkpoint(&'a Path),
}

/// How [`Trainer::run`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// All steps done; the final model is exported.
    Finished,
    /// Stopped on request after this many steps; a checkpoint holds the state.
    Interrupted {
        /// Steps done.
        step: usize,
    },
}

type Rec = BinFileRecorder<FullPrecisionSettings>;

/// A training run on autodiff backend `B`, writing into a run directory.
pub struct Trainer<B: AutodiffKernels> {
    config: TrainConfig,
    files: ModelFiles,
    /// `files`' config.json, parsed once.
    model_config: BertConfig,
    /// `files`' tokenizer.json, parsed once (shared with the dev evaluation's embedder).
    tokenizer: Arc<TextTokenizer>,
    model: Option<BertModel<B>>,
    optim: Optim<B>,
    /// The clipping factor of the next optimiser step, read by `optim`.
    grad_scale: GradScale,
    sampler: MixedSampler,
    data: TrainData,
    state: RunState,
    out: PathBuf,
    device: B::Device,
}

/// AdamW with the run's weight decay and ε, on the kernels if `fused`, and the handle that sets
/// its clipping factor.
fn optimizer<B: AutodiffKernels>(config: &TrainConfig, fused: bool) -> (Optim<B>, GradScale) {
    let adamw = KernelAdamW::new(config.weight_decay as f32, config.adam_epsilon as f32, fused);
    let scale = adamw.scale.clone();
    (adamw.init(), scale)
}

fn check_lengths(config: &TrainConfig, model: &BertConfig) -> Result<(), TrainError> {
    let longest = config.max_query_tokens.max(config.max_passage_tokens);
    if longest > model.max_tokens() {
        return Err(TrainError::Config(format!(
            "max_query_tokens / max_passage_tokens {longest} exceed the model's {} positions",
            model.max_tokens()
        )));
    }
    Ok(())
}

/// The run's batch sampler over its sources.
fn sampler(config: &TrainConfig, data: &TrainData) -> Result<MixedSampler, TrainError> {
    let weights = (!config.data_weights.is_empty()).then_some(config.data_weights.as_slice());
    let strategy = config.strategy()?;
    Ok(MixedSampler::new(&data.sources, strategy, config.batch_size, config.hard_negatives, config.seed, weights)?)
}

fn freeze<B: Backend>(mut model: BertModel<B>, config: &TrainConfig) -> BertModel<B> {
    if config.freeze_word_embeddings {
        model.embeddings.word = model.embeddings.word.into_iter().map(|p| p.set_require_grad(false)).collect();
    }
    model
}

impl<B: AutodiffKernels> Trainer<B> {
    /// Starts a new run in `out` (which must not hold a checkpoint: resume it instead).
    pub fn new(
        config: TrainConfig,
        files: ModelFiles,
        data: TrainData,
        out: &Path,
        device: &B::Device,
    ) -> Result<Self, TrainError> {
        config.validate()?;
        let model_config = files.config()?;
        check_lengths(&config, &model_config)?;
        if checkpoint::locate(out).is_some() {
            return Err(TrainError::Config(format!(
                "{} already holds a run; resume it (--resume) or choose another --out",
                out.display()
            )));
        }
        std::fs::create_dir_all(out).map_err(|e| TrainError::io(out, e))?;
        let sampler = sampler(&config, &data)?;
        let model = freeze(load_model::<B>(&model_config, &files, device)?, &config);
        let state = RunState {
            step: 0,
            sampler: sampler.state(),
            history: Vec::new(),
            evals: Vec::new(),
            best: None,
            train_seconds: 0.0,
        };
        let tokenizer = Arc::new(files.tokenizer()?);
        let (optim, grad_scale) = optimizer::<B>(&config, true);
        let path = out.join("config.json");
        std::fs::write(&path, serde_json::to_string_pretty(&config).expect("json") + "\n")
            .map_err(|e| TrainError::io(&path, e))?;
        Ok(Self {
            config,
            files,
            model_config,
            tokenizer,
            model: Some(model),
            optim,
            grad_scale,
            sampler,
            data,
            state,
            out: out.to_path_buf(),
            device: device.clone(),
        })
    }

    /// The configuration and base model directory recorded in the checkpoint of run `out`
    /// (`state.json` only: the record files are verified by [`resume`](Self::resume)).
    pub fn checkpoint_info(out: &Path) -> Result<(TrainConfig, PathBuf, usize), TrainError> {
        let dir = checkpoint::locate(out).ok_or_else(|| TrainError::Checkpoint {
            path: out.join("checkpoint"),
            message: "no checkpoint to resume from".into(),
        })?;
        let state = checkpoint::read_state_json(&dir)?;
        Ok((state.config, state.base_model, state.run.step))
    }

    /// Continues the run in `out` from its checkpoint. `config` must equal the recorded one (it
    /// is checked, so that a resumed run is the run that was started).
    pub fn resume(
        config: &TrainConfig,
        files: ModelFiles,
        data: TrainData,
        out: &Path,
        device: &B::Device,
    ) -> Result<Self, TrainError> {
        let dir = checkpoint::locate(out).ok_or_else(|| TrainError::Checkpoint {
            path: out.join("checkpoint"),
            message: "no checkpoint to resume from".into(),
        })?;
        let model_config = files.config()?;
        check_lengths(config, &model_config)?;
        let saved = checkpoint::read_state(&dir)?;
        let diff = saved.config.differences(config);
        if !diff.is_empty() {
            return Err(TrainError::Config(format!(
                "the resumed run must keep its config; changed: {}",
                diff.join(", ")
            )));
        }
        let bad = |message: String| TrainError::Checkpoint { path: dir.clone(), message };
        let recorder = Rec::new();
        let record =
            Recorder::<B>::load(&recorder, dir.join("model"), device).map_err(|e| bad(format!("model.bin: {e}")))?;
        let model = load_checkpoint_model(load_model::<B>(&model_config, &files, device)?, record).map_err(|m| {
            bad(format!(
                "{m}: the checkpoint was not trained from this --model (the run started from {})",
                saved.base_model.display()
            ))
        })?;
        let model = freeze(model, config);
        let record = Recorder::<B>::load(&recorder, dir.join("optimizer"), device)
            .map_err(|e| bad(format!("optimizer.bin: {e}")))?;
        let (optim, grad_scale) = optimizer::<B>(config, true);
        let optim = optim.load_record(record);
        let mut sampler = sampler(config, &data)?;
        sampler.restore(saved.run.sampler.clone()).map_err(|m| bad(format!("{m} (was the training data changed?)")))?;
        let tokenizer = Arc::new(files.tokenizer()?);
        Ok(Self {
            config: config.clone(),
            files,
            model_config,
            tokenizer,
            model: Some(model),
            optim,
            grad_scale,
            sampler,
            data,
            state: saved.run,
            out: out.to_path_buf(),
            device: device.clone(),
        })
    }

    /// Turns the encoder's fused kernels on or off (on by default): on the CPU backend, training
    /// then runs the kernels' own backward passes; off (`--no-kernels`), burn's autodiff of the
    /// plain-burn references. Not part of the config: both give the same run to float rounding.
    /// The optimiser's update follows: one fused pass per parameter on the CPU, or burn's ops.
    pub fn with_kernels(mut self, on: bool) -> Self {
        self.model = self.model.take().map(|m| m.with_kernels(on));
        let (optim, grad_scale) = optimizer::<B>(&self.config, on);
        self.optim = optim.load_record(self.optim.to_record());
        self.grad_scale = grad_scale;
        self
    }

    /// Where a source's batches differ from the sampler asked for, and each source's probability
    /// (see [`mlr_data::mix`]).
    pub fn sampling(&self) -> (&[String], Vec<f64>) {
        (self.sampler.notes(), self.sampler.probabilities())
    }

    /// The run's state (step, history, evaluations).
    pub fn state(&self) -> &RunState {
        &self.state
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// The current model.
    pub fn model(&self) -> &BertModel<B> {
        self.model.as_ref().expect("the model is only taken inside a step")
    }

    /// Trains until `config.steps`, or until `stop` is set (checked between steps; a checkpoint is
    /// written before returning [`Outcome::Interrupted`]).
    pub fn run(&mut self, stop: &AtomicBool, on: &mut dyn FnMut(Event)) -> Result<Outcome, TrainError> {
        while self.state.step < self.config.steps {
            if stop.load(Ordering::SeqCst) {
                self.save_checkpoint()?;
                on(Event::Checkpoint(&self.out.join("checkpoint")));
                return Ok(Outcome::Interrupted { step: self.state.step });
            }
            let log = self.train_step()?;
            on(Event::Step(&log));
            let s = self.state.step;
            let last = s == self.config.steps;
            if (self.config.eval_every > 0 && s.is_multiple_of(self.config.eval_every)) || last {
                self.evaluate_dev(on)?;
            }
            if (self.config.checkpoint_every > 0 && s.is_multiple_of(self.config.checkpoint_every)) || last {
                self.save_checkpoint()?;
                on(Event::Checkpoint(&self.out.join("checkpoint")));
            }
        }
        export_hf(self.model(), &self.files, &self.provenance(None), &self.out.join("final"))?;
        let path = self.out.join("summary.json");
        let summary = serde_json::json!({"config": self.config, "base_model": self.files.dir, "run": self.state});
        std::fs::write(&path, serde_json::to_string_pretty(&summary).expect("json") + "\n")
            .map_err(|e| TrainError::io(&path, e))?;
        Ok(Outcome::Finished)
    }

    fn provenance(&self, eval: Option<&EvalLog>) -> serde_json::Value {
        serde_json::json!({
            "trained_by": "mlr train",
            "base_model": self.files.dir,
            "step": self.state.step,
            "config": self.config,
            "dev": eval,
        })
    }

    /// The batch's queries and passages (positives in item order, then hard negatives), and which
    /// (query, passage) logits to leave out because the passage is also a right answer of the
    /// query (row-major `[queries, passages]`).
    pub(crate) fn batch_texts(&self, batch: &TrainBatch) -> (Vec<String>, Vec<String>, Vec<bool>) {
        let groups = &self.data.sources[batch.source].pairs.groups;
        let pair = |g: usize, l: usize| groups[g][l].as_ref().expect("the sampler only draws languages a group has");
        let queries = batch.items.iter().map(|i| pair(i.group, i.query_lang).question.clone()).collect();
        let mut passages: Vec<(String, usize)> =
            batch.items.iter().map(|i| (pair(i.group, i.passage_lang).answer.clone(), i.passage_lang)).collect();
        for i in &batch.items {
            if let Some(n) = i.hard_negative {
                passages.push((pair(i.group, i.passage_lang).paragraph_others[n].clone(), i.passage_lang));
            }
        }
        let mut ignore = vec![false; batch.items.len() * passages.len()];
        if self.config.mask_shared_answers {
            for (q, item) in batch.items.iter().enumerate() {
                for (p, (text, lang)) in passages.iter().enumerate() {
                    let answer = groups[item.group][*lang].as_ref().map(|t| t.answer.as_str());
                    ignore[q * passages.len() + p] = p != q && answer == Some(text.as_str());
                }
            }
        }
        (queries, passages.into_iter().map(|(t, _)| t).collect(), ignore)
    }

    /// One optimiser step on the next batch.
    pub fn train_step(&mut self) -> Result<StepLog, TrainError> {
        let start = Instant::now();
        let step = self.state.step;
        let batch = self.sampler.next_batch();
        let model = self.model.take().expect("model present between steps");
        let (value, grads, masked) = match self.batch_gradients(&model, &batch) {
            Ok((value, ..)) if !value.is_finite() => {
                self.model = Some(model);
                return Err(TrainError::Diverged { step: step + 1, what: format!("the loss is {value}") });
            }
            Ok(done) => done,
            Err(e) => {
                self.model = Some(model);
                return Err(e);
            }
        };
        let grad_norm = match global_norm(&model, &grads) {
            Ok(n) if n.is_finite() => n,
            Ok(n) => {
                self.model = Some(model);
                return Err(TrainError::Diverged { step: step + 1, what: format!("the gradient norm is {n}") });
            }
            Err(e) => {
                self.model = Some(model);
                return Err(e);
            }
        };
        let lr = learning_rate(self.config.lr, step, self.config.warmup_steps, self.config.steps);
        self.grad_scale.set(clip_factor(grad_norm, self.config.grad_clip));
        self.model = Some(self.optim.step(lr, model, grads));
        let seconds = start.elapsed().as_secs_f64();
        self.state.step += 1;
        self.state.sampler = self.sampler.state();
        self.state.train_seconds += seconds;
        let kind = match batch.kind {
            BatchKind::Mono(l) => format!("mono:{}", self.data.sources[batch.source].pairs.langs[l]),
            BatchKind::Cross => "cross".into(),
            BatchKind::Mixed => "mixed".into(),
        };
        let source = (self.data.sources.len() > 1).then(|| self.data.sources[batch.source].name.clone());
        let log = StepLog { step: self.state.step, loss: value, lr, grad_norm, masked, batch: kind, source, seconds };
        self.state.history.push(log.clone());
        Ok(log)
    }

    /// The texts (queries, passages) of the next `n` batches, without drawing them: the sampler is
    /// left as it was (for running the same batches elsewhere, as the benchmark's peer does).
    pub fn upcoming_batches(&mut self, n: usize) -> Vec<(Vec<String>, Vec<String>)> {
        let saved = self.sampler.state();
        let batches = (0..n)
            .map(|_| {
                let batch = self.sampler.next_batch();
                let (queries, passages, _) = self.batch_texts(&batch);
                (queries, passages)
            })
            .collect();
        self.sampler.restore(saved).expect("the sampler's own state");
        batches
    }

    /// The next batch's loss and gradients, without an optimiser step (the sampler advances, the
    /// model stays as it is): what a step would apply, before clipping.
    pub fn next_gradients(&mut self) -> Result<(f32, GradientsParams), TrainError> {
        let batch = self.sampler.next_batch();
        let model = self.model.take().expect("model present between steps");
        let result = self.batch_gradients(&model, &batch);
        self.model = Some(model);
        result.map(|(value, grads, _)| (value, grads))
    }

    /// The loss of `batch`, the gradients of every trained parameter, and how many logits the
    /// shared-answer mask left out.
    fn batch_gradients(
        &self,
        model: &BertModel<B>,
        batch: &TrainBatch,
    ) -> Result<(f32, GradientsParams, usize), TrainError> {
        let (queries, passages, ignore) = self.batch_texts(batch);
        let masked = ignore.iter().filter(|&&m| m).count();
        let mask = (masked > 0).then(|| {
            Tensor::<B, 2, Bool>::from_data(TensorData::new(ignore, [queries.len(), passages.len()]), &self.device)
        });
        let (value, grads) = if self.config.mini_batch == 0 {
            self.whole_batch_gradients(model, &queries, &passages, mask)?
        } else {
            self.cached_gradients(model, &queries, &passages, mask)?
        };
        Ok((value, grads, masked))
    }

    /// The loss and its gradients with the whole batch in one graph: queries and passages in one
    /// ragged pass ([`encode_ragged`]), so that every weight is multiplied once per step.
    fn whole_batch_gradients(
        &self,
        model: &BertModel<B>,
        queries: &[String],
        passages: &[String],
        mask: Option<Tensor<B, 2, Bool>>,
    ) -> Result<(f32, GradientsParams), TrainError> {
        let c = &self.config;
        let sides = [(queries, Role::Query, c.max_query_tokens), (passages, Role::Passage, c.max_passage_tokens)];
        let mut encoded = encode_ragged(model, &self.tokenizer, &sides, LENGTH_BUCKET, &self.device)?.into_iter();
        let (Some((q, _)), Some((p, _))) = (encoded.next(), encoded.next()) else {
            unreachable!("one result per side")
        };
        let loss = info_nce(q, p, c.tau, mask);
        let value = scalar(loss.clone())?;
        if !value.is_finite() {
            return Ok((value, GradientsParams::new()));
        }
        // On the CPU backend the backward ops split their work over rayon's threads; run from
        // one of them, each op starts its share at once (see `Kernels::run`).
        let grads = B::run(|| loss.backward());
        Ok((value, GradientsParams::from_grads(grads, model)))
    }

    /// The same loss and gradients by cached InfoNCE (see [`TrainConfig::mini_batch`]).
    fn cached_gradients(
        &self,
        model: &BertModel<B>,
        queries: &[String],
        passages: &[String],
        mask: Option<Tensor<B, 2, Bool>>,
    ) -> Result<(f32, GradientsParams), TrainError> {
        let c = &self.config;
        let sides = [(queries, Role::Query, c.max_query_tokens), (passages, Role::Passage, c.max_passage_tokens)];
        // 1. Every embedding without a graph, one mini-batch (texts of similar length) per pass,
        // so that memory is bounded by the mini-batch.
        // Each side is tokenized once; both passes encode its groups.
        let inner = model.valid();
        let grouped = sides
            .into_iter()
            .map(|side| Grouped::new(&self.tokenizer, side, c.mini_batch))
            .collect::<Result<Vec<_>, _>>()?;
        let leaves: Vec<Tensor<B, 2>> = grouped
            .iter()
            .map(|side| {
                let parts =
                    side.batches.iter().flat_map(|batch| encode_groups(&inner, &[batch], &self.device)).collect();
                Tensor::from_inner(in_text_order(parts, &side.order, &self.device)).require_grad()
            })
            .collect();
        // 2. The loss and its gradient with respect to every embedding.
        let loss = info_nce(leaves[0].clone(), leaves[1].clone(), c.tau, mask);
        let value = scalar(loss.clone())?;
        if !value.is_finite() {
            return Ok((value, GradientsParams::new()));
        }
        let grads = loss.backward();
        let embedding_grads: Vec<Tensor<B::InnerBackend, 2>> = leaves
            .iter()
            .map(|leaf| {
                leaf.grad(&grads).ok_or_else(|| TrainError::Device("the loss has no gradient for an embedding".into()))
            })
            .collect::<Result<_, _>>()?;
        // 3. Each mini-batch again with a graph; back-propagating `Σ embedding ⊙ its gradient`
        // gives that mini-batch's share of every parameter's gradient.
        let mut total = GradientsAccumulator::<BertModel<B>>::new();
        for (side, grad) in grouped.iter().zip(embedding_grads) {
            for (idx, batch) in side.order.iter().zip(&side.batches) {
                let rows: Vec<i32> = idx.iter().map(|&i| i as i32).collect();
                let rows =
                    Tensor::<B::InnerBackend, 1, Int>::from_data(TensorData::new(rows, [idx.len()]), &self.device);
                let slice = Tensor::<B, 2>::from_inner(grad.clone().select(0, rows));
                let vectors = encode_groups(model, &[batch], &self.device).pop().expect("one group");
                let surrogate = (vectors * slice).sum();
                let grads = B::run(|| surrogate.backward());
                total.accumulate(model, GradientsParams::from_grads(grads, model));
            }
        }
        Ok((value, total.grads()))
    }

    /// Scores the current model on the dev set; exports it to `<run>/best` if it is the best so
    /// far by Mul. mAP.
    pub fn evaluate_dev(&mut self, on: &mut dyn FnMut(Event)) -> Result<Option<EvalLog>, TrainError> {
        let Some(dev) = &self.data.dev else { return Ok(None) };
        let start = Instant::now();
        let embedder = Embedder::<B::InnerBackend>::new(
            self.model().valid(),
            self.tokenizer.clone(),
            self.model_config.clone(),
            &self.device,
        )?;
        let questions: Vec<&str> = dev.questions.iter().map(|q| q.text.as_str()).collect();
        let candidates: Vec<String> = (0..dev.candidates.len())
            .map(|i| dev.candidate_text(i, mlr_data::lareqa::CandidateText::Sentence))
            .collect();
        on(Event::EvalStart { texts: questions.len() + candidates.len() });
        let mut done = 0;
        let batch = self.config.eval_batch_size;
        let cand_vecs = embedder.embed_many(&candidates, Role::Passage, batch, |n| {
            done += n;
            on(Event::EvalProgress(done));
        })?;
        let query_vecs = embedder.embed_many(&questions, Role::Query, batch, |n| {
            done += n;
            on(Event::EvalProgress(done));
        })?;
        let report = score_lareqa(dev, &cand_vecs.concat(), &query_vecs.concat(), embedder.dim())?;
        let multi = report.multi.as_ref().map(|s| s.map).ok_or(TrainError::Data(SourceError::NoDevScore))?;
        let log = EvalLog {
            step: self.state.step,
            mono: report.mono.as_ref().map(|s| s.map),
            cross: report.cross.as_ref().map(|s| s.map),
            multi,
            rank_distance: report.rank_distance,
            seconds: start.elapsed().as_secs_f64(),
        };
        let best = self.state.best.as_ref().is_none_or(|b| log.multi > b.multi);
        if best {
            export_hf(self.model(), &self.files, &self.provenance(Some(&log)), &self.out.join("best"))?;
            self.state.best = Some(log.clone());
        }
        self.state.evals.push(log.clone());
        on(Event::Eval { log: &log, best });
        Ok(Some(log))
    }

    /// Writes `<run>/checkpoint` (atomically replacing the previous one).
    pub fn save_checkpoint(&self) -> Result<(), TrainError> {
        let dir = self.out.join("checkpoint");
        let partial = self.out.join("checkpoint.partial");
        if partial.exists() {
            std::fs::remove_dir_all(&partial).map_err(|e| TrainError::io(&partial, e))?;
        }
        std::fs::create_dir_all(&partial).map_err(|e| TrainError::io(&partial, e))?;
        let fail = |what: &str, e: burn::record::RecorderError| TrainError::Checkpoint {
            path: partial.clone(),
            message: format!("writing {what}: {e}"),
        };
        let recorder = Rec::new();
        Recorder::<B>::record(&recorder, self.model().clone().into_record(), partial.join("model"))
            .map_err(|e| fail("model", e))?;
        Recorder::<B>::record(&recorder, self.optim.to_record(), partial.join("optimizer"))
            .map_err(|e| fail("optimizer", e))?;
        let mut sha256 = BTreeMap::new();
        for name in checkpoint::FILES {
            sha256.insert(name.to_string(), checkpoint::sha256_file(&partial.join(name))?);
        }
        let state = CheckpointState {
            format: checkpoint::FORMAT.into(),
            config: self.config.clone(),
            base_model: self.files.dir.clone(),
            run: self.state.clone(),
            sha256,
        };
        let path = partial.join("state.json");
        std::fs::write(&path, serde_json::to_string_pretty(&state).expect("json") + "\n")
            .map_err(|e| TrainError::io(&path, e))?;
        for name in checkpoint::FILES.iter().chain(&["state.json"]) {
            checkpoint::sync(&partial.join(name))?;
        }
        checkpoint::commit(&partial, &dir)
    }
}

/// Every float parameter's path and shape, in visiting order.
#[derive(Default)]
struct Shapes {
    path: Vec<String>,
    shapes: Vec<(String, Vec<usize>)>,
}

impl<B: Backend> ModuleVisitor<B> for Shapes {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.shapes.push((self.path.join("."), param.val().dims().to_vec()));
    }
}

/// `base` with a checkpoint's parameters, if the checkpoint has exactly `base`'s parameters and
/// shapes (burn's `load_record` panics on a different layer count and takes any shape; a
/// different shape would fail mid-step).
fn load_checkpoint_model<B: Backend>(
    base: BertModel<B>,
    record: <BertModel<B> as Module<B>>::Record,
) -> Result<BertModel<B>, String> {
    let lengths = [
        ("word-embedding chunks", base.embeddings.word.len(), record.embeddings.word.len()),
        ("layers", base.layers.len(), record.layers.len()),
    ];
    if let Some((what, want, got)) = lengths.into_iter().find(|(_, want, got)| want != got) {
        return Err(format!("model.bin has {got} {what}, the model {want}"));
    }
    let mut want = Shapes::default();
    base.visit(&mut want);
    let loaded = base.load_record(record);
    let mut got = Shapes::default();
    loaded.visit(&mut got);
    if let Some(((name, w), (_, g))) = want.shapes.iter().zip(&got.shapes).find(|(w, g)| w != g) {
        return Err(format!("model.bin's `{name}` has shape {g:?}, the model's {w:?}"));
    }
    Ok(loaded)
}

/// The base model of `files`, whose config.json is `config`.
fn load_model<B: Backend>(
    config: &BertConfig,
    files: &ModelFiles,
    device: &B::Device,
) -> Result<BertModel<B>, TrainError> {
    Ok(mlr_weights::load_bert(config, &files.safetensors, device)?)
}

fn scalar<B: Backend>(t: Tensor<B, 1>) -> Result<f32, TrainError> {
    let v = t.into_data().convert::<f32>().into_vec::<f32>().map_err(|e| TrainError::Device(format!("{e:?}")))?;
    v.first().copied().ok_or_else(|| TrainError::Device("empty scalar".into()))
}

/// Texts per attention group on the whole-batch path: texts of similar length are padded
/// together, so that a batch's short texts are not padded to its longest.
const LENGTH_BUCKET: usize = 8;

/// Texts to encode: the texts, their role and their token limit.
pub(crate) type Side<'a> = (&'a [String], Role, usize);

/// One side's texts, tokenized once, sorted by token length (stably) and cut into groups of at
/// most `size` texts, each group padded to its own longest text.
struct Grouped {
    /// Per group, the indices of its texts.
    order: Vec<Vec<usize>>,
    /// Per group, its tokens.
    batches: Vec<Batch>,
}

impl Grouped {
    fn new(tokenizer: &TextTokenizer, (texts, role, max_tokens): Side<'_>, size: usize) -> Result<Self, TrainError> {
        // Truncated: exactly one row per text.
        let rows = tokenizer.sequences(texts, role, max_tokens, Overflow::Truncate)?;
        let mut sorted: Vec<usize> = (0..rows.len()).collect();
        sorted.sort_by_key(|&i| rows[i].ids.len());
        let order: Vec<Vec<usize>> = sorted.chunks(size.max(1)).map(<[usize]>::to_vec).collect();
        let batches = order
            .iter()
            .map(|idx| Batch::from_rows(idx.iter().map(|&i| rows[i].clone()).collect(), idx.len(), tokenizer.pad_id()))
            .collect();
        Ok(Grouped { order, batches })
    }
}

/// One side's result of [`encode_ragged`]: its vectors `[texts, hidden]`, in the order of its
/// texts, and its groups (text indices).
type EncodedSide<B> = (Tensor<B, 2>, Vec<Vec<usize>>);

/// Unit sentence vectors of every side's texts, in one ragged pass of the encoder
/// ([`BertModel::forward_ragged`]): each side's texts sorted by token length and cut into groups
/// of at most `size` (each padded to its own longest text, for the attention), every dense layer
/// over the real tokens of all groups at once. On the graph if `B` is an autodiff backend.
/// Returns per side its vectors, in the order of its texts, and its groups (text indices).
///
/// # Shapes
/// -> per side `[texts, hidden]`
pub(crate) fn encode_ragged<B: Kernels>(
    model: &BertModel<B>,
    tokenizer: &TextTokenizer,
    sides: &[Side<'_>],
    size: usize,
    device: &B::Device,
) -> Result<Vec<EncodedSide<B>>, TrainError> {
    let grouped = sides.iter().map(|&side| Grouped::new(tokenizer, side, size)).collect::<Result<Vec<_>, _>>()?;
    let batches: Vec<&Batch> = grouped.iter().flat_map(|side| &side.batches).collect();
    let mut vectors = encode_groups(model, &batches, device).into_iter();
    Ok(grouped
        .into_iter()
        .map(|side| {
            let parts: Vec<Tensor<B, 2>> = vectors.by_ref().take(side.order.len()).collect();
            (in_text_order(parts, &side.order, device), side.order)
        })
        .collect())
}

/// Unit sentence vectors of each group's texts, in the group's order, from one ragged pass.
///
/// # Shapes
/// -> per group `[texts, hidden]`
fn encode_groups<B: Kernels>(model: &BertModel<B>, batches: &[&Batch], device: &B::Device) -> Vec<Tensor<B, 2>> {
    let groups = batches
        .iter()
        .map(|batch| RaggedGroup::new(&batch.ids, &batch.mask, [batch.rows.len(), batch.seq_len], device))
        .collect();
    let batch = Ragged { groups };
    let states = model.forward_ragged(&batch);
    batch.groups.iter().zip(states).map(|(group, state)| l2_normalize(masked_mean(state, group.mask.clone()))).collect()
}

/// The rows of `parts` (one block per group of `order`, in its order) stacked and put back in the
/// texts' order.
///
/// # Shapes
/// -> `[texts, hidden]`
fn in_text_order<B: Backend>(parts: Vec<Tensor<B, 2>>, order: &[Vec<usize>], device: &B::Device) -> Tensor<B, 2> {
    // Row j of the concatenation is text flat[j]; text i is row inverse[i].
    let flat: Vec<usize> = order.iter().flatten().copied().collect();
    let mut inverse = vec![0i32; flat.len()];
    for (j, &i) in flat.iter().enumerate() {
        inverse[i] = j as i32;
    }
    let inverse = Tensor::<B, 1, Int>::from_data(TensorData::new(inverse, [flat.len()]), device);
    Tensor::cat(parts, 0).select(0, inverse)
}

/// Sum of squared gradient entries over every parameter that has a gradient.
struct SquaredNorm<'a, B: AutodiffBackend> {
    grads: &'a GradientsParams,
    total: Option<Tensor<B::InnerBackend, 1>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for SquaredNorm<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = self.grads.get::<B::InnerBackend, D>(param.id) {
            let s = g.square().sum();
            self.total = Some(match self.total.take() {
                None => s,
                Some(t) => t + s,
            });
        }
    }
}

/// The global L2 norm of all gradients.
fn global_norm<B: AutodiffBackend>(model: &BertModel<B>, grads: &GradientsParams) -> Result<f32, TrainError> {
    let mut visitor = SquaredNorm::<B> { grads, total: None };
    model.visit(&mut visitor);
    match visitor.total {
        Some(total) => scalar(total.sqrt()),
        None => Ok(0.0),
    }
}

/// The factor that clips a gradient of global norm `norm` to `max_norm` (PyTorch's
/// `clip_grad_norm_`: `max_norm / (norm + 1e-6)` when the norm exceeds `max_norm`, else 1;
/// `max_norm` 0 never clips). The optimiser applies it to every gradient in its update.
fn clip_factor(norm: f32, max_norm: f64) -> f32 {
    if max_norm > 0.0 && (norm as f64) > max_norm {
        (max_norm / (norm as f64 + 1e-6)) as f32
    } else {
        1.0
    }
}

/// The LAReQA report of `set` given candidate and query vectors (row-major, `dim` wide).
pub(crate) fn score_lareqa(
    set: &LareqaSet,
    candidates: &[f32],
    queries: &[f32],
    dim: usize,
) -> Result<mlr_eval::lareqa::LareqaReport, TrainError> {
    let index = set.eval_index(None);
    let input = LareqaInput::from_index(&index, candidates, queries, dim);
    Ok(evaluate(&input, &LareqaOptions { rank_correlation: false, ..LareqaOptions::default() })?)
}
