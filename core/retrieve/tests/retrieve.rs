//! End-to-end checks of mlr-retrieve on corpora generated here: reading, encoding (interrupted,
//! resumed, sliced and merged), export, exact search against a brute-force reference, and the
//! approximate index against exact search.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use mlr_retrieve::ann::{self, AnnError, AnnIndex, AnnOptions};
use mlr_retrieve::corpus::{Corpus, CorpusError};
use mlr_retrieve::encode::{encode, EncodeOptions, EncodeSummary, Progress, Slice};
use mlr_retrieve::export::{export_npy, NpyDtype};
use mlr_retrieve::merge::merge;
use mlr_retrieve::search::{search, to_run, write_run, SearchError, SearchOptions};
use mlr_retrieve::store::{Dtype, StoreError, StoreSpec, VectorStore};

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn line(docid: &str, title: &str, text: &str) -> String {
    serde_json::json!({ "docid": docid, "title": title, "text": text }).to_string()
}

fn write_gz(path: &Path, text: &str) {
    let mut gz = flate2::write::GzEncoder::new(std::fs::File::create(path).unwrap(), flate2::Compression::fast());
    gz.write_all(text.as_bytes()).unwrap();
    gz.finish().unwrap();
}

/// `n` passages over three files (one plain, two gzip), docids `doc-<i>#<j>`.
fn make_corpus(dir: &Path, n: usize) -> Vec<(String, String)> {
    std::fs::create_dir_all(dir).unwrap();
    let mut files: [String; 3] = Default::default();
    let mut expected = Vec::new();
    for i in 0..n {
        let (docid, title, text) =
            (format!("doc-{}#{}", i / 4, i % 4), format!("Title {}", i / 4), format!("passage {i}"));
        files[i * 3 / n].push_str(&(line(&docid, &title, &text) + "\n"));
        expected.push((docid, format!("{title} {text}")));
    }
    std::fs::write(dir.join("docs-0.jsonl"), &files[0]).unwrap();
    write_gz(&dir.join("docs-1.jsonl.gz"), &files[1]);
    write_gz(&dir.join("docs-2.jsonl.gz"), &files[2]);
    expected
}

const DIM: usize = 8;

/// A deterministic stand-in for a model: a unit vector from a hash of the text.
fn fake_vector(text: &str) -> Vec<f32> {
    let mut state = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
    let v: Vec<f32> = (0..DIM).map(|_| (splitmix(&mut state) >> 40) as f32 / (1u64 << 23) as f32 - 1.0).collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / norm).collect()
}

fn spec(model: &str) -> StoreSpec {
    StoreSpec { model: model.into(), dim: DIM, dtype: Dtype::F16, shard_size: 7 }
}

fn options(slice: Slice) -> EncodeOptions {
    EncodeOptions { batch_size: 3, slice }
}

/// Encodes with the fake encoder, failing at call number `fail_at` (1-based) if given; returns the
/// result and the passages the encoder was given by successful calls.
fn run_encode(
    store: &Path,
    corpus: &Corpus,
    spec: &StoreSpec,
    slice: Slice,
    fail_at: Option<usize>,
) -> (Result<EncodeSummary, StoreError>, usize) {
    let (mut calls, mut encoded) = (0, 0);
    let encoder = |texts: &[String]| -> Result<Vec<Vec<f32>>, String> {
        calls += 1;
        if Some(calls) == fail_at {
            return Err("interrupted".into());
        }
        encoded += texts.len();
        Ok(texts.iter().map(|t| fake_vector(t)).collect())
    };
    let result = encode(store, corpus, spec, &options(slice), encoder, |_| {});
    (result, encoded)
}

/// Every file of a directory and its bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        out.insert(path.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&path).unwrap());
    }
    out
}

