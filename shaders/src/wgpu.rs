//! The wgpu implementation of [`Kernels`]: the WGSL files in `src/kernels/`, filled in with
//! burn's [`SourceTemplate`] and launched on the backend's compute client.
//!
//! Every kernel reads a small `info` buffer of `u32` (sizes, and `f32` constants as their bits)
//! as its last binding. Kernels with more work items than one dispatch dimension holds (65,535)
//! spread their workgroups over x and y and compute a linear index from both.

use burn::backend::wgpu::{
    into_contiguous, BoolElement, CubeBackend, CubeTensor, KernelSource, SourceKernel, SourceTemplate, WgpuRuntime,
};
use burn::tensor::ops::{FloatTensor, FloatTensorOps, IntTensor};
use burn::tensor::{DType, Shape};
use cubecl::prelude::KernelId;
use cubecl::server::KernelArguments;
use cubecl::{CubeCount, CubeDim};

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::{float, reference, tensor, Kernels, MAX_HEAD_DIM, MAX_TOP_K};

type Tensor = CubeTensor<WgpuRuntime>;

/// The kernels of this crate, by WGSL file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KernelName {
    /// `kernels/bias_gelu.wgsl`
    BiasGelu,
    /// `kernels/layer_norm.wgsl`
    LayerNorm,
    /// `kernels/attention.wgsl`
    Attention,
    /// `kernels/mean_pool.wgsl`
    MeanPool,
    /// `kernels/cosine_topk.wgsl`
    CosineTopK,
    /// `kernels/linear.wgsl`
    Linear,
}

impl KernelName {
    /// Every kernel.
    pub const ALL: [KernelName; 6] = [
        KernelName::BiasGelu,
        KernelName::LayerNorm,
        KernelName::Attention,
        KernelName::MeanPool,
        KernelName::CosineTopK,
        KernelName::Linear,
    ];

    fn template(self) -> &'static str {
        match self {
            KernelName::BiasGelu => include_str!("kernels/bias_gelu.wgsl"),
            KernelName::LayerNorm => include_str!("kernels/layer_norm.wgsl"),
            KernelName::Attention => include_str!("kernels/attention.wgsl"),
            KernelName::MeanPool => include_str!("kernels/mean_pool.wgsl"),
            KernelName::CosineTopK => include_str!("kernels/cosine_topk.wgsl"),
            KernelName::Linear => include_str!("kernels/linear.wgsl"),
        }
    }

    /// The shared snippets (`kernels/shared/`) appended to the kernel's own file.
    fn shared(self) -> &'static [&'static str] {
        const REDUCE_SUM: &str = include_str!("kernels/shared/reduce_sum.wgsl");
        const UNIFORM_COUNT: &str = include_str!("kernels/shared/uniform_count.wgsl");
        match self {
            KernelName::BiasGelu | KernelName::Attention | KernelName::Linear => &[],
            KernelName::LayerNorm | KernelName::MeanPool => &[REDUCE_SUM, UNIFORM_COUNT],
            KernelName::CosineTopK => &[UNIFORM_COUNT],
        }
    }
}

/// One specialisation of a kernel: its template parameters (workgroup size and the constants
/// the WGSL needs at compile time). Equal specialisations share a compiled pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Kernel {
    name: KernelName,
    workgroup_size: u32,
    params: Vec<(&'static str, String)>,
}

impl KernelSource for Kernel {
    fn source(&self) -> SourceTemplate {
        let source =
            self.name.shared().iter().fold(SourceTemplate::new(self.name.template()), |t, part| t.add_template(*part));
        self.params
            .iter()
            .fold(source, |t, (k, v)| t.register(*k, v.clone()))
            .register("workgroup_size", self.workgroup_size.to_string())
    }

    fn id(&self) -> KernelId {
        KernelId::new::<Self>().info(self.clone())
    }
}

