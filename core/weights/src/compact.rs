//! The web demo's compact weights ([`to_demo_safetensors`]): Q4_0 wherever Q4_0 holds a matrix
//! exactly, the word table in pieces beside the file ([`crate::words`]), and for a fine-tuned
//! model only what differs from its base (tensors equal to the base's are left to it, matrices
//! stored as the Q8_0 difference from the base's). Everything written here reads back through
//! [`crate::SafetensorsSource`] / [`crate::load_bert_files`].

use std::sync::Arc;

use safetensors::tensor::{Dtype, TensorView};

use crate::quant::{self, Quant};
use crate::words::{WordTable, WordsLayout, WORDS_KEY};
use crate::{delta_key, sha256_hex, SafetensorsSource, WeightsError, BASE_PATH_KEY, BASE_SHA256_KEY, WORD_TABLE};
use mlr_model::WeightSource;

/// How [`to_demo_safetensors`] stores a matrix that Q4_0 cannot hold exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossyMatrices {
    /// Kept exact: f32, and f32 for the vectors (biases, LayerNorm) too.
    F32,
    /// IEEE half floats (2 bytes per value).
    F16,
    /// A block format ([`Quant`]).
    Quant(Quant),
}

/// What [`to_demo_safetensors`] did with one tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTensor {
    /// The tensor's name.
    pub name: String,
    /// `q4_0` (lossless), `q8_0`, `f16`, or `base` (left to the base model: identical there).
    pub format: String,
    /// Bytes it takes in the file (0 when left to the base).
    pub bytes: usize,
}

/// The base model a [`to_demo_safetensors`] file may leave tensors to.
pub struct DemoBase<'a> {
    /// The base's shipped `model.safetensors`.
    pub file: &'a [u8],
    /// That file relative to the new file's directory (recorded for native readers).
    pub path: &'a str,
    /// The base's word table, when the base keeps it in pieces (every piece loaded).
    pub words: Option<Arc<WordTable>>,
}

/// How [`to_demo_safetensors`] stores what Q4_0 cannot hold exactly, and the word table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoOptions {
    /// Matrices off the Q4_0 grid (and the vectors, see [`LossyMatrices`]).
    pub lossy: LossyMatrices,
    /// Rows per piece of a Q4_0 word table kept beside the file ([`words`]); `None` keeps it in.
    pub word_pieces: Option<usize>,
}

/// What [`to_demo_safetensors`] writes.
#[derive(Debug, Clone)]
pub struct DemoWeights {
    /// The safetensors file.
    pub file: Vec<u8>,
    /// What was done with each tensor.
    pub stored: Vec<StoredTensor>,
    /// The word table's layout and pieces, when it was split off.
    pub words: Option<(WordsLayout, Vec<Vec<u8>>)>,
}

