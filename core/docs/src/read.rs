//! Files into records: the texts a collection is made of, each with where it came from.
//!
//! - Text (`.txt`) and Markdown (`.md`): a record per paragraph (lines between blank lines); in
//!   Markdown a heading ends a paragraph and opens the next one (`Title › Section` then the text:
//!   its context, never a passage of one word), and code-fence lines are left out.
//! - JSON lines (`.jsonl`, `.ndjson`): a record per non-blank line, a JSON string or an object
//!   with a string `text`, and optionally `id` and `group` (string or number) and `lang` (a
//!   language code).
//! - CSV (`.csv`) and TSV (`.tsv`): a record per row, the field of one column (by header name or
//!   0-based number; by default the column named `text`, else the first), with the columns `id`,
//!   `lang` and `group` read when the header has them.
//!
//! A `group` names a set of translations: records of any file with the same group are the same
//! text in other languages (a parallel file), and the language-bias view measures where each
//! language's version lands.
//!
//! The bytes are UTF-8 (a leading byte-order mark dropped) or UTF-16 with its byte-order mark;
//! `\r\n` reads as `\n`. What cannot be a text file is refused whole ([`DocsError`]); a line or row
//! that is malformed is skipped and listed in [`Read::skipped`], so one bad line never loses a file.

use serde::{Deserialize, Serialize};

use crate::DocsError;

/// The largest file read: a 50 MB file is about 100,000 passages, hours of encoding in a browser.
pub const MAX_FILE_BYTES: u64 = 64 << 20;
/// Skipped lines listed in full per file; the rest are only counted.
const MAX_SKIPS_LISTED: usize = 20;
/// Longest language code accepted from a record (`zh`, `pt-BR`, `sr-Latn`).
const MAX_LANG_CODE: usize = 12;

/// How a file is read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Format {
    /// Plain text: a record per paragraph.
    Text,
    /// Markdown: a record per paragraph, headings leading the paragraph under them, code fences
    /// left out.
    Markdown,
    /// A JSON string or `{"text", "id"?, "lang"?}` per line.
    JsonLines,
    /// Comma- (or, with `tab`, tab-) separated values with a header row.
    Csv {
        /// The text column: a header name or a 0-based number; `None` = `text`, else the first.
        column: Option<String>,
        /// Tab-separated.
        tab: bool,
    },
}

impl Format {
    /// The format a file name's extension says (`column` for CSV and TSV files).
    pub fn of_name(file: &str, column: Option<&str>) -> Result<Format, DocsError> {
        let ext = file.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
        let column = column.map(str::to_string);
        Ok(match ext.as_str() {
            "txt" | "text" => Format::Text,
            "md" | "markdown" => Format::Markdown,
            "jsonl" | "ndjson" => Format::JsonLines,
            "csv" => Format::Csv { column, tab: false },
            "tsv" => Format::Csv { column, tab: true },
            "pdf" => {
                return Err(DocsError::Unsupported {
                    file: file.to_string(),
                    why: "PDF is not read here (no maintained pure-Rust crate extracts PDF text reliably \
                          in the browser); save it as text and open that"
                        .into(),
                })
            }
            _ => {
                return Err(DocsError::Unsupported {
                    file: file.to_string(),
                    why: "not a kind of file this reads: .txt, .md, .jsonl, .csv or .tsv".into(),
                })
            }
        })
    }

    /// A short name (`text`, `markdown`, `jsonl`, `csv`, `tsv`).
    pub fn name(&self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Markdown => "markdown",
            Format::JsonLines => "jsonl",
            Format::Csv { tab: false, .. } => "csv",
            Format::Csv { tab: true, .. } => "tsv",
        }
    }
}

/// Where in its file a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Place {
    /// The n-th paragraph (1-based) of a text or Markdown file.
    Paragraph(usize),
    /// Line n (1-based) of a JSON-lines file, or the line a CSV row starts on.
    Line(usize),
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Paragraph(n) => write!(f, "¶{n}"),
            Place::Line(n) => write!(f, "line {n}"),
        }
    }
}

