//! MIRACL / pyserini corpora, streamed passage by passage.
//!
//! - **Files.** JSON lines `{"docid": …, "title": …, "text": …}` (`title` may be absent or empty),
//!   plain or gzip. A file is read as gzip when its first two bytes are gzip's magic `1f 8b`
//!   (MIRACL ships `docs-*.jsonl.gz`), whatever its name; concatenated gzip members are read whole.
//!   Blank lines are skipped (they still count for line numbers).
//! - **Which files, in which order.** [`Corpus::open`] takes files and directories. A directory
//!   stands for its files (not recursively) named `*.jsonl`, `*.jsonl.gz`, `*.json` or `*.json.gz`
//!   (hidden files skipped). All files are then sorted by path, in byte order, and read in that
//!   order: passage `i` of the corpus is the `i`-th line of that concatenation, whatever order the
//!   arguments came in. (`docs-10` sorts before `docs-2`: the order only has to be the same on
//!   every machine, and it is.) A file listed twice is an error.
//! - **Passage text.** What the encoder is given is `title + " " + text`, or `text` alone when the
//!   title is empty, as pyserini's MIRACL dense indexes are built (`--fields title text`, joined by a
//!   space); see [`passage_text`]. Model prefixes (E5's `passage: `) are the caller's.
//! - **Checks.** A line that is not such an object, a docid that is empty or holds whitespace (it
//!   could not be written in a TREC run) and a docid seen before anywhere in the corpus are errors
//!   naming `file:line`. Empty text is allowed and counted ([`CorpusStats::empty_text`]). Duplicates
//!   are found with a hash set of 128-bit hashes of the docids (two distinct docids collide with
//!   probability ~n²/2¹²⁹, 1e-24 at English's 32.9 M passages). Its memory is 17 bytes per slot,
//!   slots a power of two at most 7/8 full: about 1.1 GB at 32.9 M passages (1.7 GB while the table
//!   grows), 4.5 MB at Swahili's 0.13 M.
//! - **Fingerprint.** [`Corpus::fingerprint`] identifies the corpus for a vector store: SHA-256 over
//!   each file's name (not its directory), size, and its first and last MiB. It is computed in
//!   milliseconds whatever the corpus size, so every run can check it, and it is the same on every
//!   machine (modification times and absolute paths are not). A full hash would cost a pass over
//!   gigabytes at every start; what the fingerprint cannot see (an edit in the middle of a file that
//!   keeps its size) the store catches where it matters, by comparing the docids of each finished
//!   shard with the corpus as it streams past.

use std::collections::HashSet;
use std::fs::File;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use flate2::read::MultiGzDecoder;
use mlr_eval::trec::CorpusDoc;
use sha2::{Digest, Sha256};

/// Why a corpus cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    /// A file or directory could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A malformed line.
    #[error("{}:{line}: {message}", path.display())]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number (of the decompressed text).
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// No corpus file among the inputs.
    #[error("no corpus files in {inputs} (a directory's are *.jsonl, *.jsonl.gz, *.json, *.json.gz)")]
    NoFiles {
        /// The inputs, as given.
        inputs: String,
    },
    /// The same file given twice (directly or through its directory).
    #[error("{} is given twice", path.display())]
    FileTwice {
        /// The file.
        path: PathBuf,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> CorpusError + '_ {
    move |source| CorpusError::Io { path: path.to_path_buf(), source }
}

/// The text the encoder is given for a passage: `title + " " + text`, or `text` when the title is
/// empty (pyserini's MIRACL dense indexes).
pub fn passage_text(title: &str, text: &str) -> String {
    if title.is_empty() {
        text.to_string()
    } else {
        format!("{title} {text}")
    }
}

/// One passage: its docid and the text to encode ([`passage_text`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passage {
    /// The qrels' docno.
    pub docid: String,
    /// Title and text joined as [`passage_text`] says.
    pub text: String,
}

/// A corpus: its files in reading order and their fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corpus {
    /// Files in reading order (see the module docs).
    pub files: Vec<PathBuf>,
    /// Their sizes in bytes (compressed size for gzip files).
    pub sizes: Vec<u64>,
    /// The fingerprint ([`Corpus::fingerprint`]).
    pub fingerprint: String,
}

const CORPUS_SUFFIXES: [&str; 4] = [".jsonl", ".jsonl.gz", ".json", ".json.gz"];
const EDGE: u64 = 1 << 20;

