//! Fuzz targets of mlr-train's readers (see mlr-fuzz): a checkpoint's `state.json`, what
//! `--resume` reads before it touches the model records (whatever it accepts has the format tag,
//! record hashes that match, and a config the trainer can check and compare), and the training
//! config file (`--config`, TOML or JSON).

use std::collections::BTreeMap;

use mlr_data::batches::SamplerState;
use mlr_data::mix::MixState;
use mlr_fuzz::{check, text};
use mlr_train::checkpoint::{read_state, sha256_file, CheckpointState, FILES, FORMAT};
use mlr_train::{EvalLog, RunState, StepLog, TrainConfig};

#[global_allocator]
static ALLOC: mlr_fuzz::LimitedAlloc = mlr_fuzz::LimitedAlloc;

fn state(dir: &std::path::Path, sampler: MixState) -> String {
    let sha256: BTreeMap<String, String> =
        FILES.iter().map(|f| (f.to_string(), sha256_file(&dir.join(f)).expect("a record file"))).collect();
    let step = |step| StepLog {
        step,
        loss: 1.25,
        lr: 3e-5,
        grad_norm: 0.5,
        masked: 1,
        batch: "mono:de".into(),
        source: Some("pairs.jsonl".into()),
        seconds: 2.0,
    };
    let eval = EvalLog { step: 2, mono: Some(0.8), cross: None, multi: 0.5, rank_distance: Some(3.5), seconds: 1.0 };
    let run = RunState {
        step: 2,
        sampler,
        history: vec![step(1), step(2)],
        evals: vec![eval.clone()],
        best: Some(eval),
        train_seconds: 4.0,
    };
    let state = CheckpointState {
        format: FORMAT.into(),
        config: TrainConfig::default(),
        base_model: "models/e5".into(),
        run,
        sha256,
    };
    serde_json::to_string_pretty(&state).expect("serialises")
}

#[test]
fn checkpoint_state() {
    let dir = std::env::temp_dir().join(format!("mlr-fuzz-checkpoint-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for f in FILES {
        std::fs::write(dir.join(f), f.as_bytes()).expect("a record file");
    }
    let sampler = SamplerState { rng: 17, epoch: 1, pending: vec![3, 0, 2], batches: 2 };
    let seeds = vec![
        state(&dir, MixState::One(sampler.clone())),
        state(&dir, MixState::Many { mix_rng: 5, sources: vec![sampler.clone(), sampler] }),
    ];
    check("checkpoint state", text(seeds, 256), |bytes| {
        std::fs::write(dir.join("state.json"), bytes).map_err(|e| e.to_string())?;
        let Ok(state) = read_state(&dir) else { return Ok(false) };
        if state.format != FORMAT || FILES.iter().any(|f| !state.sha256.contains_key(*f)) {
            return Err(format!("format {:?}, hashes of {:?}", state.format, state.sha256.keys()).into());
        }
        let _ = state.config.validate();
        let _ = state.config.differences(&TrainConfig::default());
        Ok(true)
    });
    std::fs::remove_dir_all(&dir).expect("temp dir");
}

#[test]
fn train_config() {
    let toml = "sampler = \"hybrid\"\nalpha = 0.5\ntrain_langs = [\"de\", \"en\", \"zh\"]\nsteps = 40\n\
                batch_size = 16\nlr = 3e-5\nwarmup_steps = 4\nmax_query_tokens = 32\nmax_passage_tokens = 64\n\
                hard_negatives = true\ndata_weights = [1.0, 2.5]\n";
    let json = serde_json::to_string_pretty(&TrainConfig::default()).expect("serialises");
    let dir = std::env::temp_dir().join(format!("mlr-fuzz-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    check("train config", text(vec![toml.into(), json], 256), |bytes| {
        let mut accepted = false;
        for name in ["run.toml", "run.json"] {
            let path = dir.join(name);
            std::fs::write(&path, bytes).map_err(|e| e.to_string())?;
            let Ok(config) = TrainConfig::from_file(&path) else { continue };
            config.validate().map_err(|e| format!("{name}: accepted, then invalid: {e}"))?;
            if config.effective_alpha().is_some_and(|a| !(0.0..=1.0).contains(&a)) || config.steps == 0 {
                return Err(format!("{name}: alpha {:?}, steps {}", config.effective_alpha(), config.steps).into());
            }
            accepted = true;
        }
        Ok(accepted)
    });
    std::fs::remove_dir_all(&dir).expect("temp dir");
}