/// One text of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The text (trimmed, never empty).
    pub text: String,
    /// The id the file gives it, if any.
    pub id: Option<String>,
    /// The language the file gives it, if any.
    pub lang: Option<String>,
    /// The translation group the file puts it in, if any.
    pub group: Option<String>,
    /// Where it is.
    pub place: Place,
}

/// A line or row left out, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skip {
    /// Where.
    pub place: Place,
    /// Why, in words.
    pub why: String,
}

/// What a file gave.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Read {
    /// Its records, in file order.
    pub records: Vec<Record>,
    /// The first skipped lines or rows (at most 20).
    pub skipped: Vec<Skip>,
    /// Lines or rows skipped in all.
    pub skipped_count: usize,
}

impl Read {
    fn skip(&mut self, place: Place, why: String) {
        self.skipped_count += 1;
        if self.skipped.len() < MAX_SKIPS_LISTED {
            self.skipped.push(Skip { place, why });
        }
    }
}

/// The text of a file: UTF-8 or UTF-16 with a byte-order mark, `\r\n` as `\n`.
pub fn decode_text(file: &str, bytes: &[u8]) -> Result<String, DocsError> {
    let file_s = || file.to_string();
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(DocsError::TooLarge { file: file_s(), bytes: bytes.len() as u64, max: MAX_FILE_BYTES });
    }
    let text = match bytes {
        [0xFF, 0xFE, rest @ ..] => utf16(file, rest, u16::from_le_bytes)?,
        [0xFE, 0xFF, rest @ ..] => utf16(file, rest, u16::from_be_bytes)?,
        _ => {
            let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
            let offset = bytes.len() - body.len();
            // A NUL byte near the start: an image, an archive, UTF-16 without its mark.
            if let Some(i) = body.iter().take(8192).position(|&b| b == 0) {
                return Err(DocsError::Binary { file: file_s(), offset: offset + i });
            }
            match std::str::from_utf8(body) {
                Ok(s) => s.to_string(),
                Err(e) => return Err(DocsError::Encoding { file: file_s(), offset: offset + e.valid_up_to() }),
            }
        }
    };
    if text.trim().is_empty() {
        return Err(DocsError::Empty { file: file_s() });
    }
    Ok(text.replace("\r\n", "\n"))
}

fn utf16(file: &str, body: &[u8], word: fn([u8; 2]) -> u16) -> Result<String, DocsError> {
    let units = body.chunks_exact(2).map(|b| word([b[0], b[1]]));
    let mut out = String::with_capacity(body.len() / 2);
    for (i, c) in char::decode_utf16(units).enumerate() {
        match c {
            Ok(c) => out.push(c),
            Err(_) => return Err(DocsError::Encoding { file: file.to_string(), offset: 2 + 2 * i }),
        }
    }
    if body.len() % 2 == 1 {
        return Err(DocsError::Encoding { file: file.to_string(), offset: 1 + body.len() });
    }
    Ok(out)
}

/// Reads a file's bytes as `format`.
pub fn read(file: &str, bytes: &[u8], format: &Format) -> Result<Read, DocsError> {
    let text = decode_text(file, bytes)?;
    let out = match format {
        Format::Text => paragraphs(&text, false),
        Format::Markdown => paragraphs(&text, true),
        Format::JsonLines => json_lines(&text),
        Format::Csv { column, tab } => csv_rows(file, &text, column.as_deref(), *tab)?,
    };
    if out.records.is_empty() {
        return Err(DocsError::Empty { file: file.to_string() });
    }
    Ok(out)
}

