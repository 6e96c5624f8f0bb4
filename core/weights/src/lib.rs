//! Safetensors checkpoints in and out of `mlr-model`.
//!
//! Reads any Hugging Face BERT-family `model.safetensors` (f32, f16 or bf16; keys with or without a
//! `bert.` / `roberta.` prefix) from bytes, so it works the same natively and in the browser, and
//! writes f32 safetensors with HF key names (used by `mlr import` and for exporting trained models).
//!
//! Design: the loader is a [`mlr_model::WeightSource`]; every missing tensor, wrong shape or
//! unsupported dtype is an error that names the tensor, never a panic. Loading also refuses:
//! - a header that is not a JSON object of distinct names (checked before the `safetensors` crate
//!   reads it), or a header length beyond the file;
//! - a NaN or infinite weight (it would make every vector NaN, and NaN vectors score perfectly in
//!   any evaluator that trusts them);
//! - `embeddings.*` or `encoder.*` tensors the config does not use (a 12-layer file under a
//!   `config.json` that says 2 layers, say). Heads outside the encoder (`pooler.*`, `lm_head.*`,
//!   `cls.*`) and the `embeddings.position_ids` buffer some checkpoints carry are ignored.
#![deny(missing_docs)]

use std::collections::HashMap;

use burn::tensor::backend::Backend;
use mlr_model::{BertConfig, BertModel, WeightError, WeightSource};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

/// Why a checkpoint cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// The bytes are not a safetensors file.
    #[error("model.safetensors: {0}")]
    Format(String),
    /// The file's tensors do not make the model its config describes (too many layers, a tensor
    /// given twice, a value f16 cannot hold).
    #[error("model.safetensors: {0}")]
    Tensor(String),
    /// A tensor the model reads is missing, has the wrong shape or unusable values.
    #[error("model.safetensors: {0}")]
    Weight(#[from] WeightError),
}

/// A parsed safetensors file used as the weight source of a [`BertModel`].
pub struct SafetensorsSource<'a> {
    file: SafeTensors<'a>,
    prefix: String,
}

/// The tensor names of a safetensors header, refusing duplicates (`serde_json` would keep the
/// last one silently, and the `safetensors` crate indexes past its own table on them).
struct HeaderNames(Vec<String>);

impl<'de> serde::Deserialize<'de> for HeaderNames {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = HeaderNames;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object of tensor entries")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<HeaderNames, A::Error> {
                let mut names = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    map.next_value::<serde::de::IgnoredAny>()?;
                    names.push(name);
                }
                Ok(HeaderNames(names))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// Checks the header's framing and that its entries have distinct names.
fn check_header(bytes: &[u8]) -> Result<(), WeightsError> {
    let format = |m: String| Err(WeightsError::Format(m));
    let Some(len) = bytes.get(..8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes"))) else {
        return format(format!("{} bytes: too short for a safetensors header", bytes.len()));
    };
    let available = bytes.len() as u64 - 8;
    if len > available {
        return format(format!("the header says it is {len} bytes long, but only {available} follow"));
    }
    let header = &bytes[8..8 + len as usize];
    let HeaderNames(mut names) =
        serde_json::from_slice(header).map_err(|e| WeightsError::Format(format!("header: {e}")))?;
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return format(format!("the header lists tensor `{}` twice", w[0]));
    }
    Ok(())
}

impl<'a> SafetensorsSource<'a> {
    /// Parses the header; tensors are decoded lazily while the model is built.
    pub fn new(bytes: &'a [u8]) -> Result<Self, WeightsError> {
        check_header(bytes)?;
        let file = SafeTensors::deserialize(bytes).map_err(|e| WeightsError::Format(e.to_string()))?;
        let key = "embeddings.word_embeddings.weight";
        let prefix = ["", "bert.", "roberta.", "model."]
            .into_iter()
            .find(|p| file.names().contains(&format!("{p}{key}").as_str()))
            .ok_or_else(|| {
                WeightsError::Tensor(format!("no `{key}` tensor (with or without a bert./roberta. prefix)"))
            })?;
        Ok(Self { file, prefix: prefix.to_string() })
    }

    /// Names of all tensors in the file.
    pub fn names(&self) -> Vec<String> {
        self.file.names().into_iter().map(str::to_string).collect()
    }
}

/// Decodes a tensor's little-endian bytes to f32.
fn to_f32(view: &TensorView<'_>) -> Result<Vec<f32>, String> {
    let data = view.data();
    Ok(match view.dtype() {
        Dtype::F32 => data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        Dtype::F16 => data.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        Dtype::BF16 => data.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        other => return Err(format!("dtype {other:?} is not supported (f32, f16, bf16)")),
    })
}

