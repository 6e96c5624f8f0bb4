//! A minimal writer for NumPy's `.npy` format (version 1.0, little-endian float32, C order).

use std::io::Write;

/// Writes `rows` (each of length `dim`) as a `[rows, dim]` float32 array.
pub fn write_f32_matrix(out: &mut impl Write, rows: &[Vec<f32>], dim: usize) -> std::io::Result<()> {
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}", rows.len(), dim);
    // magic (6) + version (2) + header length (2) + dict + padding + '\n', a multiple of 64.
    let unpadded = 10 + dict.len() + 1;
    let padding = (64 - unpadded % 64) % 64;
    let header_len = (dict.len() + padding + 1) as u16;
    out.write_all(b"\x93NUMPY\x01\x00")?;
    out.write_all(&header_len.to_le_bytes())?;
    out.write_all(dict.as_bytes())?;
    out.write_all(&vec![b' '; padding])?;
    out.write_all(b"\n")?;
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
