//! A writer for NumPy's `.npy` format (version 1.0, little-endian float32, C order); the header is
//! `mlr_retrieve::export::write_npy_header`, the one `mlr retrieve --export-npy` writes.

use std::io::Write;

use mlr_retrieve::export::write_npy_header;

/// Writes `rows` (each of length `dim`) as a `[rows, dim]` float32 array.
pub fn write_f32_matrix(out: &mut impl Write, rows: &[Vec<f32>], dim: usize) -> std::io::Result<()> {
    write_npy_header(out, "<f4", rows.len(), dim)?;
    for row in rows {
        assert_eq!(row.len(), dim, "every row has the same dimension");
        for v in row {
            out.write_all(&v.to_le_bytes())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_aligned_and_data_follows() {
        let mut buf = Vec::new();
        write_f32_matrix(&mut buf, &[vec![1.0, 2.0], vec![3.0, 4.0]], 2).unwrap();
        let header_len = u16::from_le_bytes([buf[8], buf[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0);
        let header = std::str::from_utf8(&buf[10..10 + header_len]).unwrap();
        assert!(header.contains("'shape': (2, 2)") && header.ends_with('\n'));
        let data: Vec<f32> =
            buf[10 + header_len..].chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
        assert_eq!(data, vec![1.0, 2.0, 3.0, 4.0]);
    }
}
