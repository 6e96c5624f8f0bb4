//! Export of a trained encoder as a Hugging Face directory (`model.safetensors` with BertModel key
//! names, `config.json`, `tokenizer.json`), which `mlr eval`, `mlr embed` and the web app load like
//! the base model.

use std::path::Path;

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use mlr_embed::ModelFiles;
use mlr_model::BertModel;
use mlr_weights::{write_safetensors, NamedTensor};

use crate::TrainError;

fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Result<Vec<f32>, TrainError> {
    t.into_data().convert::<f32>().into_vec::<f32>().map_err(|e| TrainError::Device(format!("{e:?}")))
}

/// Every tensor of `model` under its HF name and in HF layout (Linear weights `[out, in]`), in the
/// order of [`mlr_model::tensor_names`].
pub fn model_tensors<B: Backend>(model: &BertModel<B>) -> Result<Vec<NamedTensor>, TrainError> {
    let mut out = Vec::new();
    let mut push = |name: String, shape: Vec<usize>, values: Vec<f32>| out.push(NamedTensor { name, shape, values });
    let e = &model.embeddings;
    // Joined on the host: the whole table may exceed what a GPU buffer can hold (see
    // `mlr_model::MAX_CHUNK_BYTES`).
    let (mut rows, mut table) = (0, Vec::new());
    for chunk in &e.word {
        let t = chunk.val();
        rows += t.dims()[0];
        table.extend(values(t)?);
    }
    let width = table.len().checked_div(rows).unwrap_or(0);
    push("embeddings.word_embeddings.weight".into(), vec![rows, width], table);
    let position = e.position.val();
    push("embeddings.position_embeddings.weight".into(), position.dims().to_vec(), values(position)?);
    let token_type = e.token_type.val();
    push("embeddings.token_type_embeddings.weight".into(), token_type.dims().to_vec(), values(token_type)?);
    let mut layer_norm = |name: &str, ln: &burn::nn::LayerNorm<B>| -> Result<(), TrainError> {
        let gamma = ln.gamma.val();
        push(format!("{name}.weight"), gamma.dims().to_vec(), values(gamma)?);
        let beta = ln.beta.as_ref().ok_or_else(|| TrainError::Config(format!("{name} has no bias")))?.val();
        push(format!("{name}.bias"), beta.dims().to_vec(), values(beta)?);
        Ok(())
    };
    layer_norm("embeddings.LayerNorm", &e.layer_norm)?;
    for (l, layer) in model.layers.iter().enumerate() {
        let p = format!("encoder.layer.{l}");
        let a = &layer.attention;
        let f = &layer.feed_forward;
        for (name, linear) in [
            ("attention.self.query", &a.query),
            ("attention.self.key", &a.key),
            ("attention.self.value", &a.value),
            ("attention.output.dense", &a.output),
            ("intermediate.dense", &f.intermediate),
            ("output.dense", &f.output),
        ] {
            // burn keeps [in, out]; HF stores [out, in].
            let w = linear.weight.val().transpose();
            out.push(NamedTensor { name: format!("{p}.{name}.weight"), shape: w.dims().to_vec(), values: values(w)? });
            let b = linear.bias.as_ref().ok_or_else(|| TrainError::Config(format!("{p}.{name} has no bias")))?.val();
            out.push(NamedTensor { name: format!("{p}.{name}.bias"), shape: b.dims().to_vec(), values: values(b)? });
        }
        for (name, ln) in [("attention.output.LayerNorm", &a.layer_norm), ("output.LayerNorm", &f.layer_norm)] {
            let gamma = ln.gamma.val();
            out.push(NamedTensor {
                name: format!("{p}.{name}.weight"),
                shape: gamma.dims().to_vec(),
                values: values(gamma)?,
            });
            let beta = ln.beta.as_ref().ok_or_else(|| TrainError::Config(format!("{p}.{name} has no bias")))?.val();
            out.push(NamedTensor {
                name: format!("{p}.{name}.bias"),
                shape: beta.dims().to_vec(),
                values: values(beta)?,
            });
        }
    }
    Ok(out)
}

/// Writes `model` as a Hugging Face directory: `model.safetensors`, `config.json` and
/// `tokenizer.json` (the bytes of the base model's `files`, unchanged: training changes no
/// hyper-parameter) and
/// `mlr_training.json` (provenance). The directory is written beside its final place and renamed
/// into it, so a crash never leaves half a model.
pub fn export_hf<B: Backend>(
    model: &BertModel<B>,
    files: &ModelFiles,
    provenance: &serde_json::Value,
    dir: &Path,
) -> Result<(), TrainError> {
    let config = files.config()?;
    let tensors = model_tensors(model)?;
    let expected = mlr_model::tensor_names(&config);
    if expected.len() != tensors.len() {
        return Err(TrainError::Config(format!(
            "model has {} tensors, config.json describes {}",
            tensors.len(),
            expected.len()
        )));
    }
    for ((name, shape), t) in expected.iter().zip(&tensors) {
        if *name != t.name || *shape != t.shape {
            return Err(TrainError::Config(format!(
                "model does not match config: {} {:?} vs {name} {shape:?}",
                t.name, t.shape
            )));
        }
    }
    let bytes = write_safetensors(&tensors)?;
    let tmp = dir.with_extension("partial");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    let write =
        |name: &str, data: &[u8]| std::fs::write(tmp.join(name), data).map_err(|e| TrainError::io(&tmp.join(name), e));
    write(ModelFiles::WEIGHTS, &bytes)?;
    write(ModelFiles::CONFIG, &files.config_json)?;
    write(ModelFiles::TOKENIZER, &files.tokenizer_json)?;
    write("mlr_training.json", (serde_json::to_string_pretty(provenance).expect("json") + "\n").as_bytes())?;
    crate::checkpoint::sync(&tmp.join(ModelFiles::WEIGHTS))?;
    crate::checkpoint::commit(&tmp, dir)
}
