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

mod compact;
pub mod quant;
pub mod words;
pub use compact::{to_demo_safetensors, DemoBase, DemoOptions, DemoWeights, LossyMatrices, StoredTensor};
pub use quant::Quant;
pub use words::{WordTable, WordsError, WordsLayout, WORDS_KEY};

use std::sync::Arc;

/// The word table's tensor name.
pub const WORD_TABLE: &str = "embeddings.word_embeddings.weight";

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
///
/// A file written by [`to_demo_safetensors`] may leave out the tensors it shares with a base
/// model (its metadata names the base's sha256): [`SafetensorsSource::with_base`] reads those from
/// the base's file.
pub struct SafetensorsSource<'a> {
    file: SafeTensors<'a>,
    prefix: String,
    metadata: HashMap<String, String>,
    base: Option<Box<SafetensorsSource<'a>>>,
    words: Option<Arc<WordTable>>,
}

/// The word-table layout of a weights file whose table is kept in pieces ([`words`]), if it is.
pub fn words_layout(bytes: &[u8]) -> Result<Option<WordsLayout>, WeightsError> {
    check_header(bytes)?;
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| WeightsError::Format(e.to_string()))?;
    let Some(text) = header.metadata().as_ref().and_then(|m| m.get(WORDS_KEY)) else { return Ok(None) };
    let layout: WordsLayout =
        serde_json::from_str(text).map_err(|e| WeightsError::Format(format!("metadata `{WORDS_KEY}`: {e}")))?;
    WordTable::new(layout.clone())?;
    Ok(Some(layout))
}

/// Metadata key marking tensor `name` as stored as its difference from the base's tensor.
pub fn delta_key(name: &str) -> String {
    format!("mlr.delta.{name}")
}

/// Metadata key of a file that leaves tensors to its base: the base file's sha256.
pub const BASE_SHA256_KEY: &str = "mlr.base.sha256";
/// Metadata key of a file that leaves tensors to its base: the base file's path, relative to the
/// directory of the file itself (for native readers; the web demo's manifest names the base).
pub const BASE_PATH_KEY: &str = "mlr.base.path";

/// The base model a [`to_demo_safetensors`] file refers to, from its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseRef {
    /// sha256 (lower-case hex) of the base's `model.safetensors`.
    pub sha256: String,
    /// The base's file, relative to the directory of the file that names it.
    pub path: String,
}