/// The complete WGSL of a kernel as it is launched, with `params` for its template constants
/// (`workgroup_size` is always set; see each `.wgsl` file for the others). Used by the
/// validation tests, which check every kernel with naga without any adapter.
pub fn wgsl(name: KernelName, workgroup_size: u32, params: &[(&'static str, String)]) -> String {
    Kernel { name, workgroup_size, params: params.to_vec() }.source().complete()
}

const WG_ELEMENTWISE: u32 = 256;
const WG_ROW: u32 = 128;
const WG_ATTENTION: u32 = 64;
const WG_TOP_K: u32 = 256;
const WG_LINEAR: u32 = 64;

/// Most rows `linear` gives `kernels/linear.wgsl` by default; more go to burn's matmul on the
/// folded rows. The kernel's time grows with the rows (one 4-row block per invocation), burn's
/// matmul pads to 64-row tiles, so burn's wins above a few dozen rows on llvmpipe (the measurements
/// behind 48 are in results/bench/README.md). A real GPU would want its own threshold:
/// [`tune_for_adapter`] changes it for adapters where it is wrong.
const DEFAULT_LINEAR_KERNEL_MAX_ROWS: usize = 48;

/// The row threshold in force (see [`tune_for_adapter`]).
static LINEAR_KERNEL_ROW_LIMIT: AtomicUsize = AtomicUsize::new(DEFAULT_LINEAR_KERNEL_MAX_ROWS);

/// Tunes the wgpu kernels for the adapter they will run on, by its name (wgpu's
/// `AdapterInfo::name` natively; in a browser, the vendor, architecture and description WebGPU
/// gives, as `mlr_app::gpu::probe_webgpu` joins them). On SwiftShader (Chromium's software
/// WebGPU) burn's matmul is slower than `kernels/linear.wgsl` at every row count
/// (results/bench/README.md), so `linear` runs the kernel at any row count there; on every other
/// adapter up to 48 rows. Process-wide: the last call wins. Returns the row threshold chosen
/// (`usize::MAX` for any).
pub fn tune_for_adapter(name: &str) -> usize {
    let rows = if name.to_lowercase().contains("swiftshader") { usize::MAX } else { DEFAULT_LINEAR_KERNEL_MAX_ROWS };
    LINEAR_KERNEL_ROW_LIMIT.store(rows, Ordering::Relaxed);
    rows
}

const MAX_GROUPS_X: u32 = 65_535;
/// Loop iterations one invocation may run in all. Mesa's llvmpipe (lavapipe, the Vulkan driver of
/// machines without a GPU) ends an invocation's loops after 65,535 iterations in total, silently;
/// a kernel whose share of the work would come near that takes the reference path instead.
const LOOP_BUDGET: usize = 60_000;

/// Workgroups for `groups` items, spread over x and y when x alone cannot hold them.
fn grid(groups: usize) -> CubeCount {
    let groups = groups.max(1) as u32;
    if groups <= MAX_GROUPS_X {
        CubeCount::Static(groups, 1, 1)
    } else {
        CubeCount::Static(MAX_GROUPS_X, groups.div_ceil(MAX_GROUPS_X), 1)
    }
}

fn dims(t: &Tensor) -> Vec<usize> {
    let shape = t.meta.shape();
    (0..shape.num_dims()).map(|i| shape[i]).collect()
}

fn check_f32(t: &Tensor, what: &str) {
    assert_eq!(t.dtype, DType::F32, "mlr-kernels: {what} must be f32, got {:?}", t.dtype);
}

fn empty(like: &Tensor, shape: Vec<usize>, dtype: DType) -> Tensor {
    let bytes = shape.iter().product::<usize>().max(1) * dtype.size();
    let handle = like.client.empty(bytes);
    CubeTensor::new_contiguous(like.client.clone(), like.device.clone(), Shape::from(shape), handle, dtype)
}

/// Launches `kernel` over `count` workgroups with `tensors` bound in order, then `info`.
fn launch(kernel: Kernel, count: CubeCount, tensors: &[&Tensor], info: &[u32]) {
    let client = &tensors[0].client;
    let bytes: Vec<u8> = info.iter().flat_map(|v| v.to_le_bytes()).collect();
    let info = client.create_from_slice(&bytes);
    let mut buffers: Vec<_> = tensors.iter().map(|t| t.handle.clone().binding()).collect();
    buffers.push(info.binding());
    let cube_dim = CubeDim { x: kernel.workgroup_size, y: 1, z: 1 };
    client.launch(Box::new(SourceKernel::new(kernel, cube_dim)), count, KernelArguments::new().with_buffers(buffers));
}

fn contiguous(t: Tensor, what: &str) -> Tensor {
    check_f32(&t, what);
    into_contiguous(t)
}

impl<BT: BoolElement> Kernels for CubeBackend<WgpuRuntime, f32, i32, BT> {
    /// Every token of the batch as one `[rows, k]` matrix: `kernels/linear.wgsl` for up to
    /// [`DEFAULT_LINEAR_KERNEL_MAX_ROWS`] rows (any number on SwiftShader, [`tune_for_adapter`]) when both widths are multiples of 4, else one
    /// `[rows, k] · [k, n]` burn matmul. (burn's linear
    /// multiplies `[batch, seq, k]` by the weight broadcast to `[1, k, n]`: a batched matmul whose
    /// row tiles are cut per sequence, so eight 16-token sequences cost eight row tiles.)
    fn fused_linear(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
    ) -> FloatTensor<Self> {
        let x = contiguous(x, "x");
        let weight = contiguous(weight, "weight");
        let shape = dims(&x);
        let (k, n) = match dims(&weight)[..] {
            [k, n] => (k, n),
            ref other => panic!("mlr-kernels linear: weight must be [k, n], got {other:?}"),
        };
        assert_eq!(shape.last(), Some(&k), "mlr-kernels linear: x must end in {k} (the weight's rows)");
        let rows = shape.iter().product::<usize>() / k.max(1);
        let mut out_shape = shape;
        *out_shape.last_mut().expect("x has a last axis") = n;
        if let Some(bias) = &bias {
            check_f32(bias, "bias");
            assert_eq!(dims(bias), [n], "mlr-kernels linear: bias must be [{n}]");
        }
        if n % 4 == 0
            && k % 4 == 0
            && n > 0
            && k > 0
            && (1..=LINEAR_KERNEL_ROW_LIMIT.load(Ordering::Relaxed)).contains(&rows)
            && k / 4 <= LOOP_BUDGET
        {
            let out = empty(&x, out_shape, DType::F32);
            let bias = bias.map(into_contiguous);
            // A 16-byte stand-in when there is no bias (WebGPU forbids binding one buffer twice
            // for writing); the kernel does not read it.
            let none = bias.is_none().then(|| empty(&x, vec![4], DType::F32));
            let bias_ref = bias.as_ref().or(none.as_ref()).expect("a bias or its stand-in");
            let kernel = Kernel {
                name: KernelName::Linear,
                workgroup_size: WG_LINEAR,
                params: vec![("has_bias", bias.is_some().to_string())],
            };
            let items = rows.div_ceil(4) * (n / 4);
            launch(
                kernel,
                grid(items.div_ceil(WG_LINEAR as usize)),
                &[&x, &weight, bias_ref, &out],
                &[rows as u32, (k / 4) as u32, (n / 4) as u32],
            );
            return out;
        }
        let flat = Self::float_reshape(x, Shape::new([rows, k]));
        let mut out = Self::float_matmul(flat, weight);
        if let Some(bias) = bias {
            out = Self::float_add(out, Self::float_reshape(bias, Shape::new([1, n])));
        }
        Self::float_reshape(out, Shape::from(out_shape))
    }

    fn fused_bias_gelu(x: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self> {
        let x = contiguous(x, "x");
        let bias = contiguous(bias, "bias");
        let shape = dims(&x);
        let width = *shape.last().expect("x has a last axis");
        assert_eq!(dims(&bias), [width], "mlr-kernels bias_gelu: bias must be [{width}]");
        let n: usize = shape.iter().product();
        let out = empty(&x, shape, DType::F32);
        let kernel = Kernel { name: KernelName::BiasGelu, workgroup_size: WG_ELEMENTWISE, params: vec![] };
        // Grid-stride: at most 4096 workgroups, each invocation loops.
        let groups = n.div_ceil(WG_ELEMENTWISE as usize).min(4096);
        launch(kernel, grid(groups), &[&x, &bias, &out], &[n as u32, width as u32]);
        out
    }

    fn fused_layer_norm(
        x: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        residual: Option<FloatTensor<Self>>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        let x = contiguous(x, "x");
        let shape = dims(&x);
        let width = *shape.last().expect("x has a last axis");
        let rows = shape.iter().product::<usize>() / width.max(1);
        let vectors = [contiguous(bias, "bias"), contiguous(gamma, "gamma"), contiguous(beta, "beta")];
        for v in &vectors {
            assert_eq!(dims(v), [width], "mlr-kernels layer_norm: bias, gamma and beta must be [{width}]");
        }
        let has_residual = residual.is_some();
        // Without a residual the binding still needs a buffer (never read): a one-element dummy,
        // as binding `x` twice would alias a writable binding.
        let residual = match residual {
            Some(r) => {
                let r = contiguous(r, "residual");
                assert_eq!(dims(&r), shape, "mlr-kernels layer_norm: residual must have x's shape");
                r
            }
            None => empty(&x, vec![1], DType::F32),
        };
        let out = empty(&x, shape, DType::F32);
        let kernel = Kernel {
            name: KernelName::LayerNorm,
            workgroup_size: WG_ROW,
            params: vec![("has_residual", has_residual.to_string())],
        };
        let [bias, gamma, beta] = &vectors;
        launch(
            kernel,
            grid(rows),
            &[&x, bias, &residual, gamma, beta, &out],
            &[rows as u32, width as u32, (epsilon as f32).to_bits()],
        );
        out
    }

    fn fused_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        mask: FloatTensor<Self>,
        heads: usize,
    ) -> FloatTensor<Self> {
        let shape = dims(&q);
        let [b, s, h] = shape[..] else {
            panic!("mlr-kernels attention: q must be [batch, seq, hidden], got {shape:?}")
        };
        assert!(heads > 0 && h % heads == 0, "mlr-kernels attention: {h} columns do not split into {heads} heads");
        let d = h / heads;
        // Per invocation: the mask count, then per key one loop over the query and one over v.
        if d > MAX_HEAD_DIM || s * (2 * d + 2) + 2 * d > LOOP_BUDGET {
            return float(reference::attention::<Self>(tensor(q), tensor(k), tensor(v), tensor(mask), heads));
        }
        let (q, k, v) = (contiguous(q, "q"), contiguous(k, "k"), contiguous(v, "v"));
        let mask = contiguous(mask, "mask");
        assert!(dims(&k) == shape && dims(&v) == shape, "mlr-kernels attention: q, k and v must have one shape");
        assert_eq!(dims(&mask), [b, s], "mlr-kernels attention: mask must be [batch, seq]");
        let out = empty(&q, shape, DType::F32);
        let kernel = Kernel {
            name: KernelName::Attention,
            workgroup_size: WG_ATTENTION,
            params: vec![("head_dim", d.to_string())],
        };
        let invocations = b * heads * s;
        let scale = 1.0 / (d as f32).sqrt();
        launch(
            kernel,
            grid(invocations.div_ceil(WG_ATTENTION as usize)),
            &[&q, &k, &v, &mask, &out],
            &[b as u32, s as u32, h as u32, heads as u32, scale.to_bits()],
        );
        out
    }

    fn fused_mean_pool(hidden: FloatTensor<Self>, mask: FloatTensor<Self>, normalize: bool) -> FloatTensor<Self> {
        let hidden = contiguous(hidden, "hidden");
        let mask = contiguous(mask, "mask");
        let shape = dims(&hidden);
        let [b, s, w] = shape[..] else {
            panic!("mlr-kernels mean_pool: hidden must be [batch, seq, width], got {shape:?}")
        };
        assert_eq!(dims(&mask), [b, s], "mlr-kernels mean_pool: mask must be [batch, seq]");
        let out = empty(&hidden, vec![b, w], DType::F32);
        let kernel = Kernel {
            name: KernelName::MeanPool,
            workgroup_size: WG_ROW,
            params: vec![("normalize", normalize.to_string())],
        };
        launch(kernel, grid(b), &[&hidden, &mask, &out], &[b as u32, s as u32, w as u32]);
        out
    }

    fn fused_cosine_top_k(
        queries: FloatTensor<Self>,
        corpus: FloatTensor<Self>,
        k: usize,
    ) -> (FloatTensor<Self>, IntTensor<Self>) {
        // burn's sort on this backend reads the tensor back synchronously, which WebGPU in a
        // browser cannot do: there the reference path is no fallback.
        let in_browser = cfg!(target_arch = "wasm32");
        if k == 0 || k > MAX_TOP_K {
            assert!(
                !in_browser || k == 0,
                "mlr-kernels cosine_top_k: k = {k} > {MAX_TOP_K} is not supported on WebGPU in the browser"
            );
            let (scores, ids) = reference::cosine_top_k::<Self>(tensor(queries), tensor(corpus), k);
            return (float(scores), ids.into_primitive());
        }
        let queries = contiguous(queries, "queries");
        let corpus = contiguous(corpus, "corpus");
        let (qs, cs) = (dims(&queries), dims(&corpus));
        assert!(
            qs.len() == 2 && cs.len() == 2,
            "mlr-kernels cosine_top_k: queries and corpus must be matrices, got {qs:?} and {cs:?}"
        );
        let (nq, w, n, cw) = (qs[0], qs[1], cs[0], cs[1]);
        assert_eq!(w, cw, "mlr-kernels cosine_top_k: queries have {w} columns, the corpus {cw}");
        // Per invocation: its rows (a dot product of w/4 + 3 iterations and at worst k shifts of
        // the insertion each), then k merge rounds of log2(WG) steps.
        let rows = n.div_ceil(WG_TOP_K as usize);
        // The loop budget is lavapipe's (native Vulkan on the CPU); browsers have no such limit.
        if !in_browser && rows * (w / 4 + 4 + k) + k * (WG_TOP_K.ilog2() as usize + 2) + 2 * k > LOOP_BUDGET {
            let (scores, ids) = reference::cosine_top_k::<Self>(tensor(queries), tensor(corpus), k);
            return (float(scores), ids.into_primitive());
        }
        let scores = empty(&queries, vec![nq, k], DType::F32);
        let ids = empty(&queries, vec![nq, k], DType::I32);
        let kernel =
            Kernel { name: KernelName::CosineTopK, workgroup_size: WG_TOP_K, params: vec![("k", k.to_string())] };
        launch(kernel, grid(nq), &[&queries, &corpus, &scores, &ids], &[nq as u32, n as u32, w as u32]);
        (scores, ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every specialisation the encoder and the search use, parsed and validated by naga (the
    /// WGSL front end wgpu itself uses), with no adapter.
    #[test]
    fn every_kernel_is_valid_wgsl() {
        use naga::valid::{Capabilities, ValidationFlags, Validator};
        /// A kernel's specialisation constants, as [`wgsl`] takes them.
        type Params = Vec<(&'static str, String)>;
        let cases: Vec<(KernelName, u32, Params)> = vec![
            (KernelName::BiasGelu, WG_ELEMENTWISE, vec![]),
            (KernelName::LayerNorm, WG_ROW, vec![("has_residual", "true".into())]),
            (KernelName::LayerNorm, WG_ROW, vec![("has_residual", "false".into())]),
            (KernelName::Attention, WG_ATTENTION, vec![("head_dim", "32".into())]),
            (KernelName::Attention, WG_ATTENTION, vec![("head_dim", "1".into())]),
            (KernelName::Attention, WG_ATTENTION, vec![("head_dim", MAX_HEAD_DIM.to_string())]),
            (KernelName::MeanPool, WG_ROW, vec![("normalize", "true".into())]),
            (KernelName::MeanPool, WG_ROW, vec![("normalize", "false".into())]),
            (KernelName::CosineTopK, WG_TOP_K, vec![("k", "1".into())]),
            (KernelName::CosineTopK, WG_TOP_K, vec![("k", MAX_TOP_K.to_string())]),
            (KernelName::Linear, WG_LINEAR, vec![("has_bias", "true".into())]),
            (KernelName::Linear, WG_LINEAR, vec![("has_bias", "false".into())]),
        ];
        for name in KernelName::ALL {
            assert!(cases.iter().any(|c| c.0 == name), "{name:?} has no validation case");
        }
        for (name, wg, params) in cases {
            let source = wgsl(name, wg, &params);
            assert!(!source.contains("{{"), "{name:?}: an unfilled template placeholder:\n{source}");
            assert_float_literals_fit_f32(name, &source);
            let module = naga::front::wgsl::parse_str(&source)
                .unwrap_or_else(|e| panic!("{name:?} {params:?} does not parse:\n{}", e.emit_to_string(&source)));
            Validator::new(ValidationFlags::all(), Capabilities::empty())
                .validate(&module)
                .unwrap_or_else(|e| panic!("{name:?} {params:?} does not validate:\n{}", e.emit_to_string(&source)));
            assert_eq!(module.entry_points.len(), 1, "{name:?}: one entry point");
            assert_eq!(module.entry_points[0].name, "main");
            assert_eq!(module.entry_points[0].workgroup_size, [wg, 1, 1]);
        }
    }

    /// Naga rounds a float literal beyond the f32 range to the nearest finite value, but Tint
    /// (Chromium's WGSL compiler) rejects the shader, and a rejected shader on WebGPU leaves its
    /// output unwritten without any error on the Rust side. Checked here, without a browser.
    fn assert_float_literals_fit_f32(name: KernelName, source: &str) {
        let code: String = source.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n");
        for token in code.split(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '_')) {
            if !token.starts_with(|c: char| c.is_ascii_digit()) || !token.contains(['.', 'e']) {
                continue;
            }
            let literal = token.trim_end_matches('f');
            if let Ok(v) = literal.parse::<f64>() {
                assert!(
                    v.abs() <= f32::MAX as f64,
                    "{name:?}: the literal {token} lies beyond the f32 range (Tint rejects it)"
                );
            }
        }
    }

    #[test]
    fn the_literal_check_catches_out_of_range_floats() {
        let caught =
            std::panic::catch_unwind(|| assert_float_literals_fit_f32(KernelName::Attention, "let x = -3.4028235e38;"));
        assert!(caught.is_err());
        assert_float_literals_fit_f32(
            KernelName::Attention,
            "let x = -340282346638528859811704183484516925440.0; // 3.5e38",
        );
    }

    /// A kernel's workgroup memory must fit WebGPU's guaranteed 16 KiB.
    #[test]
    fn workgroup_memory_fits_webgpu_limits() {
        let source = wgsl(KernelName::CosineTopK, WG_TOP_K, &[("k", MAX_TOP_K.to_string())]);
        let module = naga::front::wgsl::parse_str(&source).unwrap();
        let mut layouter = naga::proc::Layouter::default();
        layouter.update(module.to_ctx()).unwrap();
        let bytes: u32 = module
            .global_variables
            .iter()
            .filter(|(_, g)| g.space == naga::AddressSpace::WorkGroup)
            .map(|(_, g)| layouter[g.ty].size)
            .sum();
        assert!(bytes <= 16 * 1024, "{bytes} bytes of workgroup memory");
    }
}