/// Rewrites a safetensors file compactly for the web demo:
/// - a tensor bit for bit equal to the same tensor of `base` (a fine-tuned model's frozen word
///   table) is left out; the file's metadata then names the base's sha256 and `base_path` (the
///   base's file relative to this one's directory), and it loads with
///   [`SafetensorsSource::with_base`] / [`load_bert_with_base`];
/// - a matrix whose rows are whole Q4_0 blocks and which Q4_0 holds exactly (the default model's,
///   which are dequantised Q4_0) is stored as Q4_0: 4.5 bits per value, no loss;
/// - any other matrix as `lossy` says; under a block format, a matrix the base also has is stored
///   as its difference from the base's (marked by the metadata key [`delta_key`]); vectors
///   (biases, LayerNorm) as f32 under
///   [`LossyMatrices::F32`], else as f16.
///
/// - with [`DemoOptions::word_pieces`], a word table stored as Q4_0 goes to pieces of that many
///   rows ([`words`]) instead of the file, whose metadata records their layout.
///
/// Returns the file, what was done with each tensor and the word table's pieces.
pub fn to_demo_safetensors(
    bytes: &[u8],
    base: Option<DemoBase<'_>>,
    options: &DemoOptions,
) -> Result<DemoWeights, WeightsError> {
    let lossy = options.lossy;
    let mut source = SafetensorsSource::new(bytes)?;
    if source.needs_base() || source.metadata.contains_key(WORDS_KEY) {
        return Err(WeightsError::Format("the input is a compact file: give a full model".into()));
    }
    let mut base_source = match &base {
        None => None,
        Some(b) => {
            let mut s = SafetensorsSource::new(b.file)?;
            if let Some(words) = &b.words {
                s.attach_words(words.clone());
            }
            Some(s)
        }
    };
    let mut metadata = source.metadata.clone();
    metadata.retain(|k, _| !k.starts_with("mlr."));
    let mut pieces = None;
    let mut stored = Vec::new();
    let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut names = source.names();
    names.sort_unstable();
    for full in names {
        let view = source.file.tensor(&full).map_err(|e| WeightsError::Format(e.to_string()))?;
        let shape = view.shape().to_vec();
        let Some(name) = full.strip_prefix(source.prefix.as_str()).map(str::to_string) else { continue };
        if !matches!(view.dtype(), Dtype::F32 | Dtype::F16 | Dtype::BF16) && !metadata_has_quant(&source, &full) {
            continue; // integer buffers (`position_ids`) are not weights
        }
        let logical = logical_shape(&source, &full, &shape)?;
        let values = source.get(&name, &logical)?;
        let theirs = base_source.as_mut().and_then(|b| b.get(&name, &logical).ok());
        if theirs.as_ref().is_some_and(|t| t.iter().zip(&values).all(|(x, y)| x.to_bits() == y.to_bits())) {
            stored.push(StoredTensor { name: full, format: "base".into(), bytes: 0 });
            continue;
        }
        let matrix = logical.len() == 2 && logical[1].is_multiple_of(quant::BLOCK);
        // A fine-tuned matrix is a small step from the base's: quantising that step (its
        // difference) keeps the fine-tuning, where quantising the whole matrix would bury it
        // (Q8_0 of e5-small's matrices moves a query's vector to cosine 0.987).
        let mut delta = false;
        let blocks = match (matrix.then(|| quant::q4_0_lossless(&values)).flatten(), lossy, &theirs) {
            (Some(q4), _, _) => Some((Quant::Q4_0, q4)),
            (None, LossyMatrices::Quant(q), Some(base)) if matrix => {
                delta = true;
                let step: Vec<f32> = values.iter().zip(base).map(|(v, b)| v - b).collect();
                Some((q, q.encode(&step)))
            }
            (None, LossyMatrices::Quant(q), None) if matrix => Some((q, q.encode(&values))),
            _ => None,
        };
        if delta {
            metadata.insert(delta_key(&full), "base".into());
        } else {
            metadata.remove(&delta_key(&full));
        }
        if let (Some(rows_per_piece), Some((Quant::Q4_0, q4)), WORD_TABLE) =
            (options.word_pieces, &blocks, name.as_str())
        {
            let (layout, split) = WordsLayout::split(Quant::Q4_0, logical[0], logical[1], q4, rows_per_piece, |i| {
                format!("words-{i:03}.q4_0")
            });
            metadata.insert(WORDS_KEY.into(), serde_json::to_string(&layout).expect("serialises"));
            stored.push(StoredTensor { name: full, format: "q4_0 pieces".into(), bytes: q4.len() });
            pieces = Some((layout, split));
            continue;
        }
        let format = blocks.as_ref().map(|(q, _)| *q);
        let (dtype, data, out_shape) = match blocks {
            Some((q, data)) => (Dtype::U8, data, vec![logical[0], logical[1] / quant::BLOCK * q.block_bytes()]),
            None if lossy == LossyMatrices::F32 => {
                (Dtype::F32, values.iter().flat_map(|v| v.to_le_bytes()).collect(), logical.clone())
            }
            None => {
                if let Some(v) = values.iter().find(|v| half::f16::from_f32(**v).is_infinite()) {
                    return Err(WeightsError::Tensor(format!("tensor `{full}`: {v} does not fit in f16 (max 65504)")));
                }
                let data = values.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect();
                (Dtype::F16, data, logical.clone())
            }
        };
        match format {
            Some(q) => {
                metadata.insert(quant::metadata_key(&full), q.name().to_string());
            }
            None => {
                metadata.remove(&quant::metadata_key(&full));
            }
        }
        let mut label = format.map_or(if dtype == Dtype::F32 { "f32" } else { "f16" }, Quant::name).to_string();
        if delta {
            label += " delta";
        }
        stored.push(StoredTensor { name: full.clone(), format: label, bytes: data.len() });
        tensors.push((full, dtype, out_shape, data));
    }
    if let Some(b) = base {
        if stored.iter().any(|t| t.format == "base" || t.format.ends_with(" delta")) {
            metadata.insert(BASE_SHA256_KEY.into(), sha256_hex(b.file));
            metadata.insert(BASE_PATH_KEY.into(), b.path.to_string());
        }
    }
    let mut views = Vec::with_capacity(tensors.len());
    for (name, dtype, shape, data) in &tensors {
        let view = TensorView::new(*dtype, shape.clone(), data).map_err(|e| WeightsError::Format(e.to_string()))?;
        views.push((name.clone(), view));
    }
    let file = safetensors::serialize(views, Some(metadata)).map_err(|e| WeightsError::Format(e.to_string()))?;
    Ok(DemoWeights { file: sorted_header(file)?, stored, words: pieces })
}

