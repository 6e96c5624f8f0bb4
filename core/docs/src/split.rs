//! Records into passages under a token budget.
//!
//! A record whose text fits the budget is one passage. A longer one is cut at its sentence
//! boundaries (Unicode's UAX #29; `。！？` end sentences too) and the sentences are packed
//! greedily, in order, while the sum of their token counts fits. A sentence over the budget alone
//! is cut at word boundaries the same way, and a word over it (a long run of Thai, which UAX #29
//! does not split into words, or a URL) into equal runs of characters.
//!
//! Token counts are the caller's ([`split`]'s `tokens`: the encoder tokenizer's count of a text,
//! special tokens left out) and are summed over the pieces of a passage, which is what a
//! SentencePiece tokenizer gives their concatenation up to a token at each seam; the encoder
//! truncates at its input length anyway, so the budget keeps passages focused, not legal.

use unicode_segmentation::UnicodeSegmentation;

use crate::read::Record;

/// The default budget: 128 tokens, about a paragraph of English prose.
pub const DEFAULT_BUDGET: usize = 128;
/// The smallest budget taken (a smaller one is raised to it).
pub const MIN_BUDGET: usize = 8;

/// One passage: a record's text, or a part of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// The record it is cut from (its index).
    pub record: usize,
    /// 1-based part of that record (1 when the record is one passage).
    pub part: usize,
    /// The text, trimmed.
    pub text: String,
    /// Its token count (the sum of its sentences' or words' counts).
    pub tokens: usize,
}

/// The token count [`split`] takes, from a tokenizer's count of a text's ids as the encoder
/// sees it (`ids`: prefix and special tokens included; `None` when the tokenizer refuses the
/// text): that count less the count of the empty text, so only the text's own tokens are counted.
/// A text the tokenizer refuses counts a token per character (so it is cut small). `mlr docs
/// build` and the page both count with it, so they cut the same passages.
pub fn content_tokens(ids: impl Fn(&str) -> Option<usize>) -> impl FnMut(&str) -> usize {
    let overhead = ids("").unwrap_or(0);
    move |text: &str| ids(text).map_or(text.chars().count(), |n| n.saturating_sub(overhead))
}

/// Splits every record into passages of at most `budget` tokens (at least [`MIN_BUDGET`]).
pub fn split(records: &[Record], budget: usize, tokens: &mut dyn FnMut(&str) -> usize) -> Vec<Piece> {
    let budget = budget.max(MIN_BUDGET);
    let mut out = Vec::new();
    for (r, record) in records.iter().enumerate() {
        let mut parts: Vec<(String, usize)> = Vec::new();
        let n = tokens(&record.text);
        if n <= budget {
            parts.push((record.text.clone(), n));
        } else {
            pack(record.text.split_sentence_bounds(), budget, tokens, 0, &mut parts);
        }
        for (i, (text, n)) in parts.into_iter().enumerate() {
            out.push(Piece { record: r, part: i + 1, text, tokens: n });
        }
    }
    out
}

/// Packs `units` (sentences, or a sentence's words) greedily into `out`; a unit over the budget
/// goes one level down (sentences → words → characters).
fn pack<'a>(
    units: impl Iterator<Item = &'a str>,
    budget: usize,
    tokens: &mut dyn FnMut(&str) -> usize,
    level: usize,
    out: &mut Vec<(String, usize)>,
) {
    let mut current = String::new();
    let mut count = 0;
    let flush = |current: &mut String, count: &mut usize, out: &mut Vec<(String, usize)>| {
        let t = current.trim();
        if !t.is_empty() {
            out.push((t.to_string(), *count));
        }
        current.clear();
        *count = 0;
    };
    for unit in units {
        if unit.trim().is_empty() {
            current.push_str(unit);
            continue;
        }
        let n = tokens(unit);
        if n > budget {
            flush(&mut current, &mut count, out);
            if level == 0 {
                pack(unit.split_word_bounds(), budget, tokens, 1, out);
            } else {
                cut_chars(unit, n, budget, tokens, out);
            }
            continue;
        }
        if count + n > budget {
            flush(&mut current, &mut count, out);
        }
        current.push_str(unit);
        count += n;
    }
    flush(&mut current, &mut count, out);
}

