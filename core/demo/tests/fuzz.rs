//! Fuzz targets of the demo's data (see mlr-fuzz): `manifest.json` and the `.mlrv` vector file,
//! followed, when the vectors fit the corpus, through everything the worker does with them
//! (search, the bias view, the evaluator).

use mlr_data::lareqa::LareqaSet;
use mlr_demo::manifest::MANIFEST_VERSION;
use mlr_demo::{Corpus, DatasetEntry, FileEntry, Manifest, ModelEntry, Rows, VectorFile};
use mlr_eval::lareqa::{evaluate, LareqaInput, LareqaOptions, LareqaReport};
use mlr_eval::EvalError;
use mlr_fuzz::{binary, check, seeds, text};

#[global_allocator]
static ALLOC: mlr_fuzz::LimitedAlloc = mlr_fuzz::LimitedAlloc;

const DIM: usize = 4;

fn corpus_files() -> [(String, String); 2] {
    ["en", "de"].map(|lang| (lang.to_string(), seeds::lareqa(lang)))
}

fn corpus() -> Corpus {
    let files = corpus_files();
    let named: Vec<(&str, &str, &[u8])> = files.iter().map(|(l, t)| (l.as_str(), l.as_str(), t.as_bytes())).collect();
    Corpus::new(LareqaSet::from_files(&named).expect("the seed corpus loads"))
}

/// Unit vectors of every candidate, then every question, of the seed corpus.
fn vectors(set: &LareqaSet) -> Vec<u8> {
    let row = |r: usize| {
        let v: Vec<f32> = (0..DIM).map(|d| ((r * 7 + d * 3) % 11) as f32 - 5.0).collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1.0);
        v.into_iter().map(move |x| x / norm)
    };
    let cands: Vec<f32> = (0..set.candidates.len()).flat_map(row).collect();
    let questions: Vec<f32> = (0..set.questions.len()).flat_map(|q| row(q + 100)).collect();
    VectorFile::encode(DIM, &cands, &questions)
}

/// The evaluator on `file`'s vectors of the whole corpus, as the page's Evaluate does.
fn report(set: &LareqaSet, file: &VectorFile) -> Result<LareqaReport, String> {
    let rows = Rows::new(set, file).map_err(|e| e.to_string())?;
    let index = set.eval_index(Some(4));
    let (cands, queries) = rows.gather(file, set, &index).map_err(|e| e.to_string())?;
    let options = LareqaOptions { threads: 1, ..Default::default() };
    match evaluate(&LareqaInput::from_index(&index, &cands, &queries, file.dim), &options) {
        // A guard against a bug of the evaluator: out-of-range numbers are never returned.
        Err(e @ EvalError::OutOfRange { .. }) => Err(e.to_string()),
        other => other.map_err(|e| e.to_string()),
    }
}

fn manifest_seed() -> String {
    let c = corpus();
    let set = &c.set;
    let mlrv = vectors(set);
    let report = report(set, &VectorFile::decode(&mlrv).expect("seed vectors decode")).expect("seed report");
    let files = corpus_files();
    let dataset = DatasetEntry {
        name: "tiny".into(),
        langs: files.iter().map(|(l, _)| l.clone()).collect(),
        files: files.iter().map(|(l, t)| FileEntry::of(&format!("data/{l}.json"), t.as_bytes())).collect(),
        split: FileEntry::of("data/split.json", b"{\"train\": [], \"dev\": [], \"test\": [\"Beta\"]}"),
        n_candidates: set.candidates.len(),
        n_questions: set.questions.len(),
        licence: "CC BY-SA 4.0".into(),
    };
    let model = |name: &str| ModelEntry {
        name: name.into(),
        label: format!("{name} (tiny)"),
        files: ["config.json", "tokenizer.json", "model.safetensors"]
            .map(|f| FileEntry::of(&format!("models/{name}/{f}"), f.as_bytes()))
            .to_vec(),
        dtype: "f16".into(),
        base: (name != "e5-small").then(|| "e5-small".into()),
        words: Vec::new(),
        vectors: FileEntry::of(&format!("corpus/{name}.mlrv"), &mlrv),
        dim: DIM,
        report: report.clone(),
        report_split: "all".into(),
    };
    let manifest = Manifest {
        version: MANIFEST_VERSION,
        dataset,
        models: vec![model("e5-small"), model("hybrid")],
        command: "mlr demo build --data tiny".into(),
    };
    serde_json::to_string_pretty(&manifest).expect("serialises")
}

