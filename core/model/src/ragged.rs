//! Texts of different lengths in one pass, with no padding in the dense layers.
//!
//! A batch padded to its longest text spends every dense layer's multiplications on its padding,
//! and cutting it into batches of similar lengths instead multiplies each weight once per batch:
//! in training, that is one weight gradient `xᵀ · dy` per batch, each a full `[k, n]` product
//! with few rows behind it, added together afterwards.
//!
//! [`Ragged`] keeps texts in groups, each padded to its own longest text, and
//! [`BertModel::forward_ragged`] runs the embeddings per group, then every dense layer, GELU and
//! LayerNorm on the real tokens of all groups at once, as one `[tokens, hidden]` matrix. The
//! attention runs on that matrix too, each text over its own rows (`mlr_kernels::attention_ragged`),
//! on backends that have that path (the CPU, and training over it); elsewhere (wgpu, or the
//! kernels off) it sees a group's padded `[texts, seq, hidden]` form, scattered from the matrix
//! before it and gathered back after it. A real token's state is the one [`BertModel::forward`] gives it
//! on the group alone (a row of a product or of a LayerNorm does not depend on the other rows;
//! padding is masked in the attention), and a pass multiplies each weight once, over every token
//! of the pass (the trainer's whole-batch step is one pass).

use burn::tensor::backend::Backend;
use burn::tensor::{IndexingUpdateOp, Int, Tensor, TensorData};

use crate::bert::{bias, dense, matmul, norm};
use crate::{BertAttention, BertModel, Kernels};

/// One group of texts padded to its longest: its ids and mask, and where its real tokens are.
#[derive(Debug, Clone)]
pub struct RaggedGroup<B: Backend> {
    /// `[texts, seq]`
    pub ids: Tensor<B, 2, Int>,
    /// `[texts, seq]`: 1.0 token, 0.0 padding.
    pub mask: Tensor<B, 2>,
    /// `[tokens]`: the flat index (`text · seq + position`) of every real token, in order.
    tokens: Tensor<B, 1, Int>,
    /// The number of real tokens.
    count: usize,
    /// Each text's number of tokens, when every text's tokens come first in its row (the
    /// tokenizer's right padding); `None` for a mask with holes.
    lengths: Option<Vec<usize>>,
}

impl<B: Backend> RaggedGroup<B> {
    /// A group from row-major `[texts, seq]` ids and mask (non-zero: a token, 0: padding).
    ///
    /// # Panics
    /// If `ids` or `mask` does not hold `texts · seq` values.
    pub fn new(ids: &[u32], mask: &[u32], [texts, seq]: [usize; 2], device: &B::Device) -> Self {
        assert_eq!(ids.len(), texts * seq, "mlr-model ragged group: ids must hold {texts} × {seq} values");
        assert_eq!(mask.len(), texts * seq, "mlr-model ragged group: mask must hold {texts} × {seq} values");
        let tokens: Vec<i32> = (0..mask.len()).filter(|&i| mask[i] != 0).map(|i| i as i32).collect();
        let count = tokens.len();
        let lengths = mask
            .chunks(seq.max(1))
            .take(texts)
            .map(|row| {
                let len = row.iter().take_while(|&&m| m != 0).count();
                row[len..].iter().all(|&m| m == 0).then_some(len)
            })
            .collect();
        let ids: Vec<i32> = ids.iter().map(|&i| i as i32).collect();
        let mask: Vec<f32> = mask.iter().map(|&m| if m != 0 { 1.0 } else { 0.0 }).collect();
        Self {
            ids: Tensor::from_data(TensorData::new(ids, [texts, seq]), device),
            mask: Tensor::from_data(TensorData::new(mask, [texts, seq]), device),
            tokens: Tensor::from_data(TensorData::new(tokens, [count]), device),
            count,
            lengths,
        }
    }

    /// `[texts, seq]`.
    pub fn dims(&self) -> [usize; 2] {
        self.mask.dims()
    }

    /// Whether every position is a real token (then scattering and gathering are reshapes).
    fn dense(&self) -> bool {
        let [texts, seq] = self.dims();
        self.count == texts * seq
    }