/// Cuts a word of `n` tokens into runs of equal character counts, enough of them for each to
/// fit; a run that still does not fit is cut again.
fn cut_chars(
    word: &str,
    n: usize,
    budget: usize,
    tokens: &mut dyn FnMut(&str) -> usize,
    out: &mut Vec<(String, usize)>,
) {
    let chars: Vec<char> = word.chars().collect();
    let runs = n.div_ceil(budget).max(2).min(chars.len());
    let per = chars.len().div_ceil(runs);
    for run in chars.chunks(per) {
        let s: String = run.iter().collect();
        let m = tokens(&s);
        if m > budget && run.len() > 1 {
            cut_chars(&s, m, budget, tokens, out);
        } else if !s.trim().is_empty() {
            out.push((s.trim().to_string(), m));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::Place;

    fn record(text: &str) -> Record {
        Record { text: text.into(), id: None, lang: None, group: None, place: Place::Paragraph(1) }
    }

    /// A word per token, as a stand-in for the tokenizer; a run of non-space characters counts a
    /// token per 4 characters.
    fn words(s: &str) -> usize {
        s.split_whitespace().map(|w| w.chars().count().div_ceil(4)).sum()
    }

    #[test]
    fn content_tokens_leave_out_the_prefix_and_specials() {
        // A stand-in tokenizer: "passage: " and two specials (3 ids) plus a word per id; it
        // refuses texts with a '#'.
        let ids = |t: &str| (!t.contains('#')).then(|| 3 + t.split_whitespace().count());
        let mut count = content_tokens(ids);
        assert_eq!(count(""), 0);
        assert_eq!(count("three small words"), 3);
        assert_eq!(count("#tag"), 4, "a refused text counts its characters");
    }

    #[test]
    fn a_short_record_is_one_passage() {
        let p = split(&[record("One two three.")], 8, &mut words);
        assert_eq!(p, vec![Piece { record: 0, part: 1, text: "One two three.".into(), tokens: 4 }]);
    }

    #[test]
    fn sentences_are_packed_in_order_under_the_budget() {
        let text = "Aa bb cc dd. Ee ff gg. Hh ii jj kk ll. Mm.";
        let p = split(&[record(text), record("Zz.")], 8, &mut words);
        let got: Vec<(usize, usize, &str, usize)> =
            p.iter().map(|p| (p.record, p.part, p.text.as_str(), p.tokens)).collect();
        assert_eq!(got, vec![(0, 1, "Aa bb cc dd. Ee ff gg.", 7), (0, 2, "Hh ii jj kk ll. Mm.", 6), (1, 1, "Zz.", 1)]);
        assert!(p.iter().all(|p| p.tokens <= 8));
        // Nothing lost: the passages hold every word of the text, in order.
        let joined: Vec<&str> = p[..2].iter().flat_map(|p| p.text.split_whitespace()).collect();
        assert_eq!(joined, text.split_whitespace().collect::<Vec<_>>());
    }

    #[test]
    fn cjk_sentences_and_overlong_words() {
        // Chinese sentences end at 。 (UAX #29); each character a token.
        let mut chars = |s: &str| s.chars().filter(|c| !c.is_whitespace()).count();
        let p = split(&[record("一二三四五。六七八九十。十一。")], 9, &mut chars);
        assert_eq!(p.iter().map(|p| p.text.as_str()).collect::<Vec<_>>(), vec!["一二三四五。", "六七八九十。十一。"]);
        // One sentence of 20 tokens with no spaces (Thai-like): cut into character runs that fit.
        let thai = "กขคงจฉชซฌญฎฏฐฑฒณดตถท";
        let p = split(&[record(thai)], 8, &mut chars);
        assert!(p.len() >= 3 && p.iter().all(|p| p.tokens <= 8), "{p:?}");
        assert_eq!(p.iter().map(|p| p.text.as_str()).collect::<String>(), thai);
        // A budget under the minimum is raised to it.
        assert_eq!(split(&[record("a b c d e f g")], 1, &mut words).len(), 1);
    }
}
