//! An embedding cache on disk, so that re-scoring (and evaluating another split of the same data)
//! does not encode again.
//!
//! One append-only file per model and encoding setting: `<dir>/<model sha256>-<setting>.bin`,
//! a sequence of records `sha256(role ‖ text)` (32 bytes) + `dim` little-endian f32. Records are
//! appended as batches finish, so an interrupted run keeps what it encoded; a torn last record is
//! dropped on the next load.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

/// Cached vectors of one model + setting.
pub struct EmbeddingCache {
    path: PathBuf,
    dim: usize,
    vectors: HashMap<[u8; 32], Vec<f32>>,
    file: Option<File>,
}

/// Where the cache lives unless `--cache-dir` (or `$MLR_EMBED_CACHE`) says otherwise:
/// `<mlr's cache directory>/embeddings`.
pub fn default_dir() -> PathBuf {
    crate::cache_root().join("embeddings")
}

/// The key of a text under a role prefix.
pub fn key(role: &str, text: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(role.as_bytes());
    h.update([0u8]);
    h.update(text.as_bytes());
    h.finalize().into()
}

impl EmbeddingCache {
    /// An empty cache that never touches the disk (`--no-cache`).
    pub fn disabled(dim: usize) -> Self {
        Self { path: PathBuf::new(), dim, vectors: HashMap::new(), file: None }
    }

    /// Opens (or creates) `<dir>/<name>.bin`.
    pub fn open(dir: &Path, name: &str, dim: usize) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(format!("{name}.bin"));
        let mut bytes = Vec::new();
        if path.exists() {
            File::open(&path)
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .with_context(|| format!("reading {}", path.display()))?;
        }
        let record = 32 + 4 * dim;
        let whole = bytes.len() / record * record;
        if whole != bytes.len() {
            eprintln!("{}: dropping a torn last record (an interrupted run)", path.display());
        }
        let mut vectors = HashMap::with_capacity(whole / record);
        for rec in bytes[..whole].chunks_exact(record) {
            let k: [u8; 32] = rec[..32].try_into().expect("32 bytes");
            let v = rec[32..].chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))).collect();
            vectors.insert(k, v);
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        if whole != bytes.len() {
            file.set_len(whole as u64).with_context(|| format!("truncating {}", path.display()))?;
        }
        Ok(Self { path, dim, vectors, file: Some(file) })
    }

    /// The file behind the cache (empty when disabled).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of cached vectors.
    pub fn len(&self) -> usize {
        self.vectors.len()
    }

    /// A cached vector.
    pub fn get(&self, k: &[u8; 32]) -> Option<&Vec<f32>> {
        self.vectors.get(k)
    }

    /// Adds vectors and appends them to the file.
    pub fn insert_many(&mut self, items: Vec<([u8; 32], Vec<f32>)>) -> Result<()> {
        if let Some(file) = &mut self.file {
            let mut buf = Vec::with_capacity(items.len() * (32 + 4 * self.dim));
            for (k, v) in &items {
                buf.extend_from_slice(k);
                for x in v {
                    buf.extend_from_slice(&x.to_le_bytes());
                }
            }
            file.write_all(&buf).with_context(|| format!("writing {}", self.path.display()))?;
        }
        for (k, v) in items {
            self.vectors.insert(k, v);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_reopen_and_a_torn_record() {
        let dir = std::env::temp_dir().join(format!("mlr-cache-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut c = EmbeddingCache::open(&dir, "m", 2).unwrap();
        c.insert_many(vec![(key("q", "a"), vec![1.0, 2.0]), (key("q", "b"), vec![3.0, 4.0])]).unwrap();
        drop(c);
        // Simulate a write cut short.
        let path = dir.join("m.bin");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[7u8; 10]).unwrap();
        drop(f);
        let c = EmbeddingCache::open(&dir, "m", 2).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(&key("q", "b")), Some(&vec![3.0, 4.0]));
        assert_eq!(c.get(&key("p", "b")), None);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 2 * (32 + 8));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
