//! AdamW on the backend's kernels, with global-norm clipping folded into the update.
//!
//! [`KernelAdamW`] is burn's `AdamW` (same hyper-parameters, same order of operations, same
//! record: a checkpoint's `optimizer.bin` reads either way) whose per-parameter update is
//! [`mlr_kernels::adamw`]: on the CPU backend one pass over parameter, gradient and moments in
//! place, where burn's makes about twelve passes into fresh tensors; with the kernels off, the
//! reference (burn's operations). The clipping factor of a step is applied to the gradient inside
//! that pass ([`GradScale`]) instead of in a pass of its own. Both give the bits burn's `AdamW`
//! gives after burn's scaling of the gradients (`tests::kernel_adamw_is_burns_adamw`).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{AdamWState, AdaptiveMomentumState, LearningRate, SimpleOptimizer};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Device, Tensor};
use mlr_kernels::{AdamWStep, Kernels};
use mlr_model::BertModel;

/// The factor every gradient of the next step is multiplied by (1 unless clipping), shared
/// between the trainer and its optimizer.
#[derive(Clone, Debug)]
pub(crate) struct GradScale(Arc<AtomicU32>);

impl Default for GradScale {
    fn default() -> Self {
        Self(Arc::new(AtomicU32::new(1f32.to_bits())))
    }
}

impl GradScale {
    pub(crate) fn set(&self, factor: f32) {
        self.0.store(factor.to_bits(), Ordering::Relaxed);
    }

    fn get(&self) -> f32 {
        f32::from_bits(self.0.load(Ordering::Relaxed))
    }
}

/// AdamW with decoupled weight decay through [`mlr_kernels::adamw`] (see the module docs).
#[derive(Clone, Debug)]
pub(crate) struct KernelAdamW {
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
    pub weight_decay: f32,
    /// The CPU kernel (true) or the reference (burn's operations).
    pub fused: bool,
    pub scale: GradScale,
}

/// The trainer's optimizer: [`KernelAdamW`] on every parameter of the encoder.
pub(crate) type Optim<B> = OptimizerAdaptor<KernelAdamW, BertModel<B>, B>;

impl KernelAdamW {
    /// burn's `AdamWConfig` defaults for the betas (0.9, 0.999).
    pub(crate) fn new(weight_decay: f32, epsilon: f32, fused: bool) -> Self {
        Self { beta_1: 0.9, beta_2: 0.999, epsilon, weight_decay, fused, scale: GradScale::default() }
    }

    /// The optimizer over a model's parameters.
    pub(crate) fn init<B: AutodiffBackend<InnerBackend: Kernels>>(self) -> Optim<B> {
        OptimizerAdaptor::from(self)
    }
}