#[test]
fn manifest() {
    check("demo manifest", text(vec![manifest_seed()], 512), |bytes| {
        let Ok(m) = Manifest::from_json(bytes) else { return Ok(false) };
        if m.models.is_empty() || m.dataset.files.len() != m.dataset.langs.len() {
            return Err("no models, or not one data file per language".into());
        }
        m.model(None).map_err(|e| e.to_string())?;
        for model in &m.models {
            if model.files.len() != 3 || m.model(Some(&model.name)).is_err() {
                return Err(format!("model {} is not as listed", model.name).into());
            }
            for f in model.files.iter().chain([&model.vectors]) {
                let _ = f.verify(b"config.json");
            }
            let value = serde_json::to_value(&model.report).map_err(|e| e.to_string())?;
            let numbers = |v: &serde_json::Value| -> Vec<f64> {
                let mut out = Vec::new();
                let mut stack = vec![v];
                while let Some(v) = stack.pop() {
                    match v {
                        serde_json::Value::Number(n) => out.extend(n.as_f64()),
                        serde_json::Value::Array(a) => stack.extend(a),
                        serde_json::Value::Object(o) => stack.extend(o.values()),
                        _ => {}
                    }
                }
                out
            };
            if let Some(x) = numbers(&value).into_iter().find(|x| !x.is_finite()) {
                return Err(format!("model {}: the report holds {x}", model.name).into());
            }
            for s in [&model.report.mono, &model.report.cross, &model.report.multi].into_iter().flatten() {
                if !(0.0..=1.0).contains(&s.map) || s.recall.values().any(|r| !(0.0..=1.0).contains(r)) {
                    return Err(format!(
                        "model {}: the page would show mAP {} and recalls {:?}",
                        model.name, s.map, s.recall
                    )
                    .into());
                }
            }
        }
        Ok(true)
    });
}

#[test]
fn vector_file() {
    let c = corpus();
    let (nc, nq) = (c.set.candidates.len(), c.set.questions.len());
    check("demo vectors", binary(vec![vectors(&c.set)], 128), |bytes| {
        let Ok(file) = VectorFile::decode(bytes) else { return Ok(false) };
        if file.dim == 0 || file.candidates.len() % file.dim != 0 || file.questions.len() % file.dim != 0 {
            return Err(format!(
                "{} and {} values for dimension {}",
                file.candidates.len(),
                file.questions.len(),
                file.dim
            )
            .into());
        }
        if file.candidates.iter().chain(&file.questions).any(|x| !x.is_finite()) {
            return Err("a non-finite value was accepted".into());
        }
        for i in 0..file.n_candidates() {
            let _ = file.candidate(i);
        }
        for i in 0..file.n_questions() {
            let _ = file.question(i);
        }
        if file.check_fits(DIM, nc, nq).is_err() {
            return Ok(true);
        }
        // What the worker does with vectors that fit: search, the bias view, the evaluator.
        for q in 0..nq {
            let ranking = c.rank(file.question(q), &file.candidates, file.dim);
            if ranking.scores.iter().any(|s| !s.is_finite()) {
                return Err(format!("question {q}: a non-finite score").into());
            }
            for (k, lang) in [(0, None), (3, Some(0)), (1000, Some(1)), (5, Some(7)), (usize::MAX, None)] {
                drop(c.top(&ranking, k, lang));
            }
            let question = &c.set.questions[q];
            let group = c.group(&question.text, &ranking).ok_or("a dataset question has no group")?;
            let ranks = c.lang_ranks(&ranking, &group.question_id);
            if mlr_demo::corpus::rank_distance(&ranks) >= nc {
                return Err(format!("question {q}: rank distance beyond the corpus").into());
            }
        }
        report(&c.set, &file)
            .map(|_| true)
            .or_else(|e| if e.contains("internal error") { Err(e.into()) } else { Ok(true) })
    });
}