    /// This group's rows of the token matrix, as its padded `[texts, seq, hidden]` form (zeros at
    /// padding).
    fn scatter(&self, rows: Tensor<B, 2>) -> Tensor<B, 3> {
        let [texts, seq] = self.dims();
        let hidden = rows.dims()[1];
        if self.dense() {
            return rows.reshape([texts, seq, hidden]);
        }
        Tensor::zeros([texts * seq, hidden], &rows.device())
            .select_assign(0, self.tokens.clone(), rows, IndexingUpdateOp::Add)
            .reshape([texts, seq, hidden])
    }

    /// The real tokens' rows of a padded `[texts, seq, hidden]` state.
    fn gather(&self, padded: Tensor<B, 3>) -> Tensor<B, 2> {
        let [texts, seq, hidden] = padded.dims();
        let flat = padded.reshape([texts * seq, hidden]);
        if self.dense() {
            return flat;
        }
        flat.select(0, self.tokens.clone())
    }
}

/// Groups of texts for [`BertModel::forward_ragged`].
#[derive(Debug, Clone)]
pub struct Ragged<B: Backend> {
    /// The groups, in order; their tokens are the token matrix's rows, group after group.
    pub groups: Vec<RaggedGroup<B>>,
}

impl<B: Backend> Ragged<B> {
    /// Each group's rows `[start, end)` of the token matrix.
    fn spans(&self) -> Vec<(usize, usize)> {
        let mut start = 0;
        self.groups
            .iter()
            .map(|g| {
                let span = (start, start + g.count);
                start += g.count;
                span
            })
            .collect()
    }

    /// Every text's number of tokens, group after group: the token matrix's texts end to end.
    /// `None` if a group's mask has holes.
    fn lengths(&self) -> Option<Vec<usize>> {
        self.groups.iter().try_fold(Vec::new(), |mut all, g| {
            all.extend_from_slice(g.lengths.as_deref()?);
            Some(all)
        })
    }

    /// Rows `[start, end)` of the token matrix `x` (all of it when there is one group).
    fn rows(&self, x: &Tensor<B, 2>, (start, end): (usize, usize)) -> Tensor<B, 2> {
        if self.groups.len() == 1 {
            x.clone()
        } else {
            x.clone().slice(start..end)
        }
    }
}

/// Row blocks stacked in order (no copy for one).
fn stack<B: Backend>(mut parts: Vec<Tensor<B, 2>>) -> Tensor<B, 2> {
    if parts.len() == 1 {
        return parts.pop().expect("one part");
    }
    Tensor::cat(parts, 0)
}

impl<B: Kernels> BertAttention<B> {
    /// [`forward`](Self::forward) on a token matrix: the projections over every token at once,
    /// the attention group by group.
    ///
    /// # Shapes
    /// x `[1, tokens, h]` -> `[1, tokens, h]`
    ///
    /// # Panics
    /// If `x` does not hold one row per real token of `batch`.
    pub fn forward_ragged(&self, x: Tensor<B, 3>, batch: &Ragged<B>, epsilon: f64, fused: bool) -> Tensor<B, 3> {
        let [_, tokens, h] = x.dims();
        let count: usize = batch.groups.iter().map(|g| g.count).sum();
        assert_eq!(tokens, count, "mlr-model ragged attention: x has {tokens} rows, the batch {count} tokens");
        let flat = |t: Tensor<B, 3>| t.reshape([tokens, h]);
        let q = flat(dense(&self.query, x.clone(), fused));
        let k = flat(dense(&self.key, x.clone(), fused));
        let v = flat(dense(&self.value, x.clone(), fused));
        // With the kernels, on the token matrix itself where the backend can (no padding at all);
        // else each group padded to its longest text, masked, and gathered back.
        let ragged = fused.then(|| batch.lengths()).flatten().and_then(|lengths| {
            mlr_kernels::attention_ragged(q.clone(), k.clone(), v.clone(), &lengths, self.n_heads, true)
        });
        let context = match ragged {
            Some(context) => context,
            None => stack(
                batch
                    .groups
                    .iter()
                    .zip(batch.spans())
                    .filter(|(g, _)| g.count > 0)
                    .map(|(g, span)| {
                        let [q, k, v] = [&q, &k, &v].map(|t| g.scatter(batch.rows(t, span)));
                        g.gather(mlr_kernels::attention(q, k, v, g.mask.clone(), self.n_heads, fused))
                    })
                    .collect(),
            ),
        }
        .reshape([1, tokens, h]);
        norm(&self.layer_norm, matmul(&self.output, context, fused), bias(&self.output), Some(x), epsilon, fused)
    }
}