impl Corpus {
    /// Lists the corpus files of `inputs` (files, or directories standing for their corpus files),
    /// sorts them and fingerprints them.
    pub fn open<P: AsRef<Path>>(inputs: &[P]) -> Result<Self, CorpusError> {
        let mut files = Vec::new();
        for input in inputs {
            let input = input.as_ref();
            let meta = std::fs::metadata(input).map_err(io_error(input))?;
            if meta.is_dir() {
                for entry in std::fs::read_dir(input).map_err(io_error(input))? {
                    let path = entry.map_err(io_error(input))?.path();
                    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                    if !name.starts_with('.') && CORPUS_SUFFIXES.iter().any(|s| name.ends_with(s)) && path.is_file() {
                        files.push(path);
                    }
                }
            } else {
                files.push(input.to_path_buf());
            }
        }
        if files.is_empty() {
            let inputs = inputs.iter().map(|p| p.as_ref().display().to_string()).collect::<Vec<_>>().join(", ");
            return Err(CorpusError::NoFiles { inputs });
        }
        files.sort_by(|a, b| a.as_os_str().as_encoded_bytes().cmp(b.as_os_str().as_encoded_bytes()));
        if let Some(w) = files.windows(2).find(|w| w[0] == w[1]) {
            return Err(CorpusError::FileTwice { path: w[0].clone() });
        }
        let mut sizes = Vec::with_capacity(files.len());
        let mut hash = Sha256::new();
        hash.update(b"mlr-corpus-fingerprint-v1\n");
        for path in &files {
            let mut file = File::open(path).map_err(io_error(path))?;
            let size = file.metadata().map_err(io_error(path))?.len();
            let name = path.file_name().map(|n| n.as_encoded_bytes()).unwrap_or_default();
            hash.update((name.len() as u64).to_le_bytes());
            hash.update(name);
            hash.update(size.to_le_bytes());
            // The first MiB, then the last MiB (or what is left after the first).
            let head = size.min(EDGE);
            let tail_start = size.saturating_sub(EDGE).max(head);
            let mut buf = Vec::with_capacity(EDGE as usize);
            (&mut file).take(head).read_to_end(&mut buf).map_err(io_error(path))?;
            file.seek(SeekFrom::Start(tail_start)).map_err(io_error(path))?;
            (&mut file).take(size - tail_start).read_to_end(&mut buf).map_err(io_error(path))?;
            if buf.len() as u64 != head + size - tail_start {
                let source = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the file shrank while read");
                return Err(CorpusError::Io { path: path.clone(), source });
            }
            hash.update(&buf);
            sizes.push(size);
        }
        let fingerprint = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
        Ok(Self { files, sizes, fingerprint })
    }

    /// Total size of the files in bytes.
    pub fn bytes(&self) -> u64 {
        self.sizes.iter().sum()
    }

    /// A reader of the passages, from the first file's first line.
    pub fn passages(&self) -> CorpusReader {
        CorpusReader {
            files: self.files.clone(),
            next_file: 0,
            current: None,
            seen: HashSet::new(),
            stats: CorpusStats { bytes_total: self.bytes(), ..Default::default() },
            bytes_before: 0,
            bytes_read: Arc::new(AtomicU64::new(0)),
            failed: false,
            line_buf: Vec::new(),
        }
    }
}

/// Counts so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CorpusStats {
    /// Files opened.
    pub files: usize,
    /// Passages read.
    pub passages: u64,
    /// Passages whose `text` is empty or only whitespace (their title, if any, is encoded).
    pub empty_text: u64,
    /// Bytes of the files consumed (compressed bytes for gzip), for progress and ETA.
    pub bytes_read: u64,
    /// Total bytes of the files.
    pub bytes_total: u64,
}

/// Counts the bytes a reader consumes.
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

struct OpenFile {
    path: PathBuf,
    lines: Box<dyn BufRead + Send>,
    line: u64,
}

/// Streams the passages of a [`Corpus`] with every check of the module docs. After an error it
/// yields nothing more.
pub struct CorpusReader {
    files: Vec<PathBuf>,
    next_file: usize,
    current: Option<OpenFile>,
    seen: HashSet<u128>,
    stats: CorpusStats,
    bytes_before: u64,
    bytes_read: Arc<AtomicU64>,
    failed: bool,
    line_buf: Vec<u8>,
}

impl std::fmt::Debug for CorpusReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CorpusReader").field("files", &self.files).field("stats", &self.stats()).finish()
    }
}

