//! Fuzz targets of `tokenizer.json` loading (see mlr-fuzz): damaged WordPiece and Unigram files,
//! and the SentencePiece charsmap an XLM-R file carries in base64, each followed, when it loads,
//! through tokenising odd texts into batches.

use base64::Engine;
use mlr_fuzz::proptest::collection::vec;
use mlr_fuzz::proptest::prelude::any;
use mlr_fuzz::{binary, check, text, Bytes, Violation};
use mlr_tokenize::{Overflow, Role, TextTokenizer};

#[global_allocator]
static ALLOC: mlr_fuzz::LimitedAlloc = mlr_fuzz::LimitedAlloc;

/// A BERT-style WordPiece file (lower-casing normaliser, `[CLS] … [SEP]`).
const WORDPIECE: &str = r###"{"version": "1.0", "truncation": null, "padding": null,
 "added_tokens": [
  {"id": 0, "content": "[PAD]", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
  {"id": 1, "content": "[UNK]", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
  {"id": 2, "content": "[CLS]", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
  {"id": 3, "content": "[SEP]", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}],
 "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true, "strip_accents": null, "lowercase": true},
 "pre_tokenizer": {"type": "BertPreTokenizer"},
 "post_processor": {"type": "TemplateProcessing",
  "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
  "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "[SEP]", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}, {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
  "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]}, "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}},
 "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
 "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100,
  "vocab": {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "query": 4, ":": 5, "passage": 6, "gr": 7, "##oß": 8,
   "##e": 9, "日": 10, "本": 11, "a": 12, "##b": 13, "x": 14, "y": 15}}}"###;

/// An XLM-R-style Unigram file around a base64 charsmap (`CHARSMAP` is replaced).
const UNIGRAM: &str = r###"{"version": "1.0", "truncation": null, "padding": null,
 "added_tokens": [
  {"id": 0, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
  {"id": 1, "content": "<pad>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
  {"id": 2, "content": "</s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
  {"id": 3, "content": "<unk>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
  {"id": 11, "content": "<mask>", "single_word": false, "lstrip": true, "rstrip": false, "normalized": false, "special": true}],
 "normalizer": {"type": "Sequence", "normalizers": [{"type": "Precompiled", "precompiled_charsmap": "CHARSMAP"},
  {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}]},
 "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true},
 "post_processor": {"type": "TemplateProcessing",
  "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}],
  "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}],
  "special_tokens": {"<s>": {"id": "<s>", "ids": [0], "tokens": ["<s>"]}, "</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]}}},
 "decoder": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true},
 "model": {"type": "Unigram", "unk_id": 3, "byte_fallback": false, "vocab": [["<s>", 0.0], ["<pad>", 0.0], ["</s>", 0.0],
  ["<unk>", 0.0], ["▁", -2.5], ["▁query", -3.0], [":", -3.5], ["▁passage", -4.0], ["y", -4.5], ["e", -5.0],
  ["▁gr", -5.5], ["<mask>", 0.0]]}}"###;

/// A SentencePiece charsmap (a darts-clone double array, then the replacement strings): "x"
/// becomes "y" and "é" becomes "e"; three blocks of 256 units, so that a lookup never leaves it.
fn charsmap() -> Vec<u8> {
    let mut units = vec![0u32; 768];
    let unit = |label: u32, leaf: bool, offset: u32| (offset << 10) | (u32::from(leaf) << 8) | label;
    units[0] = unit(0, false, 256); // root: children at 256 ^ byte
    units[256 ^ 0x78] = unit(0x78, true, 84); // 'x' (node 376), its value at 376 ^ 84 = 300
    units[300] = 1 << 31; // value 0: "y"
    units[256 ^ 0xC3] = unit(0xC3, false, 963); // first byte of 'é' (node 451), children at 512 ^ byte
    units[512 ^ 0xA9] = unit(0xA9, true, 161); // second byte (node 681), its value at 681 ^ 161 = 520
    units[520] = (1 << 31) | 2; // value 2: "e"
    let mut bytes = (units.len() as u32 * 4).to_le_bytes().to_vec();
    bytes.extend(units.iter().flat_map(|u| u.to_le_bytes()));
    bytes.extend("y\0e\0ß\0".as_bytes());
    bytes
}

fn unigram(charsmap: &[u8]) -> String {
    UNIGRAM.replace("CHARSMAP", &base64::engine::general_purpose::STANDARD.encode(charsmap))
}

const TEXTS: [&str; 8] =
    ["x é", "Größe der Grüße", "", "   ", "日本語 query", "a\u{0}b\u{7}", "x\u{301}e\u{301}", "😀 \u{202e}y"];

/// Tokenises `extra` and the fixed texts every way mlr does; `Ok(false)` if the tokenizer
/// refuses a text (an error, not a panic), `Err` if a batch breaks its invariants.
fn tokenise(tok: &TextTokenizer, extra: &str) -> Result<bool, Violation> {
    let texts: Vec<&str> = TEXTS.iter().copied().chain([extra]).collect();
    for text in &texts {
        let Ok(ids) = tok.ids(text, Role::Query) else { return Ok(false) };
        if let Some(id) = ids.iter().find(|&&id| id as usize >= tok.id_bound()) {
            return Err(format!("id {id} at or past the id bound {}", tok.id_bound()).into());
        }
    }
    for (max, overflow) in [(8, Overflow::Windows), (5, Overflow::Truncate), (512, Overflow::Truncate)] {
        let Ok(b) = tok.batch(&texts, Role::Passage, max, overflow) else { return Ok(false) };
        let cells = b.rows.len() * b.seq_len;
        let tokens: usize = b.rows.iter().map(|r| r.ids.len()).sum();
        if b.ids.len() != cells || b.mask.len() != cells || b.mask.iter().filter(|&&m| m == 1).count() != tokens {
            return Err(format!(
                "a batch of {} rows × {} has {} ids and {} mask cells",
                b.rows.len(),
                b.seq_len,
                b.ids.len(),
                b.mask.len()
            )
            .into());
        }
        if b.rows.iter().any(|r| r.ids.len() > max || r.text >= texts.len()) || b.seq_len > max {
            return Err(format!("a row longer than {max} tokens, or of no text").into());
        }
    }
    Ok(true)
}

#[test]
fn tokenizer_json() {
    let strategy = (text(vec![WORDPIECE.into(), unigram(&charsmap())], 512), vec(any::<char>(), 0..24));
    check("tokenizer json", strategy, |(bytes, extra): &(Bytes, Vec<char>)| {
        let Ok(tok) = TextTokenizer::from_bytes(bytes) else { return Ok(false) };
        tokenise(&tok, &extra.iter().collect::<String>())
    });
}

#[test]
fn tokenizer_charsmap() {
    let strategy = (binary(vec![charsmap()], 64), vec(any::<char>(), 0..24));
    check("tokenizer charsmap", strategy, |(charsmap, extra): &(Bytes, Vec<char>)| {
        let Ok(tok) = TextTokenizer::from_bytes(unigram(charsmap).as_bytes()) else { return Ok(false) };
        tokenise(&tok, &extra.iter().collect::<String>())
    });
}