impl<B: Kernels> BertModel<B> {
    /// The last hidden state of every group of `batch`, each `[texts, seq, hidden]` with zeros at
    /// padding: per real token the state [`forward`](Self::forward) gives it, computed with every
    /// dense layer over all groups' tokens at once (see the module docs).
    pub fn forward_ragged(&self, batch: &Ragged<B>) -> Vec<Tensor<B, 3>> {
        let (eps, fused) = (self.layer_norm_eps, self.kernels);
        B::run(|| {
            let embedded: Vec<Tensor<B, 2>> = batch
                .groups
                .iter()
                .filter(|g| g.count > 0)
                .map(|g| g.gather(self.embeddings.forward(g.ids.clone(), eps, fused)))
                .collect();
            let Some(first) = embedded.first() else {
                return batch.groups.iter().map(|g| empty_state(g, self)).collect();
            };
            let h = first.dims()[1];
            let x = stack(embedded);
            let tokens = x.dims()[0];
            let mut x = x.reshape([1, tokens, h]);
            for layer in &self.layers {
                x = layer.feed_forward.forward(layer.attention.forward_ragged(x, batch, eps, fused), eps, fused);
            }
            let x = x.reshape([tokens, h]);
            batch
                .groups
                .iter()
                .zip(batch.spans())
                .map(|(g, span)| if g.count == 0 { empty_state(g, self) } else { g.scatter(batch.rows(&x, span)) })
                .collect()
        })
    }
}

/// The state of a group with no real token: zeros.
fn empty_state<B: Kernels>(group: &RaggedGroup<B>, model: &BertModel<B>) -> Tensor<B, 3> {
    let [texts, seq] = group.dims();
    let h = model.embeddings.position.val().dims()[1];
    Tensor::zeros([texts, seq, h], &group.mask.device())
}

#[cfg(test)]
mod tests {
    use burn::backend::{Autodiff, NdArray};

    use super::*;
    use crate::{masked_mean, BertConfig, SeededWeights};

    type B = NdArray<f32>;

    fn model<K: Kernels>(fused: bool) -> BertModel<K> {
        let config = BertConfig::new(64, 24, 2, 4, 40);
        BertModel::from_source(&config, &mut SeededWeights::new(7, 0.2), &Default::default())
            .expect("a test model")
            .with_kernels(fused)
    }

    /// Texts of these lengths, ids from a seed, as groups of `per_group` texts each padded to its
    /// longest (one text of one token, one text that fills its group's width).
    fn groups(lengths: &[usize], per_group: usize) -> Vec<(Vec<u32>, Vec<u32>, [usize; 2])> {
        lengths
            .chunks(per_group)
            .enumerate()
            .map(|(g, chunk)| {
                let seq = (*chunk.iter().max().expect("non-empty")).max(1);
                let mut ids = vec![1u32; chunk.len() * seq];
                let mut mask = vec![0u32; chunk.len() * seq];
                for (t, &len) in chunk.iter().enumerate() {
                    for p in 0..len {
                        ids[t * seq + p] = 3 + ((g * 31 + t * 7 + p * 5) % 60) as u32;
                        mask[t * seq + p] = 1;
                    }
                }
                (ids, mask, [chunk.len(), seq])
            })
            .collect()
    }

