//! Each passage's language, as an ISO 639-1 code (`en`, `zh`, …; `und` when nothing can be said).
//!
//! A record that gives its language keeps it. Otherwise whatlang detects it (trigram profiles of
//! 70 languages, every language of XQuAD-R among them; measured on XQuAD-R by `mlr docs langid`,
//! results/docs/). whatlang calls a detection unreliable when the text is short or two languages
//! score alike; such a passage takes the most common reliably detected language of its file, if
//! the file has one, and keeps whatlang's guess otherwise.

use serde::{Deserialize, Serialize};
use whatlang::Lang;

/// How a passage's language was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LangSource {
    /// The file gave it (a `lang` field or column).
    Given,
    /// Detected, reliably.
    Detected,
    /// Detected unreliably; its file's most common reliable language was taken.
    FromFile,
    /// Detected unreliably, and the file had no reliable language to take.
    Guessed,
}

/// A detection: the code and whether whatlang calls it reliable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    /// ISO 639-1 code (`und` when whatlang finds no language at all: digits, symbols).
    pub code: String,
    /// whatlang's reliability.
    pub reliable: bool,
}

/// Detects the language of one text.
pub fn detect(text: &str) -> Detected {
    match whatlang::detect(text) {
        Some(info) => Detected { code: iso639_1(info.lang()).to_string(), reliable: info.is_reliable() },
        None => Detected { code: "und".into(), reliable: false },
    }
}

/// The language of each text of one file: `given[i]` when present, else detected, with unreliable
/// detections resolved as the module says.
pub fn assign(texts: &[&str], given: &[Option<String>]) -> Vec<(String, LangSource)> {
    let detected: Vec<Option<Detected>> =
        texts.iter().zip(given).map(|(t, g)| if g.is_some() { None } else { Some(detect(t)) }).collect();
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for d in detected.iter().flatten().filter(|d| d.reliable) {
        match counts.iter_mut().find(|(c, _)| *c == d.code) {
            Some((_, n)) => *n += 1,
            None => counts.push((&d.code, 1)),
        }
    }
    // The most common; on a tie, the first seen.
    let common = counts.iter().fold(None::<(&str, usize)>, |best, &(c, n)| match best {
        Some((_, m)) if m >= n => best,
        _ => Some((c, n)),
    });
    given
        .iter()
        .zip(&detected)
        .map(|(g, d)| match (g, d) {
            (Some(g), _) => (g.clone(), LangSource::Given),
            (None, Some(d)) if d.reliable => (d.code.clone(), LangSource::Detected),
            (None, Some(d)) => match common {
                Some((c, _)) => (c.to_string(), LangSource::FromFile),
                None => (d.code.clone(), LangSource::Guessed),
            },
            (None, None) => unreachable!("a text without a given language is detected"),
        })
        .collect()
}

/// whatlang's ISO 639-3 language as ISO 639-1 (every language whatlang knows has one).
pub fn iso639_1(lang: Lang) -> &'static str {
    use Lang::*;
    match lang {
        Epo => "eo",
        Eng => "en",
        Rus => "ru",
        Cmn => "zh",
        Spa => "es",
        Por => "pt",
        Ita => "it",
        Ben => "bn",
        Fra => "fr",
        Deu => "de",
        Ukr => "uk",
        Kat => "ka",
        Ara => "ar",
        Hin => "hi",
        Jpn => "ja",
        Heb => "he",
        Yid => "yi",
        Pol => "pl",
        Amh => "am",
        Jav => "jv",
        Kor => "ko",
        Nob => "nb",
        Dan => "da",
        Swe => "sv",
        Fin => "fi",
        Tur => "tr",
        Nld => "nl",
        Hun => "hu",
        Ces => "cs",
        Ell => "el",
        Bul => "bg",
        Bel => "be",
        Mar => "mr",
        Kan => "kn",
        Ron => "ro",
        Slv => "sl",
        Hrv => "hr",
        Srp => "sr",
        Mkd => "mk",
        Lit => "lt",
        Lav => "lv",
        Est => "et",
        Tam => "ta",
        Vie => "vi",
        Urd => "ur",
        Tha => "th",
        Guj => "gu",
        Uzb => "uz",
        Pan => "pa",
        Aze => "az",
        Ind => "id",
        Tel => "te",
        Pes => "fa",
        Mal => "ml",
        Ori => "or",
        Mya => "my",
        Nep => "ne",
        Sin => "si",
        Khm => "km",
        Tuk => "tk",
        Aka => "ak",
        Zul => "zu",
        Sna => "sn",
        Afr => "af",
        Lat => "la",
        Slk => "sk",
        Cat => "ca",
        Tgl => "tl",
        Hye => "hy",
        Cym => "cy",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_whatlang_language_has_a_distinct_two_letter_code() {
        let codes: Vec<&str> = Lang::all().iter().map(|&l| iso639_1(l)).collect();
        assert!(codes.iter().all(|c| c.len() == 2 && c.chars().all(|c| c.is_ascii_lowercase())));
        let mut unique = codes.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), codes.len());
    }

    #[test]
    fn detection_of_clear_texts_and_the_file_fallback() {
        let cases = [
            ("The university was founded in 1890 by John D. Rockefeller.", "en"),
            ("Die Universität wurde 1890 von John D. Rockefeller gegründet.", "de"),
            ("芝加哥大学由约翰·洛克菲勒于1890年创立。", "zh"),
            ("Университет был основан в 1890 году Джоном Рокфеллером.", "ru"),
            ("جامعة شيكاغو هي جامعة بحثية خاصة في شيكاغو.", "ar"),
        ];
        for (text, code) in cases {
            assert_eq!(detect(text).code, code, "{text}");
        }
        assert_eq!(detect("1234 5678").code, "und");
        // A short, unreliable text takes its file's common language; a given one is kept.
        let texts = ["Das ist ein langer deutscher Satz über die Geschichte der Stadt.", "OK", "Hello there"];
        let given = [None, None, Some("en".to_string())];
        let got = assign(&texts, &given);
        assert_eq!(got[0], ("de".into(), LangSource::Detected));
        assert_eq!(got[1], ("de".into(), LangSource::FromFile));
        assert_eq!(got[2], ("en".into(), LangSource::Given));
        // No reliable detection in the file: the guess is kept.
        let got = assign(&["OK"], &[None]);
        assert_eq!(got[0].1, LangSource::Guessed);
    }
}
