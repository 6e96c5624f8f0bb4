//! [`Kernels`] on burn's autodiff backend. Native only.
//!
//! On `Autodiff<NdArray<f32>>` the fused operations are custom autodiff operations (burn-autodiff's
//! `Backward` pattern): the forward runs the CPU fast path of the inner backend and keeps what the
//! backward needs, and the backward runs the CPU backward passes of `cpu/backward.rs` (the packed
//! GEMM, one pass per row, attention per head). So training uses the same GEMM, fused bias + GELU,
//! bias + residual + LayerNorm and per-head attention as inference, and the attention over texts
//! laid end to end (`attention_ragged`) that the ragged pass runs with no padding. Mean pooling and the loss stay
//! burn's ops (a few passes over `[batch, width]`). Tensors of another element type run the
//! references.
//!
//! On `Autodiff<Wgpu>` every operation is the plain-burn reference, differentiated by burn: the
//! WGSL kernels have no backward passes yet.
//!
//! With the encoder's kernels off (`BertModel::kernels`, `--no-kernels`), every backend runs the
//! references, which is the path the gradient parity tests compare against.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::ndarray::NdArrayTensor;
#[cfg(feature = "wgpu")]
use burn::backend::wgpu::{BoolElement, CubeBackend, WgpuRuntime};
use burn::backend::{Autodiff, NdArray};
use burn::tensor::ops::FloatTensor;

use crate::cpu::{self, backward};
use crate::{float, reference, reference_bias_gelu, reference_layer_norm, run_on_pool, tensor, Kernels};

type Nd = NdArray<f32>;

/// Registers each wanted gradient (`Option<NdArrayTensor>`, in parent order) with its parent.
macro_rules! register {
    ($parents:expr, $grads:expr, $values:expr) => {
        for (parent, grad) in $parents.iter().zip($values) {
            if let (Some(node), Some(grad)) = (parent, grad) {
                $grads.register::<Nd>(node.id, grad);
            }
        }
    };
}

/// Which parents want a gradient, as `[bool; M]` (false past the parents' count).
macro_rules! wanted {
    ($parents:expr) => {
        std::array::from_fn(|i| $parents.get(i).is_some_and(Option::is_some))
    };
}

/// Finishes a custom operation: tracked, it keeps `state` for its backward pass.
fn finish<O, S, C, const N: usize>(
    kind: OpsKind<O, Nd, S, C, N>,
    state: impl FnOnce() -> S,
    out: NdArrayTensor,
) -> FloatTensor<Autodiff<Nd, C>>
where
    O: Backward<Nd, N, State = S>,
    S: Clone + Send + std::fmt::Debug + 'static,
    C: CheckpointStrategy,
{
    match kind {
        OpsKind::Tracked(prep) => prep.finish(state(), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    }
}

/// `x · w (+ b)`; parents [x, w] or [x, w, b].
#[derive(Debug)]
struct Linear;

impl<const N: usize> Backward<Nd, N> for Linear {
    type State = (NdArrayTensor, NdArrayTensor);

    fn backward(self, ops: Ops<Self::State, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<Nd>(&ops.node);
        let (x, w) = ops.state;
        register!(ops.parents, grads, backward::linear(&x, &w, &dy, wanted!(ops.parents)));
    }
}

/// `gelu(x + b)`; parents [x, b].
#[derive(Debug)]
struct BiasGelu;

impl Backward<Nd, 2> for BiasGelu {
    type State = (NdArrayTensor, NdArrayTensor);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<Nd>(&ops.node);
        let (x, bias) = ops.state;
        register!(ops.parents, grads, backward::bias_gelu(&x, &bias, &dy, wanted!(ops.parents)));
    }
}

/// `LayerNorm(x + b (+ r)) · γ + β`; parents [x, b, γ, β] or [x, b, γ, β, r].
#[derive(Debug)]
struct LayerNorm;

impl<const N: usize> Backward<Nd, N> for LayerNorm {
    type State = backward::NormSaved;

    fn backward(self, ops: Ops<Self::State, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<Nd>(&ops.node);
        register!(ops.parents, grads, backward::layer_norm(&ops.state, &dy, wanted!(ops.parents)));
    }
}

/// Multi-head attention; parents [q, k, v] (the mask is data).
#[derive(Debug)]
struct Attention;

impl Backward<Nd, 3> for Attention {
    type State = (NdArrayTensor, NdArrayTensor, NdArrayTensor, NdArrayTensor, usize);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dout = grads.consume::<Nd>(&ops.node);
        let (q, k, v, mask, heads) = ops.state;
        let grads3 = backward::attention(&q, &k, &v, &mask, heads, &dout);
        register!(ops.parents, grads, grads3.map(Some));
    }
}

/// Multi-head attention over texts laid end to end; parents [q, k, v] (the lengths are data).
#[derive(Debug)]
struct AttentionRagged;