    #[test]
    fn every_token_gets_the_state_of_the_padded_forward() {
        let device = Default::default();
        // Several groups (a one-token text, a group of equal lengths); one group alone; a group
        // whose texts are all padding beside a real one.
        let batches: [(&[usize], usize); 4] =
            [(&[5, 1, 9, 9, 3, 12, 2, 7, 4, 4, 4], 3), (&[6, 2, 5], 3), (&[3, 3, 3], 3), (&[0, 0, 4, 2], 2)];
        for fused in [true, false] {
            let m = model::<B>(fused);
            for (lengths, per_group) in batches {
                let parts = groups(lengths, per_group);
                let batch = Ragged {
                    groups: parts.iter().map(|(i, mk, shape)| RaggedGroup::new(i, mk, *shape, &device)).collect(),
                };
                let ragged = m.forward_ragged(&batch);
                assert_eq!(ragged.len(), parts.len());
                for ((group, state), (_, mask, shape)) in batch.groups.iter().zip(ragged).zip(&parts) {
                    let keep = group.mask.clone().unsqueeze_dim::<3>(2);
                    if mask.iter().all(|&m| m == 0) {
                        assert_eq!(state.dims()[..2], shape[..]);
                        assert_eq!(state.abs().max().into_scalar(), 0.0, "a group of padding gives zeros");
                        continue;
                    }
                    // Token by token, in place: the padded forward's states at real tokens, zeros
                    // at padding.
                    let padded = m.forward(group.ids.clone(), group.mask.clone()) * keep;
                    let d: f32 = (padded - state).abs().max().into_scalar();
                    assert!(d < 1e-5, "fused {fused}, lengths {lengths:?}: token states differ by {d}");
                }
            }
        }
    }

    #[test]
    fn gradients_equal_the_padded_forwards() {
        type A = Autodiff<B>;
        let lengths = [4, 1, 6, 6, 2, 8, 3];
        let device = Default::default();
        let parts = groups(&lengths, 3);
        for fused in [true, false] {
            let m = model::<A>(fused);
            // A loss that weighs every pooled coordinate differently.
            let weights = |n: usize| {
                let w: Vec<f32> = (0..n * 24).map(|i| ((i * 37 % 11) as f32 - 5.0) / 7.0).collect();
                Tensor::<A, 2>::from_data(TensorData::new(w, [n, 24]), &device)
            };
            let batch = Ragged {
                groups: parts.iter().map(|(i, mk, shape)| RaggedGroup::new(i, mk, *shape, &device)).collect(),
            };
            let ragged: Tensor<A, 1> = m
                .forward_ragged(&batch)
                .into_iter()
                .zip(&batch.groups)
                .map(|(s, g)| (masked_mean(s, g.mask.clone()) * weights(g.dims()[0])).sum())
                .reduce(|a, b| a + b)
                .expect("groups");
            let padded: Tensor<A, 1> = batch
                .groups
                .iter()
                .map(|g| {
                    (masked_mean(m.forward(g.ids.clone(), g.mask.clone()), g.mask.clone()) * weights(g.dims()[0])).sum()
                })
                .reduce(|a, b| a + b)
                .expect("groups");
            let (ga, gb) = (ragged.backward(), padded.backward());
            let mut checked = 0;
            for layer in &m.layers {
                let a = &layer.attention;
                for linear in [&a.query, &a.key, &a.value, &a.output, &layer.feed_forward.intermediate] {
                    let w = linear.weight.val();
                    let (a, b) = (w.grad(&ga).expect("a gradient"), w.grad(&gb).expect("a gradient"));
                    let scale: f32 = b.clone().abs().max().into_scalar();
                    let d: f32 = (a - b).abs().max().into_scalar();
                    assert!(
                        d <= 1e-5 * scale.max(1e-6),
                        "fused {fused}: weight gradients differ by {d} (scale {scale})"
                    );
                    checked += 1;
                }
            }
            let p = m.embeddings.position.val();
            let (a, b) = (p.grad(&ga).expect("a gradient"), p.grad(&gb).expect("a gradient"));
            let scale: f32 = b.clone().abs().max().into_scalar();
            assert!((a - b).abs().max().into_scalar() <= 1e-5 * scale.max(1e-6));
            assert_eq!(checked, 10);
        }
    }
}
