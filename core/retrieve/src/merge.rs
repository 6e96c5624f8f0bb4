//! Combining the stores of `--shard i/n` slices into one.
//!
//! [`merge`] takes the n slice directories (in any order) and a destination, which may be new, empty,
//! or one of the sources (then only the other slices' shards are copied into it). It checks that
//! every manifest is the same (format, model, corpus, dim, dtype, shard size, and the total that
//! each slice records when it has read the corpus to the end) and that every shard `0 .. shards`
//! is finished in exactly one source; then copies each shard's two files (write to `*.partial`,
//! fsync, rename, vectors before docids, as the encoder does) and writes the manifest last, so an
//! interrupted merge can be run again. Journals (`*.partial`) in the sources are ignored: a slice
//! with one has not finished.
//!
//! Finished slices have identical manifests, so copying every slice's `shard-*` files into one
//! directory (rsync, `cp`) also gives a valid store, which `VectorStore::open` checks shard by
//! shard; `merge` adds the checks that no shard is there twice and none comes from another model.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::store::{
    docids_path, finished_rows, io_error, lock_dir, partial_path, sync_dir, vectors_path, Manifest, StoreError,
    VectorStore,
};

/// What a merge did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MergeSummary {
    /// Shards in the merged store.
    pub shards: u64,
    /// Shards copied (those not already in the destination).
    pub copied: u64,
    /// Passages in the merged store.
    pub total_passages: u64,
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn copy_atomic(from: &Path, to: &Path) -> Result<(), StoreError> {
    let tmp = partial_path(to);
    std::fs::copy(from, &tmp).map_err(io_error(from))?;
    File::open(&tmp).and_then(|f| f.sync_all()).map_err(io_error(&tmp))?;
    std::fs::rename(&tmp, to).map_err(io_error(to))
}

/// Merges the slice stores `sources` into `dest` (see the module docs) and opens the result to
/// check it.
pub fn merge<P: AsRef<Path>>(sources: &[P], dest: &Path) -> Result<MergeSummary, StoreError> {
    let sources: Vec<PathBuf> = sources.iter().map(|p| p.as_ref().to_path_buf()).collect();
    let Some(first) = sources.first() else { return Err(StoreError::Invalid("no stores to merge".into())) };
    let mut manifests = Vec::with_capacity(sources.len());
    for dir in &sources {
        let m = Manifest::read(dir)?.ok_or_else(|| StoreError::Incomplete {
            dir: dir.clone(),
            message: "no manifest.json: not a vector store".into(),
        })?;
        if m.total_passages.is_none() {
            return Err(StoreError::Incomplete {
                dir: dir.clone(),
                message: "this slice has not read the corpus to the end: run its encoding again first".into(),
            });
        }
        manifests.push(m);
    }
    let reference = &manifests[0];
    for (dir, m) in sources.iter().zip(&manifests).skip(1) {
        if m != reference {
            let differs = |a: &Manifest, b: &Manifest| -> (&'static str, String, String) {
                let fields: [(&'static str, String, String); 6] = [
                    ("model", a.model.clone(), b.model.clone()),
                    ("corpus", a.corpus.clone(), b.corpus.clone()),
                    ("dim", a.dim.to_string(), b.dim.to_string()),
                    ("dtype", format!("{:?}", a.dtype), format!("{:?}", b.dtype)),
                    ("shard_size", a.shard_size.to_string(), b.shard_size.to_string()),
                    ("total_passages", format!("{:?}", a.total_passages), format!("{:?}", b.total_passages)),
                ];
                fields.into_iter().find(|(_, x, y)| x != y).unwrap_or(("passage_text", String::new(), String::new()))
            };
            let (field, found, expected) = differs(m, reference);
            return Err(StoreError::Mismatch {
                dir: dir.clone(),
                field,
                found,
                expected: format!("{expected} (as in {})", first.display()),
            });
        }
    }
    let dest_is_source = sources.iter().any(|s| same_dir(s, dest));
    if !dest_is_source {
        if Manifest::read(dest)?.is_some() {
            return Err(StoreError::Invalid(format!(
                "{} already holds a store: merge into a new directory or into one of the slices",
                dest.display()
            )));
        }
        std::fs::create_dir_all(dest).map_err(io_error(dest))?;
    }
    let _lock = lock_dir(dest)?;
    let shards = reference.shards.unwrap_or(0);
    let mut owners = Vec::new();
    for k in 0..shards {
        let mut owner = None;
        for dir in &sources {
            if let Some(rows) = finished_rows(dir, reference, k)? {
                if Some(rows) != reference.shard_rows(k) {
                    return Err(StoreError::Damaged {
                        path: docids_path(dir, k),
                        message: format!(
                            "{rows} rows, the manifest makes shard {k} {:?} rows",
                            reference.shard_rows(k)
                        ),
                    });
                }
                if let Some(other) = owner.replace(dir) {
                    return Err(StoreError::Invalid(format!(
                        "shard {k} is in both {} and {}: were the slices given twice, or encoded with overlapping --shard?",
                        other.display(),
                        dir.display()
                    )));
                }
            }
        }
        let owner = owner.ok_or_else(|| {
            StoreError::Invalid(format!(
                "shard {k} of {shards} is in none of the stores: a slice is missing or unfinished"
            ))
        })?;
        owners.push(owner);
    }
    let mut summary = MergeSummary { shards, copied: 0, total_passages: reference.total_passages.unwrap_or(0) };
    for (k, owner) in owners.into_iter().enumerate() {
        let k = k as u64;
        if same_dir(owner, dest) {
            continue;
        }
        copy_atomic(&vectors_path(owner, k, reference.dtype), &vectors_path(dest, k, reference.dtype))?;
        copy_atomic(&docids_path(owner, k), &docids_path(dest, k))?;
        summary.copied += 1;
    }
    sync_dir(dest)?;
    reference.write(dest)?;
    VectorStore::open(dest)?;
    Ok(summary)
}