fn docid_key(docid: &str) -> u128 {
    let half = |salt: u8| {
        let mut h = DefaultHasher::new();
        salt.hash(&mut h);
        docid.hash(&mut h);
        h.finish() as u128
    };
    (half(0) << 64) | half(1)
}

impl CorpusReader {
    /// Counts so far.
    pub fn stats(&self) -> CorpusStats {
        CorpusStats { bytes_read: self.bytes_before + self.bytes_read.load(Ordering::Relaxed), ..self.stats }
    }

    fn open_next(&mut self) -> Result<bool, CorpusError> {
        let Some(path) = self.files.get(self.next_file).cloned() else { return Ok(false) };
        self.next_file += 1;
        self.bytes_before += self.bytes_read.swap(0, Ordering::Relaxed);
        let file = File::open(&path).map_err(io_error(&path))?;
        let mut raw = BufReader::new(Counting { inner: file, count: self.bytes_read.clone() });
        let gzip = raw.fill_buf().map_err(io_error(&path))?.starts_with(&[0x1f, 0x8b]);
        let lines: Box<dyn BufRead + Send> =
            if gzip { Box::new(BufReader::new(MultiGzDecoder::new(raw))) } else { Box::new(raw) };
        self.stats.files += 1;
        self.current = Some(OpenFile { path, lines, line: 0 });
        Ok(true)
    }

    fn read_passage(&mut self) -> Result<Option<Passage>, CorpusError> {
        loop {
            if self.current.is_none() && !self.open_next()? {
                return Ok(None);
            }
            let Some(file) = self.current.as_mut() else { return Ok(None) };
            self.line_buf.clear();
            let n = file.lines.read_until(b'\n', &mut self.line_buf).map_err(io_error(&file.path))?;
            if n == 0 {
                self.current = None;
                continue;
            }
            file.line += 1;
            let at = |message: String| CorpusError::Line { path: file.path.clone(), line: file.line, message };
            let line = std::str::from_utf8(&self.line_buf).map_err(|e| at(format!("not UTF-8: {e}")))?;
            if line.trim().is_empty() {
                continue;
            }
            let doc: CorpusDoc = serde_json::from_str(line).map_err(|e| at(e.to_string()))?;
            if doc.docid.is_empty() || doc.docid.contains(char::is_whitespace) {
                return Err(at(format!("docid {:?} is empty or holds whitespace", doc.docid)));
            }
            if !self.seen.insert(docid_key(&doc.docid)) {
                return Err(at(format!("docid {:?} appears a second time in the corpus", doc.docid)));
            }
            self.stats.passages += 1;
            if doc.text.trim().is_empty() {
                self.stats.empty_text += 1;
            }
            return Ok(Some(Passage { text: passage_text(&doc.title, &doc.text), docid: doc.docid }));
        }
    }

    /// The passages in chunks of `size` (the last may be shorter); after an error, nothing more.
    pub fn chunks(&mut self, size: usize) -> impl Iterator<Item = Result<Vec<Passage>, CorpusError>> + '_ {
        let size = size.max(1);
        std::iter::from_fn(move || match self.next_chunk(size) {
            Ok(chunk) if chunk.is_empty() => None,
            other => Some(other),
        })
    }

    /// The next up to `max` passages; fewer only at the end of the corpus, none after it.
    pub fn next_chunk(&mut self, max: usize) -> Result<Vec<Passage>, CorpusError> {
        let mut chunk = Vec::new();
        while chunk.len() < max {
            match self.next() {
                Some(p) => chunk.push(p?),
                None => break,
            }
        }
        Ok(chunk)
    }
}

impl Iterator for CorpusReader {
    type Item = Result<Passage, CorpusError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let next = self.read_passage().transpose();
        if matches!(next, Some(Err(_))) {
            self.failed = true;
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_title_is_joined_with_a_space_unless_empty() {
        assert_eq!(passage_text("Nairobi", "is a city."), "Nairobi is a city.");
        assert_eq!(passage_text("", "is a city."), "is a city.");
        assert_eq!(passage_text("Nairobi", ""), "Nairobi ");
    }

    #[test]
    fn docid_keys_differ_in_both_halves() {
        let (a, b) = (docid_key("1#0"), docid_key("1#1"));
        assert_ne!(a >> 64, b >> 64);
        assert_ne!(a as u64, b as u64);
        assert_eq!(a, docid_key("1#0"));
    }
}