/// The file with its JSON header's keys in sorted order. safetensors writes `__metadata__` in a
/// `HashMap`'s order, which changes from run to run: the same weights then gave a file with
/// another sha256 on every `mlr demo build`, and the page downloaded them again. The header keeps
/// its length (the same entries, reordered), so the data offsets stand.
fn sorted_header(mut file: Vec<u8>) -> Result<Vec<u8>, WeightsError> {
    use std::collections::BTreeMap;
    let bad = |e: String| WeightsError::Format(format!("sorting the header: {e}"));
    let n = u64::from_le_bytes(file[..8].try_into().expect("a serialised file has its 8-byte length")) as usize;
    let header = &file[8..8 + n];
    let mut top: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(header).map_err(|e| bad(e.to_string()))?;
    if let Some(meta) = top.remove("__metadata__") {
        let meta: BTreeMap<String, String> = serde_json::from_value(meta).map_err(|e| bad(e.to_string()))?;
        top.insert("__metadata__".into(), serde_json::to_value(meta).map_err(|e| bad(e.to_string()))?);
    }
    let sorted = serde_json::to_vec(&top).map_err(|e| bad(e.to_string()))?;
    if sorted.len() > n {
        return Err(bad(format!("{} bytes where the header has {n}", sorted.len())));
    }
    file[8..8 + sorted.len()].copy_from_slice(&sorted);
    file[8 + sorted.len()..8 + n].fill(b' ');
    Ok(file)
}

fn metadata_has_quant(source: &SafetensorsSource<'_>, full: &str) -> bool {
    source.metadata.contains_key(&quant::metadata_key(full))
}