/// Reads the base reference of a safetensors file, if it has one.
pub fn base_of(bytes: &[u8]) -> Result<Option<BaseRef>, WeightsError> {
    check_header(bytes)?;
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| WeightsError::Format(e.to_string()))?;
    let Some(metadata) = header.metadata() else { return Ok(None) };
    match (metadata.get(BASE_SHA256_KEY), metadata.get(BASE_PATH_KEY)) {
        (None, None) => Ok(None),
        (Some(sha256), Some(path)) => Ok(Some(BaseRef { sha256: sha256.clone(), path: path.clone() })),
        _ => Err(WeightsError::Format(format!("metadata has only one of `{BASE_SHA256_KEY}` and `{BASE_PATH_KEY}`"))),
    }
}

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
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
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| WeightsError::Format(e.to_string()))?;
        let metadata = header.metadata().clone().unwrap_or_default();
        let file = SafeTensors::deserialize(bytes).map_err(|e| WeightsError::Format(e.to_string()))?;
        // A file that leaves the word table to its base still has the first layer's query.
        let keys = ["embeddings.word_embeddings.weight", "encoder.layer.0.attention.self.query.weight"];
        let prefix = ["", "bert.", "roberta.", "model."]
            .into_iter()
            .find(|p| keys.iter().any(|key| file.names().contains(&format!("{p}{key}").as_str())))
            .ok_or_else(|| {
                WeightsError::Tensor(format!("no `{}` tensor (with or without a bert./roberta. prefix)", keys[0]))
            })?;
        if metadata.contains_key(BASE_SHA256_KEY) {
            base_of(bytes)?;
        }
        Ok(Self { file, prefix: prefix.to_string(), metadata, base: None, words: None })
    }

    /// Gives the word table kept in pieces to whichever of this file and its base keeps its table
    /// so ([`words`]); reading the table then gathers every row (all pieces must be loaded).
    pub fn attach_words(&mut self, table: Arc<WordTable>) {
        if self.metadata.contains_key(WORDS_KEY) {
            self.words = Some(table);
        } else if let Some(base) = &mut self.base {
            base.attach_words(table);
        }
    }

    /// Like [`new`](Self::new), reading the tensors `bytes` leaves out from `base`, whose sha256
    /// must be the one `bytes` names. A file that names no base is read as it is.
    pub fn with_base(bytes: &'a [u8], base: &'a [u8]) -> Result<Self, WeightsError> {
        let mut source = Self::new(bytes)?;
        if let Some(wanted) = source.metadata.get(BASE_SHA256_KEY) {
            let found = sha256_hex(base);
            if *wanted != found {
                return Err(WeightsError::Format(format!(
                    "the base model's file has sha256 {found}, this file was made from {wanted}"
                )));
            }
            source.base = Some(Box::new(Self::new(base)?));
        }
        Ok(source)
    }

    /// Whether the file leaves tensors to a base model it has not been given.
    pub fn needs_base(&self) -> bool {
        self.metadata.contains_key(BASE_SHA256_KEY) && self.base.is_none()
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
        if name == WORD_TABLE && self.metadata.contains_key(WORDS_KEY) {
            let values = match &self.words {
                None => Err("kept in pieces beside the file (metadata `mlr.words`), which were not read".to_string()),
                Some(t) => {
                    let l = t.layout();
                    if shape != [l.rows, l.hidden] {
                        return Err(WeightError::Shape {
                            name: full,
                            found: vec![l.rows, l.hidden],
                            expected: shape.to_vec(),
                        });
                    }
                    let ids: Vec<u32> = (0..l.rows as u32).collect();
                    t.gather(&ids).map_err(|e| e.to_string())
                }
            };
            return values.map_err(|message| WeightError::Values { name: full, message });
        }
        let Ok(view) = self.file.tensor(&full) else {
            return match &mut self.base {
                Some(base) => base.get(name, shape),
                None if self.metadata.contains_key(BASE_SHA256_KEY) => Err(WeightError::Values {
                    name: full,
                    message: "this file leaves it to its base model, which was not given".into(),
                }),
                None => Err(WeightError::Missing { name: full }),
            };
        };
        let quant = match self.metadata.get(&quant::metadata_key(&full)) {
            None => None,
            Some(q) => Some(Quant::from_name(q).ok_or_else(|| WeightError::Values {
                name: full.clone(),
                message: format!("unknown quantisation `{q}` (q4_0, q8_0)"),
            })?),
        };
        let found = match (quant, view.shape()) {
            (None, s) => s.to_vec(),
            (Some(q), [rows, bytes]) if bytes % q.block_bytes() == 0 => {
                vec![*rows, bytes / q.block_bytes() * quant::BLOCK]
            }
            (Some(q), s) => {
                let message = format!("a {} tensor must be [rows, whole blocks of bytes], not {s:?}", q.name());
                return Err(WeightError::Values { name: full, message });
            }
        };
        if found != shape {
            return Err(WeightError::Shape { name: full, found, expected: shape.to_vec() });
        }
        let values = match quant {
            None => to_f32(&view),
            Some(q) if view.dtype() == Dtype::U8 => Ok(q.decode(view.data()).expect("whole blocks, checked above")),
            Some(q) => Err(format!("a {} tensor is stored as u8, not {:?}", q.name(), view.dtype())),
        }
        .map_err(|message| WeightError::Values { name: full.clone(), message })?;
        // A difference from the base's tensor (a fine-tuned matrix): the base's values are added.
        let values = match (self.metadata.contains_key(&delta_key(&full)), &mut self.base) {
            (false, _) => values,
            (true, Some(base)) => base.get(name, shape)?.iter().zip(values).map(|(b, d)| b + d).collect(),
            (true, None) => {
                let message = "stored as a difference from its base model, which was not given".to_string();
                return Err(WeightError::Values { name: full, message });
            }
        };
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
    load_bert_with_base(config, safetensors, None, device)
}

