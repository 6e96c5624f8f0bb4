//! Fuzz targets of mlr-retrieve (see mlr-fuzz): the corpus reader on arbitrary and damaged JSON
//! lines, plain and gzip; `manifest.json`; and a store whose shard files are damaged. Each must
//! return a value or a typed error, and what it accepts keeps its invariants.

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

use mlr_fuzz::{binary, check, text, Violation};
use mlr_retrieve::corpus::Corpus;
use mlr_retrieve::encode::{encode, EncodeOptions, Slice};
use mlr_retrieve::search::{search, SearchOptions};
use mlr_retrieve::store::{Dtype, Manifest, StoreSpec, VectorStore};

#[global_allocator]
static ALLOC: mlr_fuzz::LimitedAlloc = mlr_fuzz::LimitedAlloc;

const CORPUS: &str = "{\"docid\": \"1#0\", \"title\": \"Nairobi\", \"text\": \"is a city.\"}\n\
                      {\"docid\": \"1#1\", \"title\": \"\", \"text\": \"\"}\n\n\
                      {\"docid\": \"2#0\", \"text\": \"ñandú\", \"url\": \"x\"}\n";

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// Reads the corpus file `bytes`; checks what it yields.
fn read_corpus(dir: &Path, bytes: &[u8]) -> Result<bool, Violation> {
    let path = dir.join("docs.jsonl");
    std::fs::write(&path, bytes).map_err(|e| e.to_string())?;
    let corpus = Corpus::open(&[&path]).map_err(|e| format!("a written file does not open: {e}"))?;
    let mut reader = corpus.passages();
    let mut seen = HashSet::new();
    for passage in reader.by_ref() {
        let Ok(p) = passage else { return Ok(false) };
        if p.docid.is_empty() || p.docid.contains(char::is_whitespace) || !seen.insert(p.docid.clone()) {
            return Err(format!("docid {:?} accepted (empty, spaced or repeated)", p.docid).into());
        }
    }
    let stats = reader.stats();
    if stats.passages != seen.len() as u64 || stats.empty_text > stats.passages || stats.bytes_read != stats.bytes_total
    {
        return Err(format!("stats {stats:?} after {} passages", seen.len()).into());
    }
    Ok(true)
}

#[test]
fn corpus_lines() {
    let dir = tempfile::tempdir().unwrap();
    check("retrieve corpus", text(vec![CORPUS.into()], 256), |bytes| read_corpus(dir.path(), bytes));
}

#[test]
fn corpus_gzip() {
    let dir = tempfile::tempdir().unwrap();
    // Damaged gzip streams, and valid gzip of damaged lines.
    check("retrieve corpus gzip", binary(vec![gzip(CORPUS.as_bytes())], 256), |bytes| {
        let a = read_corpus(dir.path(), bytes)?;
        let b = read_corpus(dir.path(), &gzip(bytes))?;
        Ok(a || b)
    });
}

fn spec() -> StoreSpec {
    StoreSpec { model: "m".into(), dim: 3, dtype: Dtype::F16, shard_size: 2 }
}

/// A small finished store (3 passages: two shards) in `dir/store`.
fn make_store(dir: &Path) {
    let corpus_dir = dir.join("corpus");
    std::fs::create_dir_all(&corpus_dir).unwrap();
    std::fs::write(corpus_dir.join("docs.jsonl"), CORPUS).unwrap();
    let corpus = Corpus::open(&[&corpus_dir]).unwrap();
    let options = EncodeOptions { batch_size: 2, slice: Slice::ALL };
    let encoder = |texts: &[String]| -> Result<_, String> {
        Ok(texts.iter().map(|t| vec![t.len() as f32 / 8.0, 0.5, -0.25]).collect())
    };
    encode(&dir.join("store"), &corpus, &spec(), &options, encoder, |_| {}).unwrap();
}

#[test]
fn manifests() {
    let dir = tempfile::tempdir().unwrap();
    make_store(dir.path());
    let store = dir.path().join("store");
    let seed = std::fs::read_to_string(store.join("manifest.json")).unwrap();
    check("retrieve manifest", text(vec![seed], 256), |bytes| {
        std::fs::write(store.join("manifest.json"), bytes.as_ref()).map_err(|e| e.to_string())?;
        let Ok(Some(m)) = Manifest::read(&store) else { return Ok(false) };
        if m.shards != m.total_passages.map(|n| n.div_ceil(m.shard_size as u64)) {
            return Err(format!("shards {:?} for {:?} passages accepted", m.shards, m.total_passages).into());
        }
        // Under any accepted manifest the store opens with its 3 rows (the sizes must agree, though
        // a manifest saying int8 of dim 2 fits f16 rows of dim 3: the manifest is trusted), or fails.
        let Ok(opened) = VectorStore::open(&store) else { return Ok(true) };
        let values: usize = (0..opened.len()).map(|r| opened.row(r).len()).sum();
        if opened.len() != 3 || values != 3 * m.dim {
            return Err(format!("{} rows, {values} values opened from 3 passages", opened.len()).into());
        }
        Ok(true)
    });
}

#[test]
fn shard_files() {
    let dir = tempfile::tempdir().unwrap();
    make_store(dir.path());
    let store = dir.path().join("store");
    let (vectors, docids) = (store.join("shard-00000.f16"), store.join("shard-00000.docids"));
    let seeds = (std::fs::read(&vectors).unwrap(), std::fs::read(&docids).unwrap());
    let strategy = (binary(vec![seeds.0.clone()], 32), text(vec![String::from_utf8(seeds.1.clone()).unwrap()], 32));
    check("retrieve shards", strategy, |(v, d)| {
        std::fs::write(&vectors, v.as_ref()).map_err(|e| e.to_string())?;
        std::fs::write(&docids, d.as_ref()).map_err(|e| e.to_string())?;
        let Ok(opened) = VectorStore::open(&store) else { return Ok(false) };
        if opened.len() != 3 {
            return Err(format!("{} rows opened from 3 passages", opened.len()).into());
        }
        let ids: Vec<&str> = (0..3).map(|r| opened.docid(r)).collect();
        if ids.iter().any(|d| d.is_empty() || d.contains('\n')) {
            return Err(format!("docids {ids:?}").into());
        }
        let options = SearchOptions { depth: 5, block_rows: 1 };
        match search(&opened, &["q".to_string()], &[1.0, 1.0, 1.0], &options) {
            Ok(hits) if hits[0].len() != 3 || hits[0].iter().any(|h| !h.score.is_finite()) => {
                Err(format!("hits {hits:?}").into())
            }
            Ok(_) => Ok(true),
            Err(_) => Ok(false),
        }
    });
}