impl WeightSource for SafetensorsSource<'_> {
    fn get(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, WeightError> {
        let full = format!("{}{name}", self.prefix);
        let view = self.file.tensor(&full).map_err(|_| WeightError::Missing { name: full.clone() })?;
        if view.shape() != shape {
            return Err(WeightError::Shape { name: full, found: view.shape().to_vec(), expected: shape.to_vec() });
        }
        let values = to_f32(&view).map_err(|message| WeightError::Values { name: full.clone(), message })?;
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            let message = format!("value {} at index {i} is not finite", values[i]);
            return Err(WeightError::Values { name: full, message });
        }
        Ok(values)
    }
}

impl SafetensorsSource<'_> {
    /// Tensors of the encoder (`embeddings.*`, `encoder.*`) that a model of `config` would not
    /// read: their presence means the config does not describe the file.
    fn unused_encoder_tensors(&self, config: &BertConfig) -> Vec<String> {
        let used: std::collections::HashSet<String> =
            mlr_model::tensor_names(config).into_iter().map(|(name, _)| name).collect();
        let mut unused: Vec<String> = self
            .file
            .names()
            .into_iter()
            .filter_map(|name| name.strip_prefix(self.prefix.as_str()))
            .filter(|name| name.starts_with("embeddings.") || name.starts_with("encoder."))
            .filter(|name| *name != "embeddings.position_ids" && !used.contains(*name))
            .map(|name| format!("{}{name}", self.prefix))
            .collect();
        unused.sort_unstable();
        unused
    }
}

/// Builds a [`BertModel`] from the bytes of a `model.safetensors` file.
pub fn load_bert<B: Backend>(
    config: &BertConfig,
    safetensors: &[u8],
    device: &B::Device,
) -> Result<BertModel<B>, WeightsError> {
    let mut source = SafetensorsSource::new(safetensors)?;
    let unused = source.unused_encoder_tensors(config);
    if let Some(first) = unused.first() {
        let layers = unused.iter().filter(|n| n.contains("encoder.layer.")).count();
        return Err(WeightsError::Tensor(format!(
            "{} encoder tensors (such as `{first}`) are not part of the model config.json describes \
             (num_hidden_layers = {}{}): the config does not match the weights",
            unused.len(),
            config.num_hidden_layers,
            if layers > 0 { ", but the file has more layers" } else { "" },
        )));
    }
    Ok(BertModel::from_source(config, &mut source, device)?)
}

/// A named f32 tensor to write.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    /// HF key name.
    pub name: String,
    /// Shape (HF layout).
    pub shape: Vec<usize>,
    /// Row-major values.
    pub values: Vec<f32>,
}

/// Serialises f32 tensors as safetensors with metadata `{"format": "pt"}` (what PyTorch writers
/// put there), sorted as the reference implementation sorts them.
pub fn write_safetensors(tensors: &[NamedTensor]) -> Result<Vec<u8>, WeightsError> {
    let bytes: Vec<Vec<u8>> = tensors.iter().map(|t| t.values.iter().flat_map(|v| v.to_le_bytes()).collect()).collect();
    let mut names: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(WeightsError::Tensor(format!("tensor `{}` is given twice", w[0])));
    }
    let mut views = Vec::with_capacity(tensors.len());
    for (t, data) in tensors.iter().zip(&bytes) {
        if t.shape.iter().product::<usize>() != t.values.len() {
            return Err(WeightsError::Tensor(format!(
                "tensor `{}`: shape {:?} != {} values",
                t.name,
                t.shape,
                t.values.len()
            )));
        }
        let view =
            TensorView::new(Dtype::F32, t.shape.clone(), data).map_err(|e| WeightsError::Format(e.to_string()))?;
        views.push((t.name.clone(), view));
    }
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize(views, Some(metadata)).map_err(|e| WeightsError::Format(e.to_string()))
}