/// Refuses a file with encoder tensors the config does not use.
fn check_config_fits(source: &SafetensorsSource<'_>, config: &BertConfig) -> Result<(), WeightsError> {
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
    Ok(())
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

/// The files a model's weights come in: its `model.safetensors`, the base's when it leaves
/// tensors to one ([`to_demo_safetensors`]), and the word table when that is kept in pieces.
#[derive(Debug, Clone, Copy)]
pub struct WeightFiles<'a> {
    /// `model.safetensors`.
    pub safetensors: &'a [u8],
    /// The base model's `model.safetensors`, checked against the sha256 the file names.
    pub base: Option<&'a [u8]>,
    /// The word table in pieces, when this file or its base keeps it so.
    pub words: Option<&'a Arc<WordTable>>,
}

impl<'a> WeightFiles<'a> {
    /// A plain file.
    pub fn of(safetensors: &'a [u8]) -> Self {
        Self { safetensors, base: None, words: None }
    }

    fn source(&self) -> Result<SafetensorsSource<'a>, WeightsError> {
        let mut source = match self.base {
            Some(base) => SafetensorsSource::with_base(self.safetensors, base)?,
            None => SafetensorsSource::new(self.safetensors)?,
        };
        if let Some(words) = self.words {
            source.attach_words(words.clone());
        }
        Ok(source)
    }

    /// The layout of the word table when this file, or its base, keeps it in pieces.
    pub fn words_layout(&self) -> Result<Option<WordsLayout>, WeightsError> {
        match words_layout(self.safetensors)? {
            Some(layout) => Ok(Some(layout)),
            None => self.base.map(words_layout).transpose().map(Option::flatten),
        }
    }
}

/// [`load_bert`] for a file that may leave tensors to a base model (see [`to_demo_safetensors`]):
/// `base` is the base's `model.safetensors`, checked against the sha256 the file names.
pub fn load_bert_with_base<B: Backend>(
    config: &BertConfig,
    safetensors: &[u8],
    base: Option<&[u8]>,
    device: &B::Device,
) -> Result<BertModel<B>, WeightsError> {
    load_bert_files(config, WeightFiles { safetensors, base, words: None }, device)
}

/// Builds a [`BertModel`] from [`WeightFiles`]. When the word table is kept in pieces the model
/// is built without it ([`BertModel::from_source_without_words`]): its caller looks words up in
/// the [`WordTable`] and runs [`BertModel::forward_words`].
pub fn load_bert_files<B: Backend>(
    config: &BertConfig,
    files: WeightFiles<'_>,
    device: &B::Device,
) -> Result<BertModel<B>, WeightsError> {
    let mut source = files.source()?;
    check_config_fits(&source, config)?;
    if let Some(layout) = files.words_layout()? {
        if [layout.rows, layout.hidden] != [config.vocab_size, config.hidden_size] {
            return Err(WeightsError::Tensor(format!(
                "the word table's pieces hold {} rows of {}, config.json says {} of {}",
                layout.rows, layout.hidden, config.vocab_size, config.hidden_size
            )));
        }
        return Ok(BertModel::from_source_without_words(config, &mut source, device)?);
    }
    Ok(BertModel::from_source(config, &mut source, device)?)
}

/// A digest of the model's content rather than its file: sha256 over every tensor a model of
/// `config` reads (its name, shape and values decoded to f32, in [`mlr_model::tensor_names`]
/// order). The same weights in f32, Q4_0-where-exact, left partly to a base or with the word
/// table in pieces give one digest; any change of a value gives another. Caches keyed by it
/// survive a lossless change of format. A word table in pieces must be complete.
pub fn content_sha256(config: &BertConfig, files: WeightFiles<'_>) -> Result<String, WeightsError> {
    use sha2::{Digest, Sha256};
    let mut source = files.source()?;
    let mut h = Sha256::new();
    for (name, shape) in mlr_model::tensor_names(config) {
        let values = source.get(&name, &shape)?;
        h.update((name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        for d in &shape {
            h.update((*d as u64).to_le_bytes());
        }
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        h.update(&bytes);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
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