/// The shape a stored tensor decodes to.
fn logical_shape(source: &SafetensorsSource<'_>, full: &str, stored: &[usize]) -> Result<Vec<usize>, WeightsError> {
    let Some(q) = source.metadata.get(&quant::metadata_key(full)) else { return Ok(stored.to_vec()) };
    match (Quant::from_name(q), stored) {
        (Some(q), [rows, bytes]) if bytes % q.block_bytes() == 0 => {
            Ok(vec![*rows, bytes / q.block_bytes() * quant::BLOCK])
        }
        _ => Err(WeightsError::Tensor(format!("tensor `{full}`: {q} with stored shape {stored:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        base_of, content_sha256, load_bert, load_bert_files, load_bert_with_base, words_layout, write_safetensors,
    };
    use crate::{collect_tensors, BaseRef, NamedTensor, WeightFiles};
    use burn::backend::NdArray;
    use burn::tensor::{Int, Tensor, TensorData};
    use mlr_model::{BertConfig, BertModel, SeededWeights};
    use safetensors::SafeTensors;
    use std::collections::HashMap;

    type B = NdArray<f32>;

    fn outputs(model: &BertModel<B>) -> Vec<f32> {
        let device = Default::default();
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(vec![0i64, 7, 9, 2, 41, 3], [2, 3]), &device);
        let mask = Tensor::<B, 2>::ones([2, 3], &device);
        model.forward(ids, mask).into_data().to_vec().unwrap()
    }

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
    }

    fn compact(
        bytes: &[u8],
        base: Option<DemoBase<'_>>,
        lossy: LossyMatrices,
        word_pieces: Option<usize>,
    ) -> DemoWeights {
        to_demo_safetensors(bytes, base, &DemoOptions { lossy, word_pieces }).unwrap()
    }

    /// A 32-wide model whose matrices are dequantised Q4_0, as the converted default model's are.
    fn q4_grid_model() -> (BertConfig, Vec<NamedTensor>) {
        let config = BertConfig::new(50, 32, 2, 2, 64);
        let mut tensors = collect_tensors(&config, &mut SeededWeights::new(5, 0.2)).unwrap();
        for t in tensors.iter_mut().filter(|t| t.shape.len() == 2) {
            t.values = Quant::Q4_0.decode(&Quant::Q4_0.encode(&t.values)).unwrap();
        }
        (config, tensors)
    }

    #[test]
    fn the_demo_format_stores_q4_grid_matrices_as_q4_0_without_loss() {
        let (config, tensors) = q4_grid_model();
        let f32_file = write_safetensors(&tensors).unwrap();
        let DemoWeights { file: demo, stored, .. } = compact(&f32_file, None, LossyMatrices::Quant(Quant::Q8_0), None);
        // The same weights give the same bytes (the metadata's keys sorted, not in the order of a
        // HashMap, whose seed differs per map), so a rebuilt demo is not downloaded again.
        for _ in 0..4 {
            assert_eq!(compact(&f32_file, None, LossyMatrices::Quant(Quant::Q8_0), None).file, demo);
        }
        for t in &stored {
            let matrix = tensors.iter().find(|n| n.name == t.name).unwrap().shape.len() == 2;
            assert_eq!(t.format, if matrix { "q4_0" } else { "f16" }, "{}", t.name);
        }
        let device = Default::default();
        let original = load_bert::<B>(&config, &f32_file, &device).unwrap();
        let small = load_bert::<B>(&config, &demo, &device).unwrap();
        // Every matrix decodes to the same bits; only the f16 vectors move the output.
        let mut source = SafetensorsSource::new(&demo).unwrap();
        for t in tensors.iter().filter(|t| t.shape.len() == 2) {
            let back = source.get(&t.name, &t.shape).unwrap();
            assert!(back.iter().zip(&t.values).all(|(a, b)| a.to_bits() == b.to_bits()), "{}", t.name);
        }
        assert!(max_diff(&outputs(&original), &outputs(&small)) < 2e-2);
        assert!(demo.len() * 5 < f32_file.len(), "{} vs {} bytes", demo.len(), f32_file.len());
        // Kept exact: Q4_0 for the matrices, f32 for the rest, the same model to the bit, and
        // the same content digest; the f16 copy has another.
        let DemoWeights { file: exact, stored, .. } = compact(&f32_file, None, LossyMatrices::F32, None);
        assert!(stored.iter().all(|t| t.format == "q4_0" || t.format == "f32"));
        assert_eq!(outputs(&original), outputs(&load_bert::<B>(&config, &exact, &device).unwrap()));
        let digest = content_sha256(&config, WeightFiles::of(&f32_file)).unwrap();
        assert_eq!(content_sha256(&config, WeightFiles::of(&exact)).unwrap(), digest);
        assert_ne!(content_sha256(&config, WeightFiles::of(&demo)).unwrap(), digest);
    }

    #[test]
    fn a_fine_tuned_model_leaves_its_frozen_word_table_to_the_base() {
        let (config, base_tensors) = q4_grid_model();
        let base_f32 = write_safetensors(&base_tensors).unwrap();
        let base_demo = compact(&base_f32, None, LossyMatrices::F16, None).file;
        // "Fine-tuned": every tensor but the word table moved off the Q4_0 grid.
        let mut tuned = base_tensors.clone();
        for t in tuned.iter_mut().filter(|t| t.name != "embeddings.word_embeddings.weight") {
            for (i, v) in t.values.iter_mut().enumerate() {
                *v += 1e-3 * ((i % 7) as f32 - 3.0);
            }
        }
        let tuned_f32 = write_safetensors(&tuned).unwrap();
        let base = DemoBase { file: &base_demo, path: "../base/model.safetensors", words: None };
        let DemoWeights { file: demo, stored, .. } =
            compact(&tuned_f32, Some(base), LossyMatrices::Quant(Quant::Q8_0), None);
        let format = |name: &str| stored.iter().find(|t| t.name == name).unwrap().format.clone();
        assert_eq!(format("embeddings.word_embeddings.weight"), "base");
        assert_eq!(format("encoder.layer.0.attention.self.query.weight"), "q8_0 delta");
        assert_eq!(format("encoder.layer.0.attention.self.query.bias"), "f16");
        assert_eq!(
            base_of(&demo).unwrap(),
            Some(BaseRef { sha256: sha256_hex(&base_demo), path: "../base/model.safetensors".into() })
        );

        let device = Default::default();
        let reference = outputs(&load_bert::<B>(&config, &tuned_f32, &device).unwrap());
        let loaded = load_bert_with_base::<B>(&config, &demo, Some(&base_demo), &device).unwrap();
        assert!(max_diff(&reference, &outputs(&loaded)) < 2e-2);
        // The stored difference keeps the fine-tuning step to within half a Q8_0 step of it.
        let name = "encoder.layer.0.attention.self.query.weight";
        let want = &tuned.iter().find(|t| t.name == name).unwrap().values;
        let got = SafetensorsSource::with_base(&demo, &base_demo).unwrap().get(name, &[32, 32]).unwrap();
        assert!(max_diff(want, &got) <= 3e-3 / 254.0 * 1.01 + 1e-6, "{}", max_diff(want, &got));

        let err = load_bert::<B>(&config, &demo, &device).unwrap_err().to_string();
        assert!(err.contains("embeddings.word_embeddings.weight") && err.contains("base model"), "{err}");
        let err = load_bert_with_base::<B>(&config, &demo, Some(&base_f32), &device).unwrap_err().to_string();
        assert!(err.contains("sha256"), "{err}");
        // A base need not be given to a file that names none.
        assert!(load_bert_with_base::<B>(&config, &base_demo, Some(&tuned_f32), &device).is_ok());
    }

    #[test]
    fn a_word_table_in_pieces_gives_the_same_model_and_digest_and_serves_a_fine_tuned_model() {
        let (config, base_tensors) = q4_grid_model();
        let base_f32 = write_safetensors(&base_tensors).unwrap();
        let DemoWeights { file, stored, words } = compact(&base_f32, None, LossyMatrices::F32, Some(16));
        let (layout, pieces) = words.unwrap();
        assert_eq!(stored.iter().find(|t| t.name == WORD_TABLE).unwrap().format, "q4_0 pieces");
        assert_eq!((layout.rows, layout.rows_per_piece, pieces.len()), (50, 16, 4));
        assert_eq!(words_layout(&file).unwrap(), Some(layout.clone()));
        let table = Arc::new(WordTable::new(layout).unwrap());
        let device = Default::default();
        // Without the pieces the model is built without a table; the digest needs every piece.
        let files = WeightFiles { safetensors: &file, base: None, words: Some(&table) };
        let model = load_bert_files::<B>(&config, files, &device).unwrap();
        assert!(!model.has_word_table());
        assert!(content_sha256(&config, files).unwrap_err().to_string().contains("not loaded"));
        for (i, p) in pieces.iter().enumerate() {
            table.insert(i, p.clone()).unwrap();
        }
        assert_eq!(
            content_sha256(&config, files).unwrap(),
            content_sha256(&config, WeightFiles::of(&base_f32)).unwrap()
        );
        // The model run from gathered rows is the full model, to the bit.
        let ids = [0u32, 7, 9, 2, 41, 3];
        let words = Tensor::<B, 3>::from_data(TensorData::new(table.gather(&ids).unwrap(), [2, 3, 32]), &device);
        let mask = Tensor::<B, 2>::ones([2, 3], &device);
        let from_rows: Vec<f32> = model.forward_words(words, mask).into_data().to_vec().unwrap();
        assert_eq!(from_rows, outputs(&load_bert::<B>(&config, &base_f32, &device).unwrap()));

        // A fine-tuned model leaves the table to this base, whose pieces it reads through it.
        let mut tuned = base_tensors.clone();
        for t in tuned.iter_mut().filter(|t| t.name != WORD_TABLE) {
            t.values.iter_mut().for_each(|v| *v += 1e-3);
        }
        let tuned_f32 = write_safetensors(&tuned).unwrap();
        let base = DemoBase { file: &file, path: "../base/model.safetensors", words: Some(table.clone()) };
        let out = compact(&tuned_f32, Some(base), LossyMatrices::Quant(Quant::Q8_0), Some(16));
        assert!(out.words.is_none(), "the table is the base's");
        let files = WeightFiles { safetensors: &out.file, base: Some(&file), words: Some(&table) };
        assert_eq!(files.words_layout().unwrap().map(|l| l.rows), Some(50));
        assert!(!load_bert_files::<B>(&config, files, &device).unwrap().has_word_table());
        assert!(content_sha256(&config, files).is_ok());
    }

    #[test]
    fn a_quantised_tensor_with_a_bad_shape_or_format_is_an_error() {
        let (config, tensors) = q4_grid_model();
        let demo = compact(&write_safetensors(&tensors).unwrap(), None, LossyMatrices::F16, None).file;
        let (_, header) = SafeTensors::read_metadata(&demo).unwrap();
        let file = SafeTensors::deserialize(&demo).unwrap();
        let rebuild = |metadata: HashMap<String, String>| {
            let views: Vec<(String, TensorView)> = file.tensors();
            safetensors::serialize(views, Some(metadata)).unwrap()
        };
        let key = quant::metadata_key("encoder.layer.1.output.dense.weight");
        let mut metadata = header.metadata().clone().unwrap();
        metadata.insert(key.clone(), "q3_k".into());
        let err = load_bert::<B>(&config, &rebuild(metadata.clone()), &Default::default()).unwrap_err().to_string();
        assert!(err.contains("output.dense.weight") && err.contains("unknown quantisation `q3_k`"), "{err}");
        metadata.insert(key, "q8_0".into());
        let err = load_bert::<B>(&config, &rebuild(metadata), &Default::default()).unwrap_err().to_string();
        assert!(err.contains("output.dense.weight"), "{err}");
    }
}
