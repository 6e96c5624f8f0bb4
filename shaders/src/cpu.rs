//! The CPU (ndarray) fast path of [`Kernels::fused_linear`](crate::Kernels::fused_linear): one
//! GEMM straight on the tensors' memory. burn-ndarray's matmul reshapes both operands to 3-D
//! first, and its reshape copies (it turns the reshaped view into a new array), so every linear
//! layer copied its weight on every call; for short inputs that copy, and the page faults of
//! the fresh memory, cost more than the multiplication.

use burn::backend::ndarray::NdArrayTensor;
use ndarray::{linalg::general_mat_mul, Array2, Ix1, Ix2, IxDyn};

/// `x · weight (+ bias)` for f32 tensors; `None` for other element types (the caller then runs
/// the reference).
pub(crate) fn linear(x: &NdArrayTensor, weight: &NdArrayTensor, bias: Option<&NdArrayTensor>) -> Option<NdArrayTensor> {
    let (NdArrayTensor::F32(x), NdArrayTensor::F32(weight)) = (x, weight) else { return None };
    let x = x.view();
    let weight = weight.view().into_dimensionality::<Ix2>().expect("mlr-shaders linear: weight must be a matrix");
    let mut shape = x.shape().to_vec();
    let k = *shape.last().expect("mlr-shaders linear: x has a last axis");
    let n = weight.shape()[1];
    assert_eq!(weight.shape()[0], k, "mlr-shaders linear: x has {k} columns, the weight {} rows", weight.shape()[0]);
    let rows = if k == 0 { shape[..shape.len() - 1].iter().product() } else { x.len() / k };
    // A view when x is contiguous (the usual case), else one copy of the activations.
    let x = x.to_shape((rows, k)).expect("mlr-shaders linear: x reshapes to a matrix");
    let (mut out, beta) = match bias {
        Some(NdArrayTensor::F32(b)) => {
            let b = b.view().into_dimensionality::<Ix1>().expect("mlr-shaders linear: bias must be a vector");
            let row = b.broadcast((rows, n)).expect("mlr-shaders linear: bias must have the weight's columns");
            (row.to_owned(), 1.0)
        }
        Some(_) => return None,
        None => (Array2::zeros((rows, n)), 0.0),
    };
    general_mat_mul(1.0, &x, &weight, beta, &mut out);
    *shape.last_mut().expect("checked above") = n;
    let out = out.into_shape_with_order(IxDyn(&shape)).expect("rows × n elements").into_shared();
    Some(NdArrayTensor::from(out))
}
