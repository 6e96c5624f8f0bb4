//! Output files written whole or not at all.
//!
//! Every file the CLI writes goes to a hidden sibling (`.name.partial`) and is renamed over its
//! target only once it is complete: a failed or interrupted command leaves an existing file as it
//! was, never truncated or half-written. Arguments are checked before anything is opened.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The temporary sibling of `path`.
fn partial(path: &Path) -> PathBuf {
    let name = path.file_name().map_or_else(|| "output".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.partial"))
}

/// Writes `path` through `fill`; the file appears (or is replaced) only if `fill` succeeds.
/// Missing parent directories are created.
pub fn write_with(path: &Path, fill: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let tmp = partial(path);
    let result = (|| {
        let file = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let mut out = std::io::BufWriter::new(file);
        fill(&mut out)?;
        out.flush().with_context(|| format!("writing {}", tmp.display()))?;
        drop(out);
        std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
    })();
    if result.is_err() {
        std::fs::remove_file(&tmp).ok();
    }
    result
}

/// Writes `bytes` to `path` whole or not at all.
pub fn write_bytes(path: &Path, bytes: &[u8]) -> Result<()> {
    write_with(path, |out| out.write_all(bytes).with_context(|| format!("writing {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_partial() {
        let dir = std::env::temp_dir().join(format!("mlr-output-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keep.txt");
        std::fs::write(&path, "precious").unwrap();
        let err = write_with(&path, |out| {
            out.write_all(b"half")?;
            anyhow::bail!("failed midway")
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "failed midway");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
        assert!(!partial(&path).exists());
        write_bytes(&path, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        let nested = dir.join("a/b/c.json");
        write_bytes(&nested, b"{}").unwrap();
        assert_eq!(std::fs::read(&nested).unwrap(), b"{}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