#[test]
fn corpora_are_read_plain_and_gzip_from_many_files_in_sorted_order() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("corpus");
    std::fs::create_dir_all(&dir).unwrap();
    // Blank lines, an absent title, an empty title, empty text, and two gzip members in one file.
    std::fs::write(
        dir.join("a.jsonl"),
        format!("{}\n\n{}\n", line("a1", "Alpha", "first"), r#"{"docid": "a2", "text": "no title"}"#),
    )
    .unwrap();
    let mut members = Vec::new();
    for text in [line("b1", "", "empty title") + "\n", line("b2", "Bee", " ") + "\n"] {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(text.as_bytes()).unwrap();
        members.extend(gz.finish().unwrap());
    }
    std::fs::write(dir.join("b.jsonl.gz"), members).unwrap();
    write_gz(&dir.join("c.json.gz"), &(line("c1", "Sea", "last") + "\n"));
    std::fs::write(dir.join("notes.txt"), "not a corpus file").unwrap();
    std::fs::write(dir.join(".hidden.jsonl"), "not read").unwrap();

    let corpus = Corpus::open(&[&dir]).unwrap();
    let names: Vec<_> = corpus.files.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["a.jsonl", "b.jsonl.gz", "c.json.gz"]);
    let mut reader = corpus.passages();
    let passages: Vec<(String, String)> =
        reader.by_ref().map(|p| p.map(|p| (p.docid, p.text))).collect::<Result<_, _>>().unwrap();
    let expected =
        [("a1", "Alpha first"), ("a2", "no title"), ("b1", "empty title"), ("b2", "Bee  "), ("c1", "Sea last")];
    assert_eq!(passages, expected.map(|(d, t)| (d.to_string(), t.to_string())));
    let stats = reader.stats();
    assert_eq!((stats.files, stats.passages, stats.empty_text), (3, 5, 1));
    assert_eq!(stats.bytes_read, stats.bytes_total);
    assert_eq!(stats.bytes_total, corpus.bytes());

    // Files given one by one in another order: the same order and fingerprint.
    let given: Vec<PathBuf> = ["c.json.gz", "a.jsonl", "b.jsonl.gz"].iter().map(|n| dir.join(n)).collect();
    assert_eq!(Corpus::open(&given).unwrap(), corpus);
    // A file given twice is refused.
    let err = Corpus::open(&[dir.clone(), dir.join("a.jsonl")]).unwrap_err();
    assert!(matches!(err, CorpusError::FileTwice { .. }), "{err}");
    // Chunks: sizes up to the limit, then nothing.
    let mut reader = corpus.passages();
    let sizes: Vec<usize> = (0..4).map(|_| reader.next_chunk(2).unwrap().len()).collect();
    assert_eq!(sizes, [2, 2, 1, 0]);
    let sizes: Vec<usize> = corpus.passages().chunks(2).map(|c| c.unwrap().len()).collect();
    assert_eq!(sizes, [2, 2, 1]);
    assert!(matches!(Corpus::open(&[dir.join("none")]), Err(CorpusError::Io { .. })));
}

#[test]
fn the_fingerprint_ignores_the_directory_and_sees_sizes_names_and_edges() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    make_corpus(&a, 20);
    make_corpus(&b, 20);
    let fa = Corpus::open(&[&a]).unwrap().fingerprint;
    assert_eq!(fa, Corpus::open(&[&b]).unwrap().fingerprint);
    assert_eq!(fa.len(), 64);
    // One byte changed (same size).
    let plain = b.join("docs-0.jsonl");
    let text = std::fs::read_to_string(&plain).unwrap().replace("passage 0", "passage X");
    std::fs::write(&plain, text).unwrap();
    assert_ne!(fa, Corpus::open(&[&b]).unwrap().fingerprint);
    // A renamed file.
    make_corpus(&b, 20);
    std::fs::rename(b.join("docs-0.jsonl"), b.join("docs-00.jsonl")).unwrap();
    assert_ne!(fa, Corpus::open(&[&b]).unwrap().fingerprint);
}