fn paragraphs(text: &str, markdown: bool) -> Read {
    let mut out = Read::default();
    let mut current: Vec<&str> = Vec::new();
    // Markdown headings not yet followed by text: they open the next paragraph, as its context.
    let mut headings: Vec<&str> = Vec::new();
    let flush = |current: &mut Vec<&str>, headings: &mut Vec<&str>, out: &mut Read| {
        let body = current.join("\n");
        let body = body.trim();
        if !body.is_empty() {
            let n = out.records.len() + 1;
            let text = match headings.is_empty() {
                true => body.to_string(),
                false => format!("{}\n{body}", headings.join(" › ")),
            };
            out.records.push(Record { text, id: None, lang: None, group: None, place: Place::Paragraph(n) });
            headings.clear();
        }
        current.clear();
    };
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() {
            flush(&mut current, &mut headings, &mut out);
        } else if markdown && (trimmed.starts_with("```") || trimmed.starts_with("~~~")) {
            // The fence line itself; the code between fences reads as text.
        } else if markdown && trimmed.starts_with('#') {
            flush(&mut current, &mut headings, &mut out);
            let heading = trimmed.trim_start_matches('#').trim();
            if !heading.is_empty() {
                headings.push(heading);
            }
        } else {
            current.push(line);
        }
    }
    flush(&mut current, &mut headings, &mut out);
    // Headings at the end, with no text after them.
    if !headings.is_empty() {
        let n = out.records.len() + 1;
        out.records.push(Record {
            text: headings.join(" › "),
            id: None,
            lang: None,
            group: None,
            place: Place::Paragraph(n),
        });
    }
    out
}