/// Rewrites a safetensors file with every floating-point tensor stored as IEEE half floats
/// (f32 and bf16 are rounded to the nearest f16; other dtypes are copied). Names, shapes and
/// metadata are kept; the result is about half the size and loads with [`load_bert`].
pub fn to_f16_safetensors(bytes: &[u8]) -> Result<Vec<u8>, WeightsError> {
    check_header(bytes)?;
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| WeightsError::Format(e.to_string()))?;
    let file = SafeTensors::deserialize(bytes).map_err(|e| WeightsError::Format(e.to_string()))?;
    let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, view) in file.tensors() {
        let (dtype, data) = match view.dtype() {
            Dtype::F32 | Dtype::BF16 | Dtype::F16 => {
                let values = to_f32(&view).map_err(|e| WeightsError::Tensor(format!("tensor `{name}`: {e}")))?;
                if let Some(v) = values.iter().find(|v| v.is_finite() && half::f16::from_f32(**v).is_infinite()) {
                    return Err(WeightsError::Tensor(format!("tensor `{name}`: {v} does not fit in f16 (max 65504)")));
                }
                (Dtype::F16, values.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect())
            }
            other => (other, view.data().to_vec()),
        };
        tensors.push((name, dtype, view.shape().to_vec(), data));
    }
    let mut views = Vec::with_capacity(tensors.len());
    for (name, dtype, shape, data) in &tensors {
        let view = TensorView::new(*dtype, shape.clone(), data).map_err(|e| WeightsError::Format(e.to_string()))?;
        views.push((name.clone(), view));
    }
    safetensors::serialize(views, header.metadata().clone()).map_err(|e| WeightsError::Format(e.to_string()))
}