impl<B: Kernels> SimpleOptimizer<B> for KernelAdamW {
    type State<const D: usize> = AdamWState<B, D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<B, D>,
        grad: Tensor<B, D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<B, D>, Option<Self::State<D>>) {
        let time = state.as_ref().map_or(1, |s| s.momentum.time + 1);
        let moments = state.map(|s| (s.momentum.moment_1, s.momentum.moment_2));
        let step = AdamWStep {
            lr,
            beta_1: self.beta_1,
            beta_2: self.beta_2,
            epsilon: self.epsilon,
            weight_decay: self.weight_decay,
            time,
            grad_scale: self.scale.get(),
        };
        let (tensor, m1, m2) = mlr_kernels::adamw(tensor, grad, moments, &step, self.fused);
        (tensor, Some(AdamWState::new(AdaptiveMomentumState::new(time, m1, m2))))
    }

    fn to_device<const D: usize>(mut state: Self::State<D>, device: &Device<B>) -> Self::State<D> {
        state.momentum = state.momentum.to_device(device);
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use burn::module::{Module, Param};
    use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
    use burn::tensor::Distribution;

    type A = Autodiff<NdArray<f32>>;

    #[derive(Module, Debug)]
    struct Two<B: burn::tensor::backend::Backend> {
        w: Param<Tensor<B, 2>>,
        b: Param<Tensor<B, 1>>,
    }

    fn model(device: &Device<A>) -> Two<A> {
        Two {
            w: Param::from_tensor(Tensor::random([37, 129], Distribution::Normal(0.0, 1.0), device)),
            b: Param::from_tensor(Tensor::random([129], Distribution::Normal(0.0, 1.0), device)),
        }
    }

    fn grads(m: &Two<A>, seed: f32) -> GradientsParams {
        let x = m.w.val().mul_scalar(seed).sin();
        let loss = (x * m.w.val()).sum() + m.b.val().powi_scalar(3).sum().mul_scalar(seed);
        GradientsParams::from_grads(loss.backward(), m)
    }

    fn values(m: &Two<A>) -> Vec<f32> {
        let mut v = m.w.val().into_data().to_vec::<f32>().unwrap();
        v.extend(m.b.val().into_data().to_vec::<f32>().unwrap());
        v
    }

    /// Scales every gradient as the trainer's clipping did before the factor moved into the update.
    fn scaled(m: &Two<A>, mut g: GradientsParams, factor: f64) -> GradientsParams {
        for id in [m.w.id, m.b.id] {
            if let Some(t) = g.remove::<NdArray<f32>, 2>(id) {
                g.register(id, t.mul_scalar(factor));
            } else if let Some(t) = g.remove::<NdArray<f32>, 1>(id) {
                g.register(id, t.mul_scalar(factor));
            }
        }
        g
    }

    #[test]
    fn kernel_adamw_is_burns_adamw() {
        let device = Default::default();
        for (fused, decay) in [(true, 0.01), (false, 0.01), (true, 0.0)] {
            let start = model(&device);
            let mut burns = AdamWConfig::new().with_weight_decay(decay).with_epsilon(1e-8).init::<A, Two<A>>();
            let ours = KernelAdamW::new(decay, 1e-8, fused);
            let scale = ours.scale.clone();
            let mut ours = OptimizerAdaptor::<_, Two<A>, A>::from(ours);
            let (mut a, mut b) = (start.clone(), start);
            for (step, factor) in [(1, 1.0), (2, 0.37), (3, 1.0), (4, 0.052)] {
                let lr = 1e-3 * step as f64;
                let ga = scaled(&a, grads(&a, step as f32), factor);
                a = burns.step(lr, a, ga);
                scale.set(factor as f32);
                let gb = grads(&b, step as f32);
                b = ours.step(lr, b, gb);
                assert_eq!(values(&a), values(&b), "fused {fused}, decay {decay}, step {step}: not burn's bits");
            }
        }
    }

    /// A checkpoint's `optimizer.bin` written with burn's `AdamW` continues with [`KernelAdamW`].
    #[test]
    fn kernel_adamw_reads_burns_record() {
        use burn::record::{BinFileRecorder, FullPrecisionSettings, Recorder};
        let device = Default::default();
        let m = model(&device);
        let mut burns = AdamWConfig::new().with_weight_decay(0.01).init::<A, Two<A>>();
        let m = burns.step(1e-3, m.clone(), grads(&m, 1.0));
        let dir = std::env::temp_dir().join(format!("mlr-optim-record-{}", std::process::id()));
        let recorder = BinFileRecorder::<FullPrecisionSettings>::new();
        Recorder::<A>::record(&recorder, burns.to_record(), dir.join("optimizer")).unwrap();
        let ours = OptimizerAdaptor::<_, Two<A>, A>::from(KernelAdamW::new(0.01, 1e-5, true));
        let record = Recorder::<A>::load(&recorder, dir.join("optimizer"), &device).unwrap();
        let mut ours = ours.load_record(record);
        std::fs::remove_dir_all(&dir).ok();
        let a = burns.step(1e-3, m.clone(), grads(&m, 2.0));
        let b = ours.step(1e-3, m.clone(), grads(&m, 2.0));
        assert_eq!(values(&a), values(&b));
    }
}