/// Whether `v` can be a language code: short, ASCII letters, digits and `-` only.
pub(crate) fn is_lang_code(v: &str) -> bool {
    !v.is_empty() && v.len() <= MAX_LANG_CODE && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// A record's optional language code, lower-cased.
fn lang_code(value: &str) -> Result<String, String> {
    let v = value.trim();
    if !is_lang_code(v) {
        return Err(format!("\"lang\" is not a language code: {value:?}"));
    }
    Ok(v.to_ascii_lowercase())
}

fn json_lines(text: &str) -> Read {
    let mut out = Read::default();
    for (i, line) in text.lines().enumerate() {
        let place = Place::Line(i + 1);
        if line.trim().is_empty() {
            continue;
        }
        match json_record(line) {
            Ok(r) if !r.text.trim().is_empty() => {
                out.records.push(Record { text: r.text.trim().to_string(), place, ..r })
            }
            Ok(_) => out.skip(place, "the text is empty".into()),
            Err(why) => out.skip(place, why),
        }
    }
    out
}

/// A string or number field (`id`, `group`), if present.
fn key_field(o: &mut serde_json::Map<String, serde_json::Value>, name: &str) -> Result<Option<String>, String> {
    match o.remove(name) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        Some(serde_json::Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(format!("\"{name}\" is neither a string nor a number")),
    }
}

fn json_record(line: &str) -> Result<Record, String> {
    let value: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let place = Place::Line(0);
    match value {
        serde_json::Value::String(text) => Ok(Record { text, id: None, lang: None, group: None, place }),
        serde_json::Value::Object(mut o) => {
            let text = match o.remove("text") {
                Some(serde_json::Value::String(s)) => s,
                Some(_) => return Err("\"text\" is not a string".into()),
                None => return Err("no \"text\" field".into()),
            };
            let id = key_field(&mut o, "id")?;
            let group = key_field(&mut o, "group")?;
            let lang = match o.remove("lang") {
                None | Some(serde_json::Value::Null) => None,
                Some(serde_json::Value::String(s)) => Some(lang_code(&s)?),
                Some(_) => return Err("\"lang\" is not a string".into()),
            };
            Ok(Record { text, id, lang, group, place })
        }
        _ => Err("neither a string nor an object with \"text\"".into()),
    }
}

fn csv_rows(file: &str, text: &str, column: Option<&str>, tab: bool) -> Result<Read, DocsError> {
    let mut reader =
        csv::ReaderBuilder::new().delimiter(if tab { b'\t' } else { b',' }).flexible(true).from_reader(text.as_bytes());
    let header: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(|c| c.trim().to_string()).collect(),
        Err(e) => return Err(DocsError::Unsupported { file: file.to_string(), why: format!("its header row: {e}") }),
    };
    let find = |name: &str| header.iter().position(|h| h.eq_ignore_ascii_case(name));
    let text_col = match column {
        Some(c) => match find(c).or_else(|| c.parse::<usize>().ok().filter(|&i| i < header.len())) {
            Some(i) => i,
            None => {
                return Err(DocsError::Column {
                    file: file.to_string(),
                    column: c.to_string(),
                    columns: header.join(", "),
                })
            }
        },
        None => find("text").unwrap_or(0),
    };
    let other = |name: &str| find(name).filter(|&i| i != text_col);
    let (id_col, lang_col, group_col) = (other("id"), other("lang"), other("group"));
    let field = |row: &csv::StringRecord, col: Option<usize>| {
        col.and_then(|i| row.get(i)).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string)
    };
    let mut out = Read::default();
    for row in reader.records() {
        let row = match row {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line() as usize);
                out.skip(Place::Line(line), format!("not a CSV row: {e}"));
                continue;
            }
        };
        let place = Place::Line(row.position().map_or(0, |p| p.line() as usize));
        let Some(t) = row.get(text_col).map(str::trim).filter(|t| !t.is_empty()) else {
            out.skip(place, format!("no text in column {:?}", header[text_col]));
            continue;
        };
        let lang = match field(&row, lang_col) {
            Some(l) => match lang_code(&l) {
                Ok(l) => Some(l),
                Err(why) => {
                    out.skip(place, why);
                    continue;
                }
            },
            None => None,
        };
        let (id, group) = (field(&row, id_col), field(&row, group_col));
        out.records.push(Record { text: t.to_string(), id, lang, group, place });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(r: &Read) -> Vec<&str> {
        r.records.iter().map(|r| r.text.as_str()).collect()
    }

    #[test]
    fn formats_by_name() {
        assert_eq!(Format::of_name("a/Notes.TXT", None).unwrap(), Format::Text);
        assert_eq!(
            Format::of_name("x.tsv", Some("body")).unwrap(),
            Format::Csv { column: Some("body".into()), tab: true }
        );
        let e = Format::of_name("paper.pdf", None).unwrap_err().to_string();
        assert!(e.starts_with("paper.pdf: PDF is not read here"), "{e}");
        assert!(Format::of_name("photo.jpg", None).unwrap_err().to_string().contains(".txt, .md"));
        assert!(Format::of_name("README", None).is_err());
    }

    #[test]
    fn paragraphs_of_text_and_markdown() {
        let r = read("a.txt", b"\xEF\xBB\xBFFirst line\r\nstill first.\r\n\r\n  \n\nSecond.\n", &Format::Text).unwrap();
        assert_eq!(texts(&r), vec!["First line\nstill first.", "Second."]);
        assert_eq!(r.records[1].place, Place::Paragraph(2));
        let md = "# Title\nText under it.\n```\ncode here\n```\n## Part\n\n- item\n\n# A\n## B\nb text\n# End";
        let r = read("a.md", md.as_bytes(), &Format::Markdown).unwrap();
        assert_eq!(texts(&r), vec!["Title\nText under it.\ncode here", "Part\n- item", "A › B\nb text", "End"]);
        assert_eq!(r.records[3].place, Place::Paragraph(4));
    }

    #[test]
    fn encodings_and_refusals() {
        // UTF-16 LE and BE with their marks.
        let le: Vec<u8> = [0xFF, 0xFE].into_iter().chain("Hé 中".encode_utf16().flat_map(u16::to_le_bytes)).collect();
        let be: Vec<u8> = [0xFE, 0xFF].into_iter().chain("Hé 中".encode_utf16().flat_map(u16::to_be_bytes)).collect();
        assert_eq!(decode_text("a", &le).unwrap(), "Hé 中");
        assert_eq!(decode_text("a", &be).unwrap(), "Hé 中");
        assert_eq!(decode_text("e.txt", b" \n\t "), Err(DocsError::Empty { file: "e.txt".into() }));
        assert_eq!(decode_text("e.txt", b""), Err(DocsError::Empty { file: "e.txt".into() }));
        assert_eq!(
            decode_text("b.txt", b"PK\x03\x04\x00\x00"),
            Err(DocsError::Binary { file: "b.txt".into(), offset: 4 })
        );
        // Latin-1 "café".
        assert_eq!(
            decode_text("l.txt", b"caf\xE9 au lait"),
            Err(DocsError::Encoding { file: "l.txt".into(), offset: 3 })
        );
        // A lone surrogate in UTF-16.
        assert!(matches!(decode_text("s.txt", &[0xFF, 0xFE, 0x00, 0xD8, 0x41, 0x00]), Err(DocsError::Encoding { .. })));
        let big = vec![b'a'; MAX_FILE_BYTES as usize + 1];
        assert!(matches!(decode_text("big.txt", &big), Err(DocsError::TooLarge { .. })));
        // A file of blank paragraphs only has no records.
        assert!(matches!(read("m.md", b"```\n```\n", &Format::Markdown), Err(DocsError::Empty { .. })));
    }

    #[test]
    fn json_lines_skip_what_is_malformed() {
        let src = concat!(
            "\"a plain string\"\n",
            "{\"text\": \" Hallo Welt \", \"id\": 7, \"lang\": \"DE\", \"group\": \"g1\"}\n",
            "\n",
            "{\"text\": 3}\n",
            "not json\n",
            "{\"id\": \"x\"}\n",
            "{\"text\": \"ok\", \"lang\": \"<script>\"}\n",
            "{\"text\": \"  \"}\n",
            "[1, 2]\n",
        );
        let r = read("d.jsonl", src.as_bytes(), &Format::JsonLines).unwrap();
        assert_eq!(texts(&r), vec!["a plain string", "Hallo Welt"]);
        assert_eq!((r.records[1].id.as_deref(), r.records[1].lang.as_deref()), (Some("7"), Some("de")));
        assert_eq!((r.records[0].group.as_deref(), r.records[1].group.as_deref()), (None, Some("g1")));
        assert_eq!(r.records[1].place, Place::Line(2));
        let lines: Vec<Place> = r.skipped.iter().map(|s| s.place).collect();
        assert_eq!(lines, [4, 5, 6, 7, 8, 9].map(Place::Line));
        assert_eq!(r.skipped_count, 6);
        assert!(r.skipped[0].why.contains("not a string"), "{:?}", r.skipped[0]);
        assert!(matches!(read("d.jsonl", b"nope\n", &Format::JsonLines), Err(DocsError::Empty { .. })));
    }

    #[test]
    fn csv_columns() {
        let src = "id,title,text,lang,group\n1,T,\"Erste Zeile, mit Komma\",de,7\n2,U,,en\n3,V,\"multi\nline\",xx yy\n4,W,last,\n";
        let r = read("t.csv", src.as_bytes(), &Format::Csv { column: None, tab: false }).unwrap();
        assert_eq!(texts(&r), vec!["Erste Zeile, mit Komma", "last"]);
        assert_eq!(r.records[0].id.as_deref(), Some("1"));
        assert_eq!(r.records[0].lang.as_deref(), Some("de"));
        assert_eq!((r.records[0].group.as_deref(), r.records[1].group.as_deref()), (Some("7"), None));
        assert_eq!(r.records[1].lang, None);
        assert_eq!(r.records[1].place, Place::Line(6));
        assert_eq!(r.skipped_count, 2);
        let r = read("t.csv", src.as_bytes(), &Format::Csv { column: Some("title".into()), tab: false }).unwrap();
        assert_eq!(texts(&r)[0], "T");
        let r = read("t.csv", src.as_bytes(), &Format::Csv { column: Some("1".into()), tab: false }).unwrap();
        assert_eq!(texts(&r), vec!["T", "U", "W"]);
        let e = read("t.csv", src.as_bytes(), &Format::Csv { column: Some("body".into()), tab: false }).unwrap_err();
        assert_eq!(e.to_string(), "t.csv: no column \"body\" (the columns are id, title, text, lang, group)");
        let r = read("t.tsv", b"a\tb\nx\ty\n", &Format::Csv { column: Some("b".into()), tab: true }).unwrap();
        assert_eq!(texts(&r), vec!["y"]);
    }
}
