//! The in-process engines: mlr on burn's CPU (ndarray) and wgpu backends, with and without the
//! fused kernels, and candle's BERT on the CPU from the same safetensors (mlr's engines take the
//! bytes of [`ModelFiles`]; candle maps the file of that directory itself).

use std::path::Path;

use anyhow::{bail, Context, Result};
use burn::backend::wgpu::WgpuDevice;
use burn::backend::{NdArray, Wgpu};
use burn::tensor::{Int, Tensor, TensorData};
use mlr_embed::ModelFiles;
use mlr_model::{BertConfig, BertModel, Kernels};

/// An encoder that turns full rows of token ids into unit vectors.
pub trait Engine {
    /// Engine name as it appears in the report.
    fn name(&self) -> &str;
    /// Backend and device, as it appears in the report.
    fn backend(&self) -> String;
    /// `[rows][seq]` ids -> row-major `[rows, hidden]` unit vectors.
    fn run(&self, ids: &[Vec<u32>]) -> Result<Vec<f32>>;
}

/// Starts the engine called `name` on the model of `files`.
pub fn open(name: &str, files: &ModelFiles) -> Result<Box<dyn Engine>> {
    let config = files.config()?;
    Ok(match name {
        "mlr-cpu" => Box::new(Mlr::<NdArray<f32>>::load(
            name,
            "cpu (burn ndarray + mlr CPU kernels, simd + threads)".into(),
            &config,
            &files.safetensors,
            &Default::default(),
            true,
        )?),
        "mlr-wgpu" | "mlr-wgpu-plain" => {
            let device = WgpuDevice::default();
            let adapter = adapter_name();
            mlr_kernels::tune_for_adapter(&adapter);
            let fused = name == "mlr-wgpu";
            let what = if fused { "mlr WGSL kernels" } else { "plain burn ops" };
            Box::new(Mlr::<Wgpu>::load(
                name,
                format!("wgpu ({adapter}; {what})"),
                &config,
                &files.safetensors,
                &device,
                fused,
            )?)
        }
        "candle-cpu" => Box::new(Candle::load(&files.config_json, &files.dir.join(ModelFiles::WEIGHTS))?),
        other => bail!("unknown engine {other:?} (mlr-cpu, mlr-wgpu, mlr-wgpu-plain, candle-cpu)"),
    })
}

/// The adapter wgpu picks by default, as "name (backend, device type)".
pub fn adapter_name() -> String {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    match block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default())) {
        Ok(adapter) => {
            let info = adapter.get_info();
            format!("{} ({:?}, {:?})", info.name, info.backend, info.device_type)
        }
        Err(e) => format!("no adapter: {e}"),
    }
}

/// Polls a future to completion on this thread (wgpu's native futures resolve without an executor).
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(v) = future.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

struct Mlr<B: Kernels> {
    name: String,
    backend: String,
    model: BertModel<B>,
    device: B::Device,
}

impl<B: Kernels> Mlr<B> {
    fn load(
        name: &str,
        backend: String,
        config: &BertConfig,
        safetensors: &[u8],
        device: &B::Device,
        fused: bool,
    ) -> Result<Self> {
        let model = mlr_weights::load_bert::<B>(config, safetensors, device)?.with_kernels(fused);
        Ok(Self { name: name.into(), backend, model, device: device.clone() })
    }
}

impl<B: Kernels> Engine for Mlr<B> {
    fn name(&self) -> &str {
        &self.name
    }
    fn backend(&self) -> String {
        self.backend.clone()
    }
    fn run(&self, ids: &[Vec<u32>]) -> Result<Vec<f32>> {
        let (rows, seq) = (ids.len(), ids[0].len());
        let flat: Vec<i32> = ids.iter().flatten().map(|&i| i as i32).collect();
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(flat, [rows, seq]), &self.device);
        let mask = Tensor::<B, 2>::ones([rows, seq], &self.device);
        let hidden = self.model.forward(ids, mask.clone());
        let vectors = mlr_kernels::mean_pool(hidden, mask, true, self.model.kernels);
        vectors.into_data().convert::<f32>().into_vec::<f32>().map_err(|e| anyhow::anyhow!("readback: {e:?}"))
    }
}

struct Candle {
    model: candle_transformers::models::bert::BertModel,
}

impl Candle {
    fn load(config_json: &[u8], safetensors: &Path) -> Result<Self> {
        use candle_nn::VarBuilder;
        let config: candle_transformers::models::bert::Config =
            serde_json::from_slice(config_json).context("config.json as candle's BERT config")?;
        // SAFETY: the file is not modified while mapped (it is ours, read-only during the run).
        let vb = unsafe {
            VarBuilder::from_mmaped_safetensors(&[safetensors], candle_core::DType::F32, &candle_core::Device::Cpu)?
        };
        Ok(Self { model: candle_transformers::models::bert::BertModel::load(vb, &config)? })
    }
}

impl Engine for Candle {
    fn name(&self) -> &str {
        "candle-cpu"
    }
    fn backend(&self) -> String {
        format!("cpu (candle {}, gemm, {} threads)", "0.11.1", candle_core::utils::get_num_threads())
    }
    fn run(&self, ids: &[Vec<u32>]) -> Result<Vec<f32>> {
        use candle_core::{Device, Tensor as T};
        let (rows, seq) = (ids.len(), ids[0].len());
        let flat: Vec<u32> = ids.iter().flatten().copied().collect();
        let ids = T::from_vec(flat, (rows, seq), &Device::Cpu)?;
        let types = ids.zeros_like()?;
        let mask = ids.ones_like()?;
        let hidden = self.model.forward(&ids, &types, Some(&mask))?; // [rows, seq, hidden]
        let pooled = hidden.mean(1)?; // every position is a token
        let norms = pooled.sqr()?.sum_keepdim(1)?.sqrt()?;
        Ok(pooled.broadcast_div(&norms)?.flatten_all()?.to_vec1::<f32>()?)
    }
}
