// Masked mean pooling, optionally followed by L2 normalisation, one workgroup per batch row.
//
// hidden: [batch, seq, width]; mask: [batch, seq] (1 token, 0 padding); out: [batch, width].
// info: [batch, seq, width]. The token count is clamped to 1 (an all-padding row gives zeros, not
// NaN) and the norm to 1e-12, as the reference does.

@group(0) @binding(0) var<storage, read_write> hidden: array<f32>;
@group(0) @binding(1) var<storage, read_write> mask: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read_write> info: array<u32>;

const WG: u32 = {{ workgroup_size }}u;
const NORMALIZE: bool = {{ normalize }};

// reduce_sum (shared/reduce_sum.wgsl) and uniform_row_count (shared/uniform_count.wgsl) are
// appended by the host (wgpu.rs).

@compute @workgroup_size({{ workgroup_size }}, 1, 1)
fn main(
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let batch = uniform_row_count(lid);
    let seq = info[1];
    let width = info[2];
    let b = wid.x + wid.y * groups.x;
    if b >= batch {
        return;
    }
    var count = 0.0;
    for (var s = 0u; s < seq; s++) {
        count += mask[b * seq + s];
    }
    count = max(count, 1.0);

    var sq = 0.0;
    for (var c = lid; c < width; c += WG) {
        var sum = 0.0;
        for (var s = 0u; s < seq; s++) {
            sum += hidden[(b * seq + s) * width + c] * mask[b * seq + s];
        }
        let mean = sum / count;
        out[b * width + c] = mean;
        sq += mean * mean;
    }
    if NORMALIZE {
        let inv = 1.0 / max(sqrt(reduce_sum(lid, sq)), 1e-12);
        for (var c = lid; c < width; c += WG) {
            out[b * width + c] = out[b * width + c] * inv;
        }
    }
}
