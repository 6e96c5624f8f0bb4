//! Bad input to the `mlr` binary: each case exits with a clear error (status 1, never a panic's
//! 101) and leaves every file as it was.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mlr_model::{BertConfig, SeededWeights};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mlr-bad-input-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A random model with a WordLevel tokenizer over a few words; `poison` edits its tensors.
fn write_model(dir: &Path, poison: impl FnOnce(&mut Vec<mlr_weights::NamedTensor>)) {
    std::fs::create_dir_all(dir).unwrap();
    let config = BertConfig::new(12, 32, 1, 4, 64);
    let mut tensors = mlr_weights::collect_tensors(&config, &mut SeededWeights::new(3, 0.3)).unwrap();
    poison(&mut tensors);
    std::fs::write(dir.join("model.safetensors"), mlr_weights::write_safetensors(&tensors).unwrap()).unwrap();
    std::fs::write(dir.join("config.json"), config.to_json()).unwrap();
    let vocab: serde_json::Map<String, serde_json::Value> =
        ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "query", "passage", ":", "a", "b", "c", "d", "e"]
            .iter()
            .enumerate()
            .map(|(i, t)| (t.to_string(), i.into()))
            .collect();
    let special = |id: u32, content: &str| serde_json::json!({"id": id, "content": content, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true});
    let tokenizer = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [special(0, "[PAD]"), special(1, "[CLS]"), special(2, "[SEP]")],
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [1], "tokens": ["[CLS]"]}, "[SEP]": {"id": "[SEP]", "ids": [2], "tokens": ["[SEP]"]}}},
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}
    });
    std::fs::write(dir.join("tokenizer.json"), tokenizer.to_string()).unwrap();
}

fn mlr(args: &[&std::ffi::OsStr], cache: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mlr")).args(args).env("MLR_CACHE", cache).output().unwrap()
}

/// The command failed with an error message (not a panic) containing `want`.
fn assert_refused(out: &Output, want: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "expected a clean error, got {:?}: {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains(want), "wanted {want:?} in: {stderr}");
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}

fn os(s: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(s)
}

/// `mlr embed --model <dir>/model --input <dir>/texts.txt --out <dir>/<out>` must fail with `want`
/// and leave every file under `dir` as it was.
fn embed_is_refused(dir: &Path, out: &str, want: &str) {
    let before = snapshot(dir);
    let (m, input, out) = (dir.join("model"), dir.join("texts.txt"), dir.join(out));
    let got = mlr(
        &[os("embed"), os("--model"), m.as_os_str(), os("--input"), input.as_os_str(), os("--out"), out.as_os_str()],
        dir,
    );
    assert_refused(&got, want);
    assert!(before == snapshot(dir), "a file changed");
}

#[test]
fn embed_with_a_wrong_extension_keeps_the_file() {
    let dir = scratch("extension");
    write_model(&dir.join("model"), |_| {});
    std::fs::write(dir.join("texts.txt"), "\"a b\"\n\"c d\"\n").unwrap();
    std::fs::write(dir.join("keep.txt"), "precious").unwrap();
    embed_is_refused(&dir, "keep.txt", "keep.txt: output must end in .npy, .json or .jsonl");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_nan_weight_is_refused_and_nothing_is_written() {
    let dir = scratch("nan-weight");
    write_model(&dir.join("model"), |t| {
        t.iter_mut().find(|t| t.name == "encoder.layer.0.output.dense.weight").unwrap().values[7] = f32::NAN;
    });
    std::fs::write(dir.join("texts.txt"), "\"a b\"\n").unwrap();
    let want = "tensor `encoder.layer.0.output.dense.weight`: value NaN at index 7 is not finite";
    embed_is_refused(&dir, "vectors.json", want);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_non_utf8_argument_is_an_error_not_a_panic() {
    use std::os::unix::ffi::OsStrExt;
    let dir = scratch("non-utf8");
    let before = snapshot(&dir);
    let bad = dir.join(std::ffi::OsStr::from_bytes(b"model-\xff"));
    let missing = format!("tiny={}", dir.join("no-model").display());
    for args in [
        vec![os("eval"), os("--model"), bad.as_os_str(), os("--data"), os("nowhere")],
        vec![os("demo"), os("build"), os("--model"), os(&missing), os("--out"), bad.as_os_str()],
    ] {
        let got = mlr(&args, &dir);
        let stderr = String::from_utf8_lossy(&got.stderr);
        assert_eq!(got.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    assert!(before == snapshot(&dir), "a file changed");
    std::fs::remove_dir_all(&dir).ok();
}
