//! Tatoeba bitext (LASER's test set): `tatoeba.<xxx>-eng.<xxx>` and `tatoeba.<xxx>-eng.eng`,
//! aligned by line.

use std::path::Path;

use crate::DataError;

/// One language paired with English.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bitext {
    /// ISO 639-3 code of the non-English side (e.g. `deu`).
    pub lang: String,
    /// Sentences in `lang`.
    pub other: Vec<String>,
    /// Their English translations, line by line.
    pub english: Vec<String>,
}

/// Pairs the two sides; their line counts must agree.
pub fn parse(lang: &str, other: &str, english: &str, path: &str) -> Result<Bitext, DataError> {
    let (other, english) = aligned_lines(lang, other, "English", english, path)?;
    let owned = |lines: Vec<&str>| lines.into_iter().map(str::to_string).collect();
    Ok(Bitext { lang: lang.to_string(), other: owned(other), english: owned(english) })
}

/// The lines of two line-aligned texts: an error unless they have the same number of lines, and
/// at least one.
pub(crate) fn aligned_lines<'a>(
    lang_a: &str,
    a: &'a str,
    lang_b: &str,
    b: &'a str,
    path: &str,
) -> Result<(Vec<&'a str>, Vec<&'a str>), DataError> {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    if a.len() != b.len() {
        return Err(DataError::invalid(
            path,
            format!("{} lines in {lang_a} but {} in {lang_b}: the sides are not aligned", a.len(), b.len()),
        ));
    }
    if a.is_empty() {
        return Err(DataError::invalid(path, "no sentences"));
    }
    Ok((a, b))
}

/// Every `tatoeba.<xxx>-eng.*` pair of a directory, sorted by language.
pub fn load_dir(dir: &Path) -> Result<Vec<Bitext>, DataError> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    let mut langs = Vec::new();
    for entry in entries {
        let name = entry.map_err(|e| DataError::io(dir, e))?.file_name();
        let name = name.to_string_lossy();
        if let Some(rest) = name.strip_prefix("tatoeba.") {
            if let Some((pair, side)) = rest.split_once('.') {
                if let Some(lang) = pair.strip_suffix("-eng") {
                    if side == lang {
                        langs.push(lang.to_string());
                    }
                }
            }
        }
    }
    langs.sort();
    if langs.is_empty() {
        return Err(DataError::invalid(&dir.display().to_string(), "no tatoeba.<xxx>-eng.<xxx> files"));
    }
    let read = |name: String| {
        let path = dir.join(name);
        std::fs::read_to_string(&path).map_err(|e| DataError::io(&path, e))
    };
    langs
        .iter()
        .map(|lang| {
            let other = read(format!("tatoeba.{lang}-eng.{lang}"))?;
            let english = read(format!("tatoeba.{lang}-eng.eng"))?;
            parse(lang, &other, &english, &dir.join(format!("tatoeba.{lang}-eng")).display().to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn misaligned_sides_are_an_error() {
        let err = super::parse("deu", "a\nb\n", "a\n", "t").unwrap_err();
        assert!(err.to_string().contains("2 lines in deu but 1 in English"));
        assert_eq!(super::parse("deu", "a\nb", "x\ny\n", "t").unwrap().english, ["x", "y"]);
    }
}
