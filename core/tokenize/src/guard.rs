//! Checks of what the `tokenizers` crate panics on instead of returning an error, run on a
//! `tokenizer.json` before it is handed over (found by `tests/fuzz.rs`, and by reading the code
//! around what it found):
//!
//! - malformed JSON inside the `decoder` value, or a number beyond f64 in it (its reader
//!   `expect`s that value to parse), so the whole file is parsed first, the decoder as a value;
//! - a `Precompiled` normaliser (XLM-R's SentencePiece charsmap) whose `precompiled_charsmap` is
//!   not a base64 string of a readable charsmap (`expect`ed; its trie length, up to 4 GiB, is
//!   reserved before the file is checked to hold it: 8 GiB natively, an abort on wasm32), or whose
//!   trie sends a lookup outside its array or to a replacement that starts outside the
//!   replacement strings or inside a character (index panics on the first text tokenised);
//! - a `TemplateProcessing` post-processor whose templates name a special token it does not
//!   define, or whose `single` template takes a second sequence (its builder refuses both; its
//!   deserialiser does not, and encoding a text then indexes past them).
//!
//! The charsmap is read as `spm_precompiled` 0.1.4 reads it: `u32` trie length in bytes, the trie
//! (darts-clone double-array units, `u32`), then the replacement strings, each ended by a NUL. A
//! lookup walks the bytes of one grapheme (under 6 bytes) or one character from the root, XOR-ing
//! positions with each byte; every position such a walk can index is checked here.

use base64::Engine;
use serde_json::Value;

/// Longest key a lookup walks: graphemes of fewer than 6 bytes, else single characters.
const MAX_KEY: usize = 5;

/// A `tokenizer.json` read for its normaliser, decoder and post-processor: reading it checks the
/// syntax of the whole file, and reading those as values checks their numbers too (ignored
/// fields are skipped without converting theirs).
#[derive(serde::Deserialize)]
struct File {
    #[serde(default)]
    normalizer: Value,
    #[serde(default)]
    #[allow(dead_code)]
    decoder: Value,
    #[serde(default)]
    post_processor: Value,
}

/// Every object of `root` (below `place`), with its place.
fn objects<'a>(root: &'a Value, place: &str) -> Vec<(&'a serde_json::Map<String, Value>, String)> {
    let mut out = Vec::new();
    let mut stack = vec![(root, place.to_string())];
    while let Some((v, place)) = stack.pop() {
        match v {
            Value::Object(o) => {
                stack.extend(o.iter().map(|(k, v)| (v, format!("{place}.{k}"))));
                out.push((o, place));
            }
            Value::Array(a) => stack.extend(a.iter().enumerate().map(|(i, v)| (v, format!("{place}[{i}]")))),
            _ => {}
        }
    }
    out
}

/// Checks a `TemplateProcessing` object (the parts of it that deserialise).
fn check_template(o: &serde_json::Map<String, Value>) -> Result<(), String> {
    let defined = o.get("special_tokens").and_then(Value::as_object);
    for template in ["single", "pair"] {
        for piece in o.get(template).and_then(Value::as_array).into_iter().flatten() {
            if let Some(id) = piece.pointer("/SpecialToken/id").and_then(Value::as_str) {
                if !defined.is_some_and(|d| d.contains_key(id)) {
                    return Err(format!("the {template} template names special token {id:?}, which is not defined"));
                }
            }
            if template == "single" && piece.pointer("/Sequence/id").and_then(Value::as_str) == Some("B") {
                return Err("the single template takes a second sequence ($B)".into());
            }
        }
    }
    Ok(())
}

/// Checks `json` (a whole `tokenizer.json`) for what `tokenizers` would panic on (see the module
/// docs); the message names the place.
pub(crate) fn check_json(json: &[u8]) -> Result<(), String> {
    let file: File = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    for (o, place) in objects(&file.normalizer, "normalizer") {
        if o.get("type").and_then(Value::as_str) == Some("Precompiled") {
            let charsmap = o
                .get("precompiled_charsmap")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("{place}: a Precompiled normalizer without a precompiled_charsmap string"))?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(charsmap)
                .map_err(|e| format!("{place}.precompiled_charsmap: not base64 ({e})"))?;
            check(&bytes).map_err(|e| format!("{place}.precompiled_charsmap: {e}"))?;
        }
    }
    for (o, place) in objects(&file.post_processor, "post_processor") {
        if o.get("type").and_then(Value::as_str) == Some("TemplateProcessing") {
            check_template(o).map_err(|e| format!("{place}: {e}"))?;
        }
    }
    Ok(())
}

// The unit layout of darts-clone (and `spm_precompiled`).
fn has_leaf(unit: usize) -> bool {
    (unit >> 8) & 1 == 1
}
fn value(unit: usize) -> usize {
    unit & ((1 << 31) - 1)
}
fn label(unit: usize) -> usize {
    unit & ((1 << 31) | 0xFF)
}
fn offset(unit: usize) -> usize {
    (unit >> 10) << ((unit & (1 << 9)) >> 6)
}

