
// ---- shared/reduce_sum.wgsl (appended to the row kernels): the sum of `value` over the
// workgroup, by a tree reduction in workgroup memory. Every invocation must call it (it has
// barriers), and every invocation gets the total.
var<workgroup> partial: array<f32, {{ workgroup_size }}>;

fn reduce_sum(lid: u32, value: f32) -> f32 {
    partial[lid] = value;
    workgroupBarrier();
    for (var half = WG / 2u; half > 0u; half = half / 2u) {
        if lid < half {
            partial[lid] += partial[lid + half];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier();
    return total;
}
