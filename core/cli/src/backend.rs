//! The compute backends `--backend` names, and the one place a command is run on one of them.
//!
//! A command that encodes implements [`OnBackend`]; `main` hands it to [`on_backend`] with the
//! backend its flags chose and whether the fused kernels are on (`--no-kernels` turns them off),
//! and [`on_backend`] picks the burn backend type, a [`CliBackend`]: inference runs on it,
//! training on its autodiff form, and both have mlr's kernels.

use anyhow::Result;
use burn::backend::{Autodiff, NdArray, Wgpu};
use clap::ValueEnum;
use mlr_model::{AutodiffKernels, Kernels};

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum BackendArg {
    /// burn's ndarray backend on the CPU.
    Cpu,
    /// burn's wgpu backend (Vulkan/Metal/DX12; lavapipe on a machine without a GPU).
    Wgpu,
}

/// A backend `--backend` can name: mlr's kernels on it and on its autodiff form.
pub(crate) trait CliBackend: Kernels {
    /// `Autodiff<Self>`, what training runs on.
    type Autodiff: AutodiffKernels<Device = Self::Device>;
}

impl CliBackend for NdArray<f32> {
    type Autodiff = Autodiff<NdArray<f32>>;
}

impl CliBackend for Wgpu {
    type Autodiff = Autodiff<Wgpu>;
}

/// A command that runs on whichever backend it is given.
pub(crate) trait OnBackend {
    /// Runs on backend `B` (training on `B::Autodiff`); `kernels` says whether encoders use mlr's
    /// fused kernels (false under `--no-kernels`: plain burn ops, the references).
    fn run<B: CliBackend>(self, device: &B::Device, kernels: bool) -> Result<()>;
}

/// Runs `job` on `backend`, with or without the fused kernels.
pub(crate) fn on_backend(backend: BackendArg, kernels: bool, job: impl OnBackend) -> Result<()> {
    match backend {
        BackendArg::Cpu => job.run::<NdArray<f32>>(&Default::default(), kernels),
        BackendArg::Wgpu => job.run::<Wgpu>(&Default::default(), kernels),
    }
}