impl Backward<Nd, 3> for AttentionRagged {
    type State = (NdArrayTensor, NdArrayTensor, NdArrayTensor, Vec<usize>, usize);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dout = grads.consume::<Nd>(&ops.node);
        let (q, k, v, lengths, heads) = ops.state;
        let grads3 = backward::attention_ragged(&q, &k, &v, &lengths, heads, &dout);
        register!(ops.parents, grads, grads3.map(Some));
    }
}

/// Training on the CPU with the fast paths and their backward passes (see the module docs).
impl<C: CheckpointStrategy> Kernels for Autodiff<Nd, C> {
    fn fused_linear(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
    ) -> FloatTensor<Self> {
        let f32s =
            cpu::all_f32([&x.primitive, &weight.primitive].into_iter().chain(bias.as_ref().map(|b| &b.primitive)));
        let out =
            f32s.then(|| cpu::linear(&x.primitive, &weight.primitive, bias.as_ref().map(|b| &b.primitive))).flatten();
        let Some(out) = out else {
            return float(reference::linear::<Self>(tensor(x), tensor(weight), bias.map(tensor)));
        };
        let state = || (x.primitive.clone(), weight.primitive.clone());
        match &bias {
            Some(b) => finish(
                Linear.prepare::<C>([x.node.clone(), weight.node.clone(), b.node.clone()]).compute_bound().stateful(),
                state,
                out,
            ),
            None => finish(
                Linear.prepare::<C>([x.node.clone(), weight.node.clone()]).compute_bound().stateful(),
                state,
                out,
            ),
        }
    }

    fn fused_bias_gelu(x: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self> {
        if !cpu::all_f32([&x.primitive, &bias.primitive]) {
            return reference_bias_gelu::<Self>(x, bias);
        }
        let out = cpu::bias_gelu(x.primitive.clone(), &bias.primitive);
        let kind = BiasGelu.prepare::<C>([x.node.clone(), bias.node.clone()]).compute_bound().stateful();
        finish(kind, || (x.primitive.clone(), bias.primitive.clone()), out)
    }

    fn fused_layer_norm(
        x: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        residual: Option<FloatTensor<Self>>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        if !cpu::all_f32(
            [&x.primitive, &bias.primitive, &gamma.primitive, &beta.primitive]
                .into_iter()
                .chain(residual.as_ref().map(|r| &r.primitive)),
        ) {
            return reference_layer_norm::<Self>(x, bias, residual, gamma, beta, epsilon);
        }
        let (out, saved) = backward::layer_norm_forward(
            &x.primitive,
            &bias.primitive,
            residual.as_ref().map(|r| &r.primitive),
            &gamma.primitive,
            &beta.primitive,
            epsilon,
        );
        let nodes = [x.node.clone(), bias.node.clone(), gamma.node.clone(), beta.node.clone()];
        match residual {
            Some(r) => {
                let [a, b, c, d] = nodes;
                finish(LayerNorm.prepare::<C>([a, b, c, d, r.node.clone()]).compute_bound().stateful(), || saved, out)
            }
            None => finish(LayerNorm.prepare::<C>(nodes).compute_bound().stateful(), || saved, out),
        }
    }

    fn fused_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        mask: FloatTensor<Self>,
        heads: usize,
    ) -> FloatTensor<Self> {
        if !cpu::all_f32([&q.primitive, &k.primitive, &v.primitive, &mask.primitive]) {
            return float(reference::attention::<Self>(tensor(q), tensor(k), tensor(v), tensor(mask), heads));
        }
        let out = cpu::attention(&q.primitive, &k.primitive, &v.primitive, &mask.primitive, heads);
        let state = || (q.primitive.clone(), k.primitive.clone(), v.primitive.clone(), mask.primitive.clone(), heads);
        finish(
            Attention.prepare::<C>([q.node.clone(), k.node.clone(), v.node.clone()]).compute_bound().stateful(),
            state,
            out,
        )
    }

    fn fused_attention_ragged(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        lengths: &[usize],
        heads: usize,
    ) -> Option<FloatTensor<Self>> {
        if !cpu::all_f32([&q.primitive, &k.primitive, &v.primitive]) {
            return None;
        }
        let out = cpu::attention_ragged(&q.primitive, &k.primitive, &v.primitive, lengths, heads);
        let state = || (q.primitive.clone(), k.primitive.clone(), v.primitive.clone(), lengths.to_vec(), heads);
        let nodes = [q.node.clone(), k.node.clone(), v.node.clone()];
        Some(finish(AttentionRagged.prepare::<C>(nodes).compute_bound().stateful(), state, out))
    }

    fn run<R: Send>(f: impl FnOnce() -> R + Send) -> R {
        run_on_pool(f)
    }
}

/// Training on wgpu: the references, differentiated by burn (see the module docs).
#[cfg(feature = "wgpu")]
impl<BT: BoolElement, C: CheckpointStrategy> Kernels for Autodiff<CubeBackend<WgpuRuntime, f32, i32, BT>, C> {}