/// Checks a charsmap's layout and every lookup of up to [`MAX_KEY`] bytes.
pub(crate) fn check(bytes: &[u8]) -> Result<(), String> {
    let (size, rest) = bytes.split_first_chunk::<4>().ok_or("shorter than its 4-byte trie length")?;
    let units = u32::from_le_bytes(*size) as usize / 4;
    if units.checked_mul(4).is_none_or(|n| n > rest.len()) {
        return Err(format!("the trie length says {} bytes, but {} follow", u32::from_le_bytes(*size), rest.len()));
    }
    let (trie, strings) = rest.split_at(units * 4);
    let trie: Vec<usize> =
        trie.chunks_exact(4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize).collect();
    let strings = std::str::from_utf8(strings).map_err(|e| format!("the replacement strings are not UTF-8: {e}"))?;
    let unit = |at: usize, what: &dyn Fn() -> String| {
        trie.get(at).copied().ok_or_else(|| format!("{} reads unit {at} of a {units}-unit trie", what()))
    };
    let root = offset(unit(0, &|| "the root".into())?);
    // (position after the key so far, its length); each position explored at its shortest key.
    let mut shortest = std::collections::HashMap::from([(root, 0usize)]);
    let mut pending = vec![(root, 0usize)];
    while let Some((at, depth)) = pending.pop() {
        for byte in 1..=255usize {
            let what = || format!("byte {byte:#04x} after a {depth}-byte key");
            let child = at ^ byte;
            let u = unit(child, &what)?;
            if label(u) != byte {
                continue;
            }
            let next = child ^ offset(u);
            if has_leaf(u) {
                let v = value(unit(next, &|| format!("the value of {}", what()))?);
                if !strings.is_char_boundary(v) {
                    return Err(format!(
                        "{} maps to byte {v} of {}-byte replacement strings, not the start of a character",
                        what(),
                        strings.len()
                    ));
                }
            }
            if depth + 1 < MAX_KEY && shortest.get(&next).is_none_or(|&d| d > depth + 1) {
                shortest.insert(next, depth + 1);
                pending.push((next, depth + 1));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A charsmap from `units` (index, value) set in an array of `n` units, then `strings`.
    fn charsmap(n: usize, units: &[(usize, u32)], strings: &str) -> Vec<u8> {
        let mut array = vec![0u32; n];
        units.iter().for_each(|&(i, u)| array[i] = u);
        let mut bytes = (n as u32 * 4).to_le_bytes().to_vec();
        bytes.extend(array.iter().flat_map(|u| u.to_le_bytes()));
        bytes.extend(strings.as_bytes());
        bytes
    }

    #[test]
    fn the_bundled_xlmr_charsmap_passes() {
        check(include_bytes!("../../import/data/xlmr_nmt_nfkc_precompiled_charsmap.bin")).unwrap();
    }

    #[test]
    fn charsmaps_that_panicked_or_aborted_in_tokenizers_are_errors() {
        // Each panicked in tokenizers (found by tests/fuzz.rs); this one after reserving 8 GiB.
        let err = check(&[0xff, 0xff, 0xff, 0xff]).unwrap_err();
        assert_eq!(err, "the trie length says 4294967295 bytes, but 0 follow");
        assert_eq!(check(&[1, 2]).unwrap_err(), "shorter than its 4-byte trie length");
        // An empty trie: every lookup indexed unit 0.
        assert_eq!(check(&[0, 0, 0, 0]).unwrap_err(), "the root reads unit 0 of a 0-unit trie");
        // One block but a root offset of 256: the first byte's lookup left the array.
        let err = check(&charsmap(256, &[(0, 256 << 10)], "")).unwrap_err();
        assert_eq!(err, "byte 0x01 after a 0-byte key reads unit 257 of a 256-unit trie");
        // 'x' maps to byte 1 of "é\0": inside the character.
        let x = (0x78, (84 << 10) | (1 << 8) | 0x78);
        let err = check(&charsmap(256, &[x, (0x78 ^ 84, (1 << 31) | 1)], "é\0")).unwrap_err();
        assert_eq!(
            err,
            "byte 0x78 after a 0-byte key maps to byte 1 of 3-byte replacement strings, not the start of a character"
        );
        assert!(check(&charsmap(256, &[x, (0x78 ^ 84, 1 << 31)], "é\0")).is_ok());
        // Not valid JSON inside the decoder (tokenizers `expect`s it), and a charsmap that is no string.
        assert!(check_json(br#"{"decoder": {"type": "Metaspace", "replacement": 1e999}}"#)
            .unwrap_err()
            .contains("number out of range"));
        let err = check_json(br#"{"normalizer": {"type": "Precompiled", "precompiled_charsmap": 7}}"#).unwrap_err();
        assert_eq!(err, "normalizer: a Precompiled normalizer without a precompiled_charsmap string");
        let err = check_json(br#"{"normalizer": {"type": "Precompiled", "precompiled_charsmap": "AA="}}"#).unwrap_err();
        assert!(err.starts_with("normalizer.precompiled_charsmap: not base64"), "{err}");
    }

    #[test]
    fn templates_that_index_past_their_special_tokens_are_errors() {
        // Found by tests/fuzz.rs: `[CLS]` renamed in the template only panicked on the first text
        // (a `$B` in the single template does too).
        let template = |single: &str| {
            format!(
                r#"{{"post_processor": {{"type": "Sequence", "processors": [{{"type": "TemplateProcessing",
                "single": [{single}, {{"Sequence": {{"id": "A", "type_id": 0}}}}], "pair": [],
                "special_tokens": {{"[CLS]": {{"id": "[CLS]", "ids": [1], "tokens": ["[CLS]"]}}}}}}]}}}}"#
            )
        };
        let special = |id: &str| format!(r#"{{"SpecialToken": {{"id": "{id}", "type_id": 0}}}}"#);
        assert!(check_json(template(&special("[CLS]")).as_bytes()).is_ok());
        let err = check_json(template(&special("[CLX]")).as_bytes()).unwrap_err();
        assert_eq!(
            err,
            "post_processor.processors[0]: the single template names special token \"[CLX]\", which is not defined"
        );
        let err = check_json(template(r#"{"Sequence": {"id": "B", "type_id": 1}}"#).as_bytes()).unwrap_err();
        assert_eq!(err, "post_processor.processors[0]: the single template takes a second sequence ($B)");
    }
}
