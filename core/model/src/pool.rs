//! Sentence vectors from token states: masked mean pooling and L2 normalisation (the plain-burn
//! references of `mlr-kernels`; `mlr_kernels::mean_pool` is the fused form).

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// Mean of the token states where `mask` is 1, padding excluded (so a text's vector does not depend
/// on its batch-mates). The denominator is clamped to 1 to keep an all-padding row finite.
///
/// # Shapes
/// hidden `[b, s, h]`, mask `[b, s]` -> `[b, h]`
pub fn masked_mean<B: Backend>(hidden: Tensor<B, 3>, mask: Tensor<B, 2>) -> Tensor<B, 2> {
    mlr_kernels::reference::mean_pool(hidden, mask, false)
}

/// Scales every row to unit L2 norm (rows of norm below 1e-12 are left near zero, not NaN).
///
/// # Shapes
/// `[b, h]` -> `[b, h]`
pub fn l2_normalize<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    mlr_kernels::reference::l2_normalize(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::tensor::TensorData;

    type B = NdArray<f32>;

    #[test]
    fn mean_ignores_padding_and_normalises() {
        let device = Default::default();
        // Two rows: [1,2],[3,4],[100,100](pad) and [5,6],[pad],[pad]
        let hidden = Tensor::<B, 3>::from_data(
            TensorData::new(vec![1.0f32, 2., 3., 4., 100., 100., 5., 6., 9., 9., 9., 9.], [2, 3, 2]),
            &device,
        );
        let mask = Tensor::<B, 2>::from_data(TensorData::new(vec![1.0f32, 1., 0., 1., 0., 0.], [2, 3]), &device);
        let mean = masked_mean(hidden, mask);
        let got: Vec<f32> = mean.clone().into_data().to_vec().unwrap();
        assert_eq!(got, vec![2.0, 3.0, 5.0, 6.0]);
        let unit: Vec<f32> = l2_normalize(mean).into_data().to_vec().unwrap();
        let n0 = (4.0f32 + 9.0).sqrt();
        let n1 = (25.0f32 + 36.0).sqrt();
        for (g, e) in unit.iter().zip([2.0 / n0, 3.0 / n0, 5.0 / n1, 6.0 / n1]) {
            assert!((g - e).abs() < 1e-6, "{g} vs {e}");
        }
    }
}