#[test]
fn malformed_lines_and_duplicate_docids_name_the_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let first_error = |name: &str, text: &str| -> String {
        let dir = tmp.path().join(name.replace('.', "_"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.jsonl"), line("ok", "", "fine") + "\n").unwrap();
        let path = dir.join(name);
        if name.ends_with(".gz") {
            write_gz(&path, text);
        } else {
            std::fs::write(&path, text).unwrap();
        }
        let corpus = Corpus::open(&[&dir]).unwrap();
        let err = corpus.passages().find_map(|p| p.err()).expect("an error");
        err.to_string().replace(&format!("{}/", dir.display()), "")
    };
    let good = line("d1", "T", "x");
    let e = first_error("b.jsonl.gz", &format!("{good}\n\n{{\"docid\": \"d2\", \"title\": \"T\"}}\n"));
    assert!(e.starts_with("b.jsonl.gz:3: missing field `text`"), "{e}");
    let e = first_error("b.jsonl", &format!("{good}\nnot json\n"));
    assert!(e.starts_with("b.jsonl:2: expected"), "{e}");
    let e = first_error("b.jsonl", &format!("{good}\n{}\n", line("has space", "", "x")));
    assert_eq!(e, "b.jsonl:2: docid \"has space\" is empty or holds whitespace");
    let e = first_error("b.jsonl", &format!("{}\n", line("", "", "x")));
    assert_eq!(e, "b.jsonl:1: docid \"\" is empty or holds whitespace");
    // A duplicate across files names where it was seen the second time.
    let e = first_error("c.jsonl.gz", &format!("{good}\n{}\n", line("ok", "", "again")));
    assert_eq!(e, "c.jsonl.gz:2: docid \"ok\" appears a second time in the corpus");
    let dir = tmp.path().join("bytes");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a.jsonl"), b"{\"docid\": \"\xff\", \"text\": \"\"}\n").unwrap();
    let e = Corpus::open(&[&dir]).unwrap().passages().next().unwrap().unwrap_err().to_string();
    assert!(e.ends_with("a.jsonl:1: not UTF-8: invalid utf-8 sequence of 1 bytes from index 11"), "{e}");
    // After an error the reader stops.
    let mut reader = Corpus::open(&[&dir]).unwrap().passages();
    assert!(reader.next().unwrap().is_err());
    assert!(reader.next().is_none());
}

#[test]
fn an_encoded_store_holds_every_passage_in_corpus_order() {
    let tmp = tempfile::tempdir().unwrap();
    let expected = make_corpus(&tmp.path().join("corpus"), 30);
    let corpus = Corpus::open(&[tmp.path().join("corpus")]).unwrap();
    let dir = tmp.path().join("store");
    let mut last = Progress::default();
    let summary = encode(
        &dir,
        &corpus,
        &spec("fake"),
        &options(Slice::ALL),
        |texts: &[String]| -> Result<_, String> { Ok(texts.iter().map(|t| fake_vector(t)).collect()) },
        |p| last = *p,
    )
    .unwrap();
    // 30 passages in shards of 7 (7, 7, 7, 7, 2), batches of 3 within each shard (3 + 3 + 1, …).
    assert_eq!((summary.total_passages, summary.shards, summary.encoded, summary.calls), (30, 5, 30, 4 * 3 + 1));
    assert_eq!((last.done, last.encoded, last.read, last.bytes_read), (30, 30, 30, corpus.bytes()));
    let names: Vec<String> = files(&dir).into_keys().collect();
    // manifest.json, .lock and two files per shard.
    assert_eq!(names.len(), 2 + 2 * 5);
    assert!(names.contains(&"shard-00004.f16".to_string()) && names.contains(&"manifest.json".to_string()));
    let store = VectorStore::open_for(&dir, &spec("fake"), &corpus.fingerprint).unwrap();
    assert_eq!((store.len(), store.dim(), store.shard_count()), (30, DIM, 5));
    for (row, (docid, text)) in expected.iter().enumerate() {
        assert_eq!(store.docid(row), docid);
        let stored = store.row(row);
        let want: Vec<f32> = fake_vector(text).iter().map(|&x| half::f16::from_f32(x).to_f32()).collect();
        assert_eq!(stored, want, "row {row}");
    }
    // Blocks never cross a shard.
    let blocks = store.blocks(4);
    assert_eq!(blocks[..3], [(0, 4), (4, 3), (7, 4)]);
    assert_eq!(blocks.iter().map(|b| b.1).sum::<usize>(), 30);
    // A second run finds everything done and calls nothing.
    let (again, encoded) = run_encode(&dir, &corpus, &spec("fake"), Slice::ALL, None);
    assert_eq!((again.unwrap().reused, encoded), (30, 0));
}

#[test]
fn an_interrupted_encoding_resumes_without_re_encoding_to_identical_files() {
    let tmp = tempfile::tempdir().unwrap();
    make_corpus(&tmp.path().join("corpus"), 30);
    let corpus = Corpus::open(&[tmp.path().join("corpus")]).unwrap();
    let whole = tmp.path().join("whole");
    run_encode(&whole, &corpus, &spec("fake"), Slice::ALL, None).0.unwrap();
    let reference = files(&whole);
    // Interrupt at every call: the first batch, mid-shard, at a shard's last batch, the very last one.
    for fail_at in 1..=13 {
        let dir = tmp.path().join(format!("cut-{fail_at}"));
        let (err, first) = run_encode(&dir, &corpus, &spec("fake"), Slice::ALL, Some(fail_at));
        let err = err.unwrap_err().to_string();
        assert!(err.starts_with("encoding the batch of shard ") && err.ends_with(": interrupted"), "{err}");
        let (summary, second) = run_encode(&dir, &corpus, &spec("fake"), Slice::ALL, None);
        let summary = summary.unwrap();
        assert_eq!(first + second, 30, "interrupted at call {fail_at}: a passage was encoded twice or never");
        assert_eq!((summary.reused as usize, summary.encoded as usize), (first, second));
        assert_eq!(files(&dir), reference, "interrupted at call {fail_at}");
    }
}

#[test]
fn torn_journals_and_a_crash_between_renames_are_recovered() {
    let tmp = tempfile::tempdir().unwrap();
    make_corpus(&tmp.path().join("corpus"), 30);
    let corpus = Corpus::open(&[tmp.path().join("corpus")]).unwrap();
    let whole = tmp.path().join("whole");
    run_encode(&whole, &corpus, &spec("fake"), Slice::ALL, None).0.unwrap();
    let reference = files(&whole);

    // Interrupted in shard 1 after one batch of it, then a torn write: half a row, half a docid.
    let dir = tmp.path().join("torn");
    let (_, first) = run_encode(&dir, &corpus, &spec("fake"), Slice::ALL, Some(5));
    assert_eq!(first, 7 + 3);
    for (name, junk) in [("shard-00001.f16.partial", &[1u8; DIM + 3][..]), ("shard-00001.docids.partial", b"doc-9")] {
        let mut f = std::fs::OpenOptions::new().append(true).open(dir.join(name)).unwrap();
        f.write_all(junk).unwrap();
    }
    let (summary, second) = run_encode(&dir, &corpus, &spec("fake"), Slice::ALL, None);
    assert_eq!((summary.unwrap().reused, second), (10, 20));
    assert_eq!(files(&dir), reference);

    // The vectors renamed into place, the docids still a journal.
    std::fs::rename(dir.join("shard-00002.docids"), dir.join("shard-00002.docids.partial")).unwrap();
    let (summary, calls) = run_encode(&dir, &corpus, &spec("fake"), Slice::ALL, None);
    assert_eq!((summary.unwrap().reused, calls), (30, 0));
    assert_eq!(files(&dir), reference);

    // A finished shard whose docids are not the corpus's is refused, naming the file and row.
    let ids = dir.join("shard-00003.docids");
    let text = std::fs::read_to_string(&ids).unwrap().replacen("doc-5#1", "doc-5#9", 1);
    std::fs::write(&ids, text).unwrap();
    let err = run_encode(&dir, &corpus, &spec("fake"), Slice::ALL, None).0.unwrap_err();
    assert!(matches!(&err, StoreError::CorpusChanged { row: 0, .. }), "{err}");
    assert!(
        err.to_string().contains("shard-00003.docids: row 0 is docid \"doc-5#9\" but the corpus has \"doc-5#1\""),
        "{err}"
    );
}

#[test]
fn slices_merged_equal_the_one_machine_store() {
    let tmp = tempfile::tempdir().unwrap();
    make_corpus(&tmp.path().join("corpus"), 30);
    let corpus = Corpus::open(&[tmp.path().join("corpus")]).unwrap();
    let whole = tmp.path().join("whole");
    run_encode(&whole, &corpus, &spec("fake"), Slice::ALL, None).0.unwrap();
    let (s0, s1) = (tmp.path().join("s0"), tmp.path().join("s1"));
    let (r0, n0) = run_encode(&s0, &corpus, &spec("fake"), Slice { index: 0, count: 2 }, None);
    let (r1, n1) = run_encode(&s1, &corpus, &spec("fake"), Slice { index: 1, count: 2 }, None);
    // Shards 0, 2, 4 (7 + 7 + 2 passages) and 1, 3 (7 + 7).
    assert_eq!((n0, n1), (16, 14));
    assert_eq!((r0.unwrap().other_slices, r1.unwrap().other_slices), (14, 16));
    // A slice alone is not a store.
    let err = VectorStore::open(&s0).unwrap_err().to_string();
    assert!(err.ends_with("shard 1 of 5 is missing (a --shard slice? merge the slices first)"), "{err}");
    let err = merge(&[&s0], &tmp.path().join("m")).unwrap_err().to_string();
    assert!(err.contains("shard 1 of 5 is in none of the stores"), "{err}");
    let err = merge(&[&s0, &s1, &s0], &tmp.path().join("m")).unwrap_err().to_string();
    assert!(err.contains("shard 0 is in both"), "{err}");

    let merged = tmp.path().join("merged");
    let summary = merge(&[&s1, &s0], &merged).unwrap();
    assert_eq!((summary.shards, summary.copied, summary.total_passages), (5, 5, 30));
    assert_eq!(files(&merged), files(&whole));
    // Into one of the slices: only the other's shards are copied.
    let summary = merge(&[&s0, &s1], &s1).unwrap();
    assert_eq!(summary.copied, 3);
    assert_eq!(files(&s1), files(&whole));
    // A finished destination is not overwritten.
    assert!(merge(&[&s0], &whole).unwrap_err().to_string().contains("already holds a store"));
}

#[test]
fn a_store_of_another_model_corpus_or_shape_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    make_corpus(&tmp.path().join("corpus"), 10);
    let corpus = Corpus::open(&[tmp.path().join("corpus")]).unwrap();
    let dir = tmp.path().join("store");
    run_encode(&dir, &corpus, &spec("model-a"), Slice::ALL, None).0.unwrap();
    let before = files(&dir);
    let field = |result: Result<EncodeSummary, StoreError>| match result {
        Err(StoreError::Mismatch { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    assert_eq!(field(run_encode(&dir, &corpus, &spec("model-b"), Slice::ALL, None).0), "model");
    assert_eq!(field(run_encode(&dir, &corpus, &StoreSpec { dim: 4, ..spec("model-a") }, Slice::ALL, None).0), "dim");
    let int8 = StoreSpec { dtype: Dtype::Int8, ..spec("model-a") };
    assert_eq!(field(run_encode(&dir, &corpus, &int8, Slice::ALL, None).0), "dtype");
    let shards = StoreSpec { shard_size: 5, ..spec("model-a") };
    assert_eq!(field(run_encode(&dir, &corpus, &shards, Slice::ALL, None).0), "shard_size");
    make_corpus(&tmp.path().join("other"), 11);
    let other = Corpus::open(&[tmp.path().join("other")]).unwrap();
    let err = run_encode(&dir, &other, &spec("model-a"), Slice::ALL, None).0.unwrap_err();
    assert!(err.to_string().contains("the store holds vectors for corpus fingerprint"), "{err}");
    assert!(VectorStore::open_for(&dir, &spec("model-b"), &corpus.fingerprint).is_err());
    assert_eq!(files(&dir), before, "a refused run changes nothing");
    // One writer at a time.
    let lock = std::fs::File::open(dir.join(".lock")).unwrap();
    lock.lock().unwrap();
    let err = run_encode(&dir, &corpus, &spec("model-a"), Slice::ALL, None).0.unwrap_err();
    assert!(matches!(err, StoreError::Busy { .. }), "{err}");
    drop(lock);
    assert_eq!(run_encode(&dir, &corpus, &spec("model-a"), Slice::ALL, None).0.unwrap().reused, 10);
    // Merging stores of two models is refused too.
    let b = tmp.path().join("store-b");
    run_encode(&b, &corpus, &spec("model-b"), Slice::ALL, None).0.unwrap();
    let err = merge(&[&dir, &b], &tmp.path().join("m")).unwrap_err().to_string();
    assert!(err.contains("vectors for model model-b, not model-a"), "{err}");
}

#[test]
fn encoder_output_that_cannot_be_stored_names_the_docid() {
    let tmp = tempfile::tempdir().unwrap();
    make_corpus(&tmp.path().join("corpus"), 10);
    let corpus = Corpus::open(&[tmp.path().join("corpus")]).unwrap();
    let err_with = |bad: fn(&mut Vec<Vec<f32>>)| {
        let encoder = |texts: &[String]| -> Result<_, String> {
            let mut out: Vec<Vec<f32>> = texts.iter().map(|t| fake_vector(t)).collect();
            bad(&mut out);
            Ok(out)
        };
        let dir = tempfile::tempdir_in(tmp.path()).unwrap();
        encode(dir.path(), &corpus, &spec("fake"), &options(Slice::ALL), encoder, |_| {}).unwrap_err().to_string()
    };
    assert_eq!(
        err_with(|v| v[1][2] = f32::NAN),
        "the encoder's vector of docid doc-0#1: value NaN at dimension 2 is not finite"
    );
    assert_eq!(
        err_with(|v| v[0][0] = 1e6),
        "the encoder's vector of docid doc-0#0: value 1000000 at dimension 0 overflows f16"
    );
    assert!(err_with(|v| {
        v[2].pop();
    })
    .ends_with("doc-0#2: dimension 7, the store's is 8"));
    assert!(err_with(|v| v.truncate(1)).ends_with("doc-0#0: 1 vectors for a batch of 3 texts starting here"));
}

fn read_npy(path: &Path) -> (String, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
    let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    assert_eq!((10 + len) % 64, 0);
    (String::from_utf8(bytes[10..10 + len].to_vec()).unwrap(), bytes[10 + len..].to_vec())
}

#[test]
fn npy_exports_hold_the_stored_vectors_and_docids() {
    let tmp = tempfile::tempdir().unwrap();
    let expected = make_corpus(&tmp.path().join("corpus"), 30);
    let corpus = Corpus::open(&[tmp.path().join("corpus")]).unwrap();
    for dtype in [Dtype::F16, Dtype::Int8] {
        let dir = tmp.path().join(format!("{dtype:?}"));
        run_encode(&dir, &corpus, &StoreSpec { dtype, ..spec("fake") }, Slice::ALL, None).0.unwrap();
        let store = VectorStore::open(&dir).unwrap();
        let rows: Vec<f32> = (0..30).flat_map(|r| store.row(r)).collect();
        if dtype == Dtype::Int8 {
            let exact: Vec<f32> = expected.iter().flat_map(|(_, t)| fake_vector(t)).collect();
            // Half a step of the largest |value| / 127.
            assert!(rows.iter().zip(&exact).all(|(a, b)| (a - b).abs() <= 0.5 / 127.0 + 1e-6));
        }
        let out = tmp.path().join(format!("export-{dtype:?}"));
        export_npy(&store, &out, NpyDtype::F32).unwrap();
        let (header, data) = read_npy(&out.join("vectors.npy"));
        assert!(header.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (30, 8), }"), "{header}");
        let values: Vec<f32> = data.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
        assert_eq!(values, rows);
        export_npy(&store, &out, NpyDtype::F16).unwrap();
        let (header, data) = read_npy(&out.join("vectors.npy"));
        assert!(header.starts_with("{'descr': '<f2', 'fortran_order': False, 'shape': (30, 8), }"), "{header}");
        let values: Vec<f32> = data.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect();
        if dtype == Dtype::F16 {
            assert_eq!(values, rows);
        } else {
            assert!(values.iter().zip(&rows).all(|(a, b)| (a - b).abs() <= 1e-3));
        }
        let docids = std::fs::read_to_string(out.join("docids.txt")).unwrap();
        assert_eq!(docids.lines().collect::<Vec<_>>(), expected.iter().map(|e| e.0.as_str()).collect::<Vec<_>>());
        assert_eq!(files(&out).len(), 2, "no partial files left");
    }
}

/// A store of `n` given vectors: docid `i` gets `vectors[i]`; docids are random strings so ties
/// are broken in an order unrelated to the rows.
fn store_of(dir: &Path, docids: &[String], vectors: &[Vec<f32>], shard_size: usize) -> VectorStore {
    let corpus_dir = dir.join("corpus");
    std::fs::create_dir_all(&corpus_dir).unwrap();
    let text: String = docids.iter().enumerate().map(|(i, d)| line(d, "", &i.to_string()) + "\n").collect();
    std::fs::write(corpus_dir.join("docs.jsonl"), text).unwrap();
    let corpus = Corpus::open(&[&corpus_dir]).unwrap();
    let spec = StoreSpec { model: "table".into(), dim: vectors[0].len(), dtype: Dtype::F16, shard_size };
    let encoder = |texts: &[String]| -> Result<_, std::num::ParseIntError> {
        texts.iter().map(|t| Ok(vectors[t.parse::<usize>()?].clone())).collect()
    };
    let opts = EncodeOptions { batch_size: 5, slice: Slice::ALL };
    encode(&dir.join("store"), &corpus, &spec, &opts, encoder, |_| {}).unwrap();
    VectorStore::open(&dir.join("store")).unwrap()
}

/// The reference: every score in f64, sorted by score descending then docid descending.
fn brute_force(store: &VectorStore, query: &[f32], depth: usize) -> Vec<(String, f64)> {
    let mut all: Vec<(String, f64)> = (0..store.len())
        .map(|r| (store.docid(r).to_string(), store.row(r).iter().zip(query).map(|(&a, &b)| a as f64 * b as f64).sum()))
        .collect();
    all.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap().then_with(|| b.0.as_bytes().cmp(a.0.as_bytes())));
    all.truncate(depth);
    all
}

#[test]
fn exact_search_equals_a_brute_force_reference_with_ties() {
    let tmp = tempfile::tempdir().unwrap();
    let mut state = 7u64;
    let (n, dim) = (157, 6);
    // Small integers: every product is exact in f16, f32 and f64, and scores tie often.
    let mut int = |k: u64| (splitmix(&mut state) % k) as f32 - (k / 2) as f32;
    let vectors: Vec<Vec<f32>> = (0..n).map(|_| (0..dim).map(|_| int(3)).collect()).collect();
    let queries: Vec<f32> = (0..9 * dim).map(|_| int(5)).collect();
    let mut docids: Vec<String> = (0..n).map(|i| format!("{:x}-{i}", splitmix(&mut state) % 4096)).collect();
    docids[3] = "é-3".into();
    let store = store_of(tmp.path(), &docids, &vectors, 40);
    let qids: Vec<String> = (0..9).map(|q| format!("q{q}")).collect();
    for (depth, block_rows) in [(1, 4096), (10, 7), (100, 16), (157, 1), (500, 33)] {
        let results = search(&store, &qids, &queries, &SearchOptions { depth, block_rows }).unwrap();
        for (q, hits) in results.iter().enumerate() {
            let got: Vec<(String, f64)> = hits.iter().map(|h| (h.docid.clone(), h.score as f64)).collect();
            assert_eq!(got, brute_force(&store, &queries[q * dim..(q + 1) * dim], depth), "depth {depth} query {q}");
            assert!(hits.iter().all(|h| store.docid(h.row) == h.docid));
        }
    }
    // The same on one thread.
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let one = pool.install(|| search(&store, &qids, &queries, &SearchOptions { depth: 20, block_rows: 9 }).unwrap());
    assert_eq!(one, search(&store, &qids, &queries, &SearchOptions { depth: 20, block_rows: 64 }).unwrap());
}

#[test]
fn runs_are_written_in_the_evaluators_order_and_evaluate() {
    let tmp = tempfile::tempdir().unwrap();
    let vectors = vec![vec![0.5, 0.25], vec![-0.5, 0.25], vec![0.25, 0.5], vec![0.1, -0.1], vec![0.5, 0.25]];
    let docids: Vec<String> = ["a", "b", "c", "d", "e"].map(String::from).to_vec();
    let store = store_of(tmp.path(), &docids, &vectors, 2);
    let qids = vec!["q1".to_string(), "q2".to_string()];
    let results = search(&store, &qids, &[1.0, 0.0, 0.0, -1.0], &SearchOptions { depth: 3, block_rows: 2 }).unwrap();
    let mut text = Vec::new();
    write_run(&mut text, &qids, &results, "mlr").unwrap();
    let text = String::from_utf8(text).unwrap();
    // q1: a and e tie at 0.5 (e first), then c. q2: d at 0.1, then -0.25 for a, b and e (e, b, a).
    assert_eq!(text, "q1 Q0 e 1 0.5 mlr\nq1 Q0 a 2 0.5 mlr\nq1 Q0 c 3 0.25 mlr\nq2 Q0 d 1 0.1 mlr\nq2 Q0 e 2 -0.25 mlr\nq2 Q0 b 3 -0.25 mlr\n".replace("0.1 ", &format!("{} ", half::f16::from_f32(0.1).to_f32())));
    let parsed = mlr_eval::trec::Run::parse(&text, "run").unwrap();
    assert_eq!(parsed.to_trec("mlr"), text, "the evaluator ranks the file as it was written");
    let qrels = mlr_eval::trec::Qrels::parse("q1 0 a 1\nq2 0 b 2\n", "qrels").unwrap();
    let o = mlr_eval::trec::TrecOptions::default();
    let report = mlr_eval::trec::evaluate(&qrels, &to_run(&qids, &results), &o).unwrap();
    assert_eq!(report, mlr_eval::trec::evaluate(&qrels, &parsed, &o).unwrap());
    assert_eq!(report.mean.values["recip_rank"], (0.5 + 1.0 / 3.0) / 2.0);
    assert!(write_run(&mut Vec::new(), &qids, &results, "two words").is_err());
}

#[test]
fn non_finite_values_are_refused_naming_the_query_or_docid() {
    let tmp = tempfile::tempdir().unwrap();
    let vectors: Vec<Vec<f32>> = (0..12).map(|i| vec![i as f32 / 16.0, 1.0]).collect();
    let docids: Vec<String> = (0..12).map(|i| format!("p{i}")).collect();
    let store = store_of(tmp.path(), &docids, &vectors, 5);
    let qids = vec!["q1".to_string(), "q2".to_string()];
    let err = search(&store, &qids, &[1.0, 0.0, 0.5, f32::NAN], &SearchOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "query q2: the vector has a non-finite value (NaN) at dimension 1: nothing was searched"
    );
    let err = search(&store, &qids, &[1.0, 0.0, f32::INFINITY, 0.0], &SearchOptions::default()).unwrap_err();
    assert!(matches!(err, SearchError::NonFiniteQuery { ref qid, dim: 0, .. } if qid == "q2"), "{err}");
    // Overflowing scores.
    let err = search(&store, &qids[..1], &[f32::MAX, f32::MAX], &SearchOptions::default()).unwrap_err();
    assert!(matches!(err, SearchError::NonFiniteScore { .. }), "{err}");
    // A NaN written into a stored row (f16 0x7e00 at row 7, dimension 1: shard 1, row 2).
    let path = tmp.path().join("store/shard-00001.f16");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[2 * (2 * 2 + 1)..][..2].copy_from_slice(&0x7e00u16.to_le_bytes());
    std::fs::write(&path, bytes).unwrap();
    let store = VectorStore::open(&tmp.path().join("store")).unwrap();
    let err = search(&store, &qids, &[1.0, 0.0, 0.0, 1.0], &SearchOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "docid p7: the stored vector has a non-finite value (NaN) at dimension 1: the store is damaged"
    );
    let err = search(&store, &qids[..1], &[1.0], &SearchOptions::default()).unwrap_err();
    assert!(matches!(err, SearchError::Shape(_)), "{err}");
    let err = search(&store, &[qids[0].clone(), qids[0].clone()], &[0.0; 4], &SearchOptions::default()).unwrap_err();
    assert_eq!(err.to_string(), "query id q1 is given twice");
}

/// `n` random unit vectors of dimension `dim`, clustered around 20 centres as embeddings are.
fn clustered(n: usize, dim: usize, state: &mut u64) -> Vec<Vec<f32>> {
    let unit = |state: &mut u64| (splitmix(state) >> 40) as f32 / (1u64 << 23) as f32 - 1.0;
    let centres: Vec<Vec<f32>> = (0..20).map(|_| (0..dim).map(|_| unit(state)).collect()).collect();
    (0..n)
        .map(|i| {
            let v: Vec<f32> = centres[i % 20].iter().map(|c| c + 0.5 * unit(state)).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter().map(|x| x / norm).collect()
        })
        .collect()
}

#[test]
fn the_approximate_index_finds_what_exact_search_finds_and_scores_it_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    let mut state = 11u64;
    let (n, dim, depth) = (3000, 16, 10);
    let vectors = clustered(n, dim, &mut state);
    let docids: Vec<String> = (0..n).map(|i| format!("d{i}")).collect();
    let store = store_of(tmp.path(), &docids, &vectors, 1000);
    let qids: Vec<String> = (0..40).map(|q| format!("q{q}")).collect();
    let queries: Vec<f32> = clustered(40, dim, &mut state).concat();
    assert!(!ann::exists(&store));
    let progress = std::sync::atomic::AtomicUsize::new(0);
    let index = ann::build(&store, &AnnOptions::default(), |n| {
        progress.fetch_max(n, std::sync::atomic::Ordering::Relaxed);
    })
    .unwrap();
    assert_eq!(progress.into_inner(), n);
    assert!(ann::exists(&store));
    assert_eq!(index.meta().rows, n);
    let approx = ann::search(&index, &store, &qids, &queries, depth, 256).unwrap();
    let exact = search(&store, &qids, &queries, &SearchOptions { depth: n, block_rows: 4096 }).unwrap();
    let mut found = 0;
    for (a, e) in approx.iter().zip(&exact) {
        assert_eq!(a.len(), depth);
        // Every row scores what exact search gives it, and the rows are in exact search's order.
        let position = |h: &mlr_retrieve::search::Hit| e.iter().position(|x| x.row == h.row).unwrap();
        for h in a {
            assert_eq!(h.score, e[position(h)].score, "{}", h.docid);
            assert_eq!(store.docid(h.row), h.docid);
        }
        assert!(a.windows(2).all(|w| position(&w[0]) < position(&w[1])));
        found += a.iter().filter(|h| position(h) < depth).count();
    }
    let recall = found as f64 / (depth * qids.len()) as f64;
    assert!(recall >= 0.99, "recall@{depth} {recall}");
    // Opened again (memory-mapped): the same results.
    drop(index);
    let index = AnnIndex::open(&store).unwrap();
    assert_eq!(ann::search(&index, &store, &qids, &queries, depth, 256).unwrap(), approx);
    // The query checks of exact search apply.
    let mut bad = queries.clone();
    bad[dim + 3] = f32::NAN;
    let err = ann::search(&index, &store, &qids, &bad, depth, 256).unwrap_err();
    assert!(matches!(err, SearchError::NonFiniteQuery { ref qid, dim: 3, .. } if qid == "q1"), "{err}");
    // An index beside another store (another corpus) is refused as stale.
    let other = tempfile::tempdir().unwrap();
    let store2 = store_of(other.path(), &docids[..n - 1], &vectors[..n - 1], 1000);
    for file in [ann::INDEX_FILE, ann::INDEX_META] {
        std::fs::copy(store.dir().join(file), store2.dir().join(file)).unwrap();
    }
    let err = AnnIndex::open(&store2).unwrap_err();
    assert!(matches!(err, AnnError::Stale { .. }), "{err}");
    assert!(err.to_string().contains("build it again"), "{err}");
    // A truncated index file is refused before usearch reads it.
    let file = store.dir().join(ann::INDEX_FILE);
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let err = AnnIndex::open(&store).unwrap_err();
    assert!(err.to_string().contains("damaged or replaced"), "{err}");
    // A damaged metadata file is named.
    std::fs::write(store2.dir().join(ann::INDEX_META), "{").unwrap();
    let err = AnnIndex::open(&store2).unwrap_err();
    assert!(matches!(err, AnnError::Meta { .. }), "{err}");
}
