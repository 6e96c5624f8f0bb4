//! Export of a store for other engines: `vectors.npy` + `docids.txt`.
//!
//! `vectors.npy` is NumPy's format 1.0: a C-order `[n, dim]` array of little-endian float32 (`<f4`)
//! or float16 (`<f2`), row `i` being the vector of line `i` of `docids.txt` (one docid per line, the
//! store's order). FAISS (`index.add(np.load("vectors.npy").astype("float32"))`), Qdrant, Vespa or
//! any engine that reads NumPy can ingest them without mlr; `np.load(…, mmap_mode="r")` reads a
//! large export in place. Both files are written to `*.partial` names and renamed when complete.
//!
//! [`write_npy_header`] is the one header writer; `mlr-cli`'s `npy.rs` (float32 only, rows in
//! memory) could use it.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::store::{io_error, partial_path, Dtype, StoreError, VectorStore};

/// Element type of an exported `.npy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NpyDtype {
    /// `<f4`.
    F32,
    /// `<f2`.
    F16,
}

impl NpyDtype {
    /// NumPy's `descr`.
    pub fn descr(self) -> &'static str {
        match self {
            NpyDtype::F32 => "<f4",
            NpyDtype::F16 => "<f2",
        }
    }
}

/// Writes the header of a `.npy` 1.0 file holding a C-order `[rows, cols]` array of `descr`
/// elements; the data follows it. The header is padded with spaces so the data starts at a
/// multiple of 64 bytes, as NumPy writes it.
pub fn write_npy_header(out: &mut impl Write, descr: &str, rows: usize, cols: usize) -> std::io::Result<()> {
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // magic (6) + version (2) + header length (2) + dict + padding + '\n', a multiple of 64.
    let unpadded = 10 + dict.len() + 1;
    let padding = (64 - unpadded % 64) % 64;
    let header_len = u16::try_from(dict.len() + padding + 1)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "npy header longer than 65535 bytes"))?;
    out.write_all(b"\x93NUMPY\x01\x00")?;
    out.write_all(&header_len.to_le_bytes())?;
    out.write_all(dict.as_bytes())?;
    out.write_all(&vec![b' '; padding])?;
    out.write_all(b"\n")
}

/// Writes `dir/vectors.npy` and `dir/docids.txt` from `store` (see the module docs).
pub fn export_npy(store: &VectorStore, dir: &Path, dtype: NpyDtype) -> Result<(), StoreError> {
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    let (npy, ids) = (dir.join("vectors.npy"), dir.join("docids.txt"));
    let (npy_tmp, ids_tmp) = (partial_path(&npy), partial_path(&ids));
    let dim = store.dim();
    let mut out = BufWriter::with_capacity(1 << 20, File::create(&npy_tmp).map_err(io_error(&npy_tmp))?);
    write_npy_header(&mut out, dtype.descr(), store.len(), dim).map_err(io_error(&npy_tmp))?;
    let same = dtype == NpyDtype::F16 && store.manifest().dtype == Dtype::F16;
    if same {
        for k in 0..store.shard_count() {
            out.write_all(store.shard_bytes(k)).map_err(io_error(&npy_tmp))?;
        }
    } else {
        let mut rows = Vec::new();
        let mut bytes = Vec::new();
        for (start, len) in store.blocks(4096) {
            rows.resize(len * dim, 0.0);
            store.read_rows(start, &mut rows);
            bytes.clear();
            match dtype {
                NpyDtype::F32 => bytes.extend(rows.iter().flat_map(|x| x.to_le_bytes())),
                NpyDtype::F16 => bytes.extend(rows.iter().flat_map(|&x| half::f16::from_f32(x).to_le_bytes())),
            }
            out.write_all(&bytes).map_err(io_error(&npy_tmp))?;
        }
    }
    let file = out.into_inner().map_err(|e| io_error(&npy_tmp)(e.into_error()))?;
    file.sync_all().map_err(io_error(&npy_tmp))?;
    let mut out = BufWriter::new(File::create(&ids_tmp).map_err(io_error(&ids_tmp))?);
    for row in 0..store.len() {
        out.write_all(store.docid(row).as_bytes()).map_err(io_error(&ids_tmp))?;
        out.write_all(b"\n").map_err(io_error(&ids_tmp))?;
    }
    let file = out.into_inner().map_err(|e| io_error(&ids_tmp)(e.into_error()))?;
    file.sync_all().map_err(io_error(&ids_tmp))?;
    std::fs::rename(&npy_tmp, &npy).map_err(io_error(&npy))?;
    std::fs::rename(&ids_tmp, &ids).map_err(io_error(&ids))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_aligned_and_names_dtype_and_shape() {
        let mut buf = Vec::new();
        write_npy_header(&mut buf, "<f2", 3, 384).unwrap();
        assert_eq!(buf.len() % 64, 0);
        assert_eq!(&buf[..8], b"\x93NUMPY\x01\x00");
        let header_len = u16::from_le_bytes([buf[8], buf[9]]) as usize;
        assert_eq!(10 + header_len, buf.len());
        let header = std::str::from_utf8(&buf[10..]).unwrap();
        assert!(header.starts_with("{'descr': '<f2', 'fortran_order': False, 'shape': (3, 384), }"));
        assert!(header.ends_with(" \n"));
    }
}
