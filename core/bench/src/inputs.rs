//! Benchmark inputs: real XQuAD-R paragraphs (languages taken in turn) tokenised as passages
//! and cut to exactly `seq` tokens, `<s>` and `</s>` included, so every row of a batch is full and
//! every engine sees the same ids.

use std::path::Path;

use anyhow::{bail, Context, Result};
use mlr_data::lareqa::LareqaSet;
use mlr_tokenize::{Role, TextTokenizer};
use serde::Serialize;

/// The rows of one sequence length.
#[derive(Debug, Clone, Serialize)]
pub struct SeqInputs {
    /// Tokens per row.
    pub seq: usize,
    /// `[rows][seq]` token ids (passage prefix, `<s>` … `</s>`).
    pub ids: Vec<Vec<u32>>,
    /// The text each row was cut from (for engines that take text: they cut it to `seq` tokens
    /// with their own tokenizer).
    pub texts: Vec<String>,
    /// Language of each row.
    pub langs: Vec<String>,
}

/// `rows` inputs for every sequence length in `seqs`.
pub fn build(data: &Path, tokenizer: &TextTokenizer, seqs: &[usize], rows: usize) -> Result<Vec<SeqInputs>> {
    let langs = LareqaSet::dir_langs(data).with_context(|| format!("reading {}", data.display()))?;
    let refs: Vec<&str> = langs.iter().map(String::as_str).collect();
    let set = LareqaSet::load_dir(data, &refs).with_context(|| format!("loading {}", data.display()))?;
    // Paragraphs per language, in file order.
    let mut by_lang: Vec<Vec<&str>> = vec![Vec::new(); set.langs.len()];
    for p in &set.paragraphs {
        by_lang[p.lang].push(&p.context);
    }
    let mut out = Vec::new();
    for &seq in seqs {
        if seq < 3 {
            bail!("sequence length {seq}: needs at least <s>, one token and </s>");
        }
        let mut next = vec![0usize; set.langs.len()];
        let mut s = SeqInputs { seq, ids: Vec::new(), texts: Vec::new(), langs: Vec::new() };
        for r in 0..rows {
            let lang = r % set.langs.len();
            // Join consecutive paragraphs until the text has `seq` tokens.
            let mut text = String::new();
            let mut ids = Vec::new();
            while ids.len() < seq {
                let Some(p) = by_lang[lang].get(next[lang] % by_lang[lang].len().max(1)) else {
                    bail!("{}: no paragraphs in {}", data.display(), set.langs[lang]);
                };
                next[lang] += 1;
                if !text.is_empty() {
                    text.push(' ');
                }
                text.push_str(p);
                ids = tokenizer.ids(&text, Role::Passage)?;
            }
            let end = *ids.last().expect("non-empty");
            ids.truncate(seq - 1);
            ids.push(end);
            s.ids.push(ids);
            s.texts.push(text);
            s.langs.push(set.langs[lang].clone());
        }
        out.push(s);
    }
    Ok(out)
}

/// Writes the inputs as JSON for the Python and browser peers.
pub fn write(inputs: &[SeqInputs], path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, serde_json::to_vec(inputs)?).with_context(|| format!("writing {}", path.display()))
}
