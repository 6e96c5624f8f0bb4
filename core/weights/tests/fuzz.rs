//! Fuzz targets of the safetensors loader (see mlr-fuzz): damaged files, and files whose JSON
//! header is damaged and re-framed (so the header's own fields are what the mutations reach);
//! what loads must give finite tensors of the asked shape, load as a model, and convert to f16.

use mlr_fuzz::proptest::prelude::Strategy as _;
use mlr_fuzz::{binary, check, text, Bytes, Violation};
use mlr_model::{BertConfig, SeededWeights, WeightSource};
use mlr_weights::{collect_tensors, load_bert, to_f16_safetensors, write_safetensors, SafetensorsSource};

#[global_allocator]
static ALLOC: mlr_fuzz::LimitedAlloc = mlr_fuzz::LimitedAlloc;

type B = burn::backend::NdArray<f32>;

fn tiny() -> BertConfig {
    let mut c = BertConfig::new(50, 8, 2, 2, 16);
    c.max_position_embeddings = 16;
    c
}

fn seeds() -> Vec<Vec<u8>> {
    let f32_file = write_safetensors(&collect_tensors(&tiny(), &mut SeededWeights::new(7, 0.2)).expect("weights"))
        .expect("writes");
    let f16_file = to_f16_safetensors(&f32_file).expect("converts");
    vec![f32_file, f16_file]
}

fn load(bytes: &[u8]) -> Result<bool, Violation> {
    let Ok(mut source) = SafetensorsSource::new(bytes) else { return Ok(false) };
    let mut names = source.names();
    names.sort_unstable();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return Err("a tensor name twice".into());
    }
    for (name, shape) in mlr_model::tensor_names(&tiny()) {
        if let Ok(values) = source.get(&name, &shape) {
            if values.len() != shape.iter().product::<usize>() || values.iter().any(|v| !v.is_finite()) {
                return Err(format!("{name}: {} values for {shape:?}, or a non-finite one", values.len()).into());
            }
        }
    }
    let loaded = load_bert::<B>(&tiny(), bytes, &Default::default()).is_ok();
    if let Ok(half) = to_f16_safetensors(bytes) {
        SafetensorsSource::new(&half).map_err(|e| format!("the f16 copy does not load: {e}"))?;
        if loaded {
            load_bert::<B>(&tiny(), &half, &Default::default())
                .map_err(|e| format!("the f16 copy does not load: {e}"))?;
        }
    }
    Ok(true)
}

#[test]
fn safetensors_file() {
    check("safetensors", binary(seeds(), 256), |bytes| load(bytes));
}

#[test]
fn safetensors_header() {
    let seeds = seeds();
    let split = |file: &Vec<u8>| {
        let len = u64::from_le_bytes(file[..8].try_into().expect("8 bytes")) as usize;
        (String::from_utf8(file[8..8 + len].to_vec()).expect("a JSON header"), file[8 + len..].to_vec())
    };
    let (headers, data): (Vec<String>, Vec<Vec<u8>>) = seeds.iter().map(split).unzip();
    let strategy = (text(headers, 256), mlr_fuzz::proptest::sample::select(data)).prop_map(|(header, data)| {
        let mut file = (header.len() as u64).to_le_bytes().to_vec();
        file.extend(header.iter());
        file.extend(data);
        Bytes(file)
    });
    check("safetensors header", strategy, |bytes| load(bytes));
}