/// Reads every tensor a model of `config` needs from `source` (e.g. seeded random weights) into
/// [`NamedTensor`]s, in HF layout.
pub fn collect_tensors(config: &BertConfig, source: &mut dyn WeightSource) -> Result<Vec<NamedTensor>, WeightsError> {
    mlr_model::tensor_names(config)
        .into_iter()
        .map(|(name, shape)| {
            let values = source.get(&name, &shape)?;
            Ok(NamedTensor { name, shape, values })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::tensor::{Int, Tensor, TensorData};
    use mlr_model::SeededWeights;

    type B = NdArray<f32>;

    fn tiny() -> BertConfig {
        BertConfig::new(50, 8, 2, 2, 16)
    }

    #[test]
    fn round_trip_gives_the_same_model() {
        let config = tiny();
        let tensors = collect_tensors(&config, &mut SeededWeights::new(3, 0.2)).unwrap();
        let bytes = write_safetensors(&tensors).unwrap();
        let device = Default::default();
        let loaded = load_bert::<B>(&config, &bytes, &device).unwrap();
        // The same tensors handed over by name, without safetensors in between.
        struct ByName(Vec<NamedTensor>);
        impl WeightSource for ByName {
            fn get(&mut self, name: &str, _shape: &[usize]) -> Result<Vec<f32>, WeightError> {
                let missing = || WeightError::Missing { name: name.to_string() };
                Ok(self.0.iter().find(|t| t.name == name).ok_or_else(missing)?.values.clone())
            }
        }
        let direct = BertModel::<B>::from_source(&config, &mut ByName(tensors), &device).unwrap();
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(vec![0i64, 7, 9, 2], [1, 4]), &device);
        let mask = Tensor::<B, 2>::ones([1, 4], &device);
        let a: Vec<f32> = loaded.forward(ids.clone(), mask.clone()).into_data().to_vec().unwrap();
        let b: Vec<f32> = direct.forward(ids, mask).into_data().to_vec().unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn errors_name_the_tensor() {
        let config = tiny();
        let mut tensors = collect_tensors(&config, &mut SeededWeights::new(3, 0.2)).unwrap();
        tensors.retain(|t| t.name != "encoder.layer.1.output.dense.bias");
        let bytes = write_safetensors(&tensors).unwrap();
        let err = load_bert::<B>(&config, &bytes, &Default::default()).unwrap_err();
        assert!(err.to_string().contains("`encoder.layer.1.output.dense.bias` is missing"), "{err}");

        let mut wrong = tiny();
        wrong.intermediate_size = 12;
        let full = write_safetensors(&collect_tensors(&config, &mut SeededWeights::new(3, 0.2)).unwrap()).unwrap();
        let err = load_bert::<B>(&wrong, &full, &Default::default()).unwrap_err();
        assert!(err.to_string().contains("intermediate.dense.weight` has shape [16, 8]"), "{err}");

        let err = load_bert::<B>(&config, &full[..full.len() / 2], &Default::default()).unwrap_err();
        assert!(matches!(err, WeightsError::Format(_)), "{err}");
    }

    #[test]
    fn a_non_finite_weight_is_an_error() {
        let config = tiny();
        for bad in [f32::NAN, f32::INFINITY] {
            let mut tensors = collect_tensors(&config, &mut SeededWeights::new(3, 0.2)).unwrap();
            let t = tensors.iter_mut().find(|t| t.name == "encoder.layer.0.attention.self.key.weight").unwrap();
            t.values[5] = bad;
            let err = load_bert::<B>(&config, &write_safetensors(&tensors).unwrap(), &Default::default()).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("model.safetensors: tensor `encoder.layer.0.attention.self.key.weight`: value {bad} at index 5 is not finite")
            );
        }
    }

    #[test]
    fn a_config_with_fewer_layers_than_the_file_is_an_error() {
        let file = write_safetensors(&collect_tensors(&tiny(), &mut SeededWeights::new(3, 0.2)).unwrap()).unwrap();
        let one_layer = BertConfig::new(50, 8, 1, 2, 16);
        let err = load_bert::<B>(&one_layer, &file, &Default::default()).unwrap_err().to_string();
        assert!(
            err.contains("16 encoder tensors (such as `encoder.layer.1.attention.output.LayerNorm.bias`) are not part of the model")
                && err.contains("num_hidden_layers = 1, but the file has more layers"),
            "{err}"
        );
        // Heads outside the encoder and the position-id buffer are not the encoder's business.
        let mut tensors = collect_tensors(&tiny(), &mut SeededWeights::new(3, 0.2)).unwrap();
        for name in ["pooler.dense.bias", "embeddings.position_ids"] {
            tensors.push(NamedTensor { name: name.into(), shape: vec![2], values: vec![0.0, 1.0] });
        }
        assert!(load_bert::<B>(&tiny(), &write_safetensors(&tensors).unwrap(), &Default::default()).is_ok());
    }

    #[test]
    fn a_header_naming_a_tensor_twice_or_overlong_is_an_error() {
        let entry = r#""a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}"#;
        let file = |header: String| {
            let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
            bytes.extend(header.as_bytes());
            bytes.extend([0u8; 4]);
            bytes
        };
        let err = SafetensorsSource::new(&file(format!("{{{entry},{entry}}}"))).err().unwrap().to_string();
        assert_eq!(err, "model.safetensors: the header lists tensor `a` twice");
        let mut long = file(format!("{{{entry}}}"));
        long[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        let err = SafetensorsSource::new(&long).err().unwrap().to_string();
        assert!(err.contains("the header says it is 18446744073709551615 bytes long, but only"), "{err}");
        assert!(SafetensorsSource::new(&[1, 2, 3]).is_err());
    }

    #[test]
    fn f16_conversion_halves_the_file_and_rounds_each_value() {
        let config = tiny();
        let tensors = collect_tensors(&config, &mut SeededWeights::new(7, 0.5)).unwrap();
        let f32_bytes = write_safetensors(&tensors).unwrap();
        let f16_bytes = to_f16_safetensors(&f32_bytes).unwrap();
        assert!(f16_bytes.len() < f32_bytes.len() / 2 + 4096, "{} vs {}", f16_bytes.len(), f32_bytes.len());
        let mut source = SafetensorsSource::new(&f16_bytes).unwrap();
        for t in &tensors {
            let got = source.get(&t.name, &t.shape).unwrap();
            for (g, w) in got.iter().zip(&t.values) {
                assert_eq!(*g, half::f16::from_f32(*w).to_f32(), "{}", t.name);
            }
        }
        // Converting again changes nothing.
        assert_eq!(to_f16_safetensors(&f16_bytes).unwrap(), f16_bytes);
        // A value beyond f16's range is an error naming the tensor, not a silent infinity.
        let mut big = tensors.clone();
        big[0].values[3] = 1e6;
        let err = to_f16_safetensors(&write_safetensors(&big).unwrap()).unwrap_err().to_string();
        assert!(err.contains(&big[0].name) && err.contains("does not fit in f16"), "{err}");
    }

    #[test]
    fn reads_prefixed_f16_checkpoints() {
        let config = tiny();
        let tensors = collect_tensors(&config, &mut SeededWeights::new(5, 0.2)).unwrap();
        let halves: Vec<Vec<u8>> = tensors
            .iter()
            .map(|t| t.values.iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect())
            .collect();
        let views: Vec<(String, TensorView<'_>)> = tensors
            .iter()
            .zip(&halves)
            .map(|(t, d)| (format!("bert.{}", t.name), TensorView::new(Dtype::F16, t.shape.clone(), d).unwrap()))
            .collect();
        let bytes = safetensors::serialize(views, None).unwrap();
        let mut source = SafetensorsSource::new(&bytes).unwrap();
        let got = source.get("embeddings.LayerNorm.bias", &[8]).unwrap();
        let want = &tensors.iter().find(|t| t.name == "embeddings.LayerNorm.bias").unwrap().values;
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-3, "{g} vs {w}");
        }
        load_bert::<B>(&config, &bytes, &Default::default()).unwrap();
    }
}
