//! Checkpoints: everything a run needs to continue bit for bit — model, optimiser moments,
//! sampler state and step, the loss and dev-score history — in one directory.
//!
//! ```text
//! <run>/checkpoint/state.json      step, config, sampler state, history, sha256 of the two files
//! <run>/checkpoint/model.bin       the model record (burn BinFileRecorder, full precision)
//! <run>/checkpoint/optimizer.bin   the AdamW record
//! ```
//!
//! A checkpoint is written to `checkpoint.partial` and renamed over the old one, so a crash while
//! saving leaves the previous checkpoint intact. Loading checks both files against the sha256 in
//! `state.json` before decoding, so a damaged checkpoint is reported as such, never as a panic
//! deep inside a decoder.

use std::path::{Path, PathBuf};

use mlr_data::mix::MixState;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{TrainConfig, TrainError};

/// Format tag of `state.json`.
pub const FORMAT: &str = "mlr-train-checkpoint/1";

/// The loss and learning rate of one optimiser step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepLog {
    /// 1-based step number (after the update).
    pub step: usize,
    /// InfoNCE loss of the batch, before the update.
    pub loss: f32,
    /// Learning rate of the update.
    pub lr: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f32,
    /// Logits left out of the loss because the passage is also a right answer of the query (a
    /// shared answer sentence of another question, or its translation).
    #[serde(default)]
    pub masked: usize,
    /// `mono:<lang>`, `cross` or `mixed`.
    pub batch: String,
    /// The training source of the batch (runs with several sources only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Wall time of the step.
    pub seconds: f64,
}

/// One evaluation on the dev articles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalLog {
    /// Steps done when evaluated.
    pub step: usize,
    /// Mo. mAP.
    pub mono: Option<f64>,
    /// Cr. mAP (none with a single dev language).
    pub cross: Option<f64>,
    /// Mul. mAP (the selection criterion).
    pub multi: f64,
    /// Mean rank distance (Mul.; none with a single dev language).
    pub rank_distance: Option<f64>,
    /// Wall time of the evaluation.
    pub seconds: f64,
}

/// The mutable state of a run besides the tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// Optimiser steps done.
    pub step: usize,
    /// The batch sampler's state after `step` batches.
    pub sampler: MixState,
    /// Every step so far.
    pub history: Vec<StepLog>,
    /// Every dev evaluation so far.
    pub evals: Vec<EvalLog>,
    /// The best dev evaluation (by Mul. mAP), exported to `<run>/best`.
    pub best: Option<EvalLog>,
    /// Seconds spent in training steps (evaluation and checkpointing excluded).
    pub train_seconds: f64,
}

/// `state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointState {
    /// [`FORMAT`].
    pub format: String,
    /// The run's configuration.
    pub config: TrainConfig,
    /// The base model directory the run started from.
    pub base_model: PathBuf,
    /// Steps, sampler, history.
    pub run: RunState,
    /// sha256 of `model.bin` and `optimizer.bin`.
    pub sha256: std::collections::BTreeMap<String, String>,
}

/// Hex sha256 of a file.
pub fn sha256_file(path: &Path) -> Result<String, TrainError> {
    let mut file = std::fs::File::open(path).map_err(|e| TrainError::io(path, e))?;
    let mut h = Sha256::new();
    std::io::copy(&mut file, &mut h).map_err(|e| TrainError::io(path, e))?;
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The record files of a checkpoint.
pub const FILES: [&str; 2] = ["model.bin", "optimizer.bin"];

/// Reads and verifies `<dir>/state.json` and the sha256 of the record files.
pub fn read_state(dir: &Path) -> Result<CheckpointState, TrainError> {
    let state = read_state_json(dir)?;
    let corrupt = |message: String| TrainError::Checkpoint { path: dir.to_path_buf(), message };
    for name in FILES {
        let file = dir.join(name);
        if !file.exists() {
            return Err(corrupt(format!("{name} is missing")));
        }
        let want = state.sha256.get(name).ok_or_else(|| corrupt(format!("state.json has no sha256 for {name}")))?;
        let got = sha256_file(&file)?;
        if &got != want {
            return Err(corrupt(format!("{name} is corrupt: sha256 {got}, state.json records {want}")));
        }
    }
    Ok(state)
}

/// Reads `<dir>/state.json` without hashing the record files (for a quick look at the run).
pub fn read_state_json(dir: &Path) -> Result<CheckpointState, TrainError> {
    let corrupt = |message: String| TrainError::Checkpoint { path: dir.to_path_buf(), message };
    let path = dir.join("state.json");
    let text = std::fs::read_to_string(&path).map_err(|e| corrupt(format!("cannot read state.json: {e}")))?;
    let damaged = |e: serde_json::Error| corrupt(format!("state.json is damaged or not an mlr checkpoint: {e}"));
    let mut value: serde_json::Value = serde_json::from_str(&text).map_err(damaged)?;
    // Checkpoints written before `mask_shared_answers` existed trained without the mask.
    if let Some(config) = value.get_mut("config").and_then(|c| c.as_object_mut()) {
        config.entry("mask_shared_answers").or_insert(serde_json::Value::Bool(false));
    }
    let state: CheckpointState = serde_json::from_value(value).map_err(damaged)?;
    if state.format != FORMAT {
        return Err(corrupt(format!("format {:?}, expected {FORMAT:?}", state.format)));
    }
    Ok(state)
}

/// The checkpoint directory of run `out`: `checkpoint/`, or `checkpoint.old/` if a crash hit the
/// moment between the two renames of [`commit`].
pub fn locate(out: &Path) -> Option<PathBuf> {
    [out.join("checkpoint"), out.join("checkpoint.old")].into_iter().find(|d| d.join("state.json").exists())
}

/// Flushes a file (or directory) to disk.
pub fn sync(path: &Path) -> Result<(), TrainError> {
    std::fs::File::open(path).and_then(|f| f.sync_all()).map_err(|e| TrainError::io(path, e))
}

/// Moves a finished directory `partial` into place as `dir`, keeping the previous `dir` as
/// `dir.old` until the new one is in place (so one of them always exists; see [`locate`]).
pub fn commit(partial: &Path, dir: &Path) -> Result<(), TrainError> {
    let old = dir.with_extension("old");
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| TrainError::io(&old, e))?;
    }
    if dir.exists() {
        std::fs::rename(dir, &old).map_err(|e| TrainError::io(dir, e))?;
    }
    std::fs::rename(partial, dir).map_err(|e| TrainError::io(dir, e))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| TrainError::io(&old, e))?;
    }
    Ok(())
}
