// out = LayerNorm(x + bias [+ residual]) * gamma + beta, one workgroup per row.
//
// x, residual, out: [rows, width]; bias, gamma, beta: [width].
// info: [rows, width, bits of eps (f32)]. Rows are spread over workgroup_id.x and .y, so more
// than 65,535 rows fit in one dispatch. Mean and variance are two passes over the row (as the
// reference computes them), the row's pre-norm values kept in `out` between passes.

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> bias: array<f32>;
@group(0) @binding(2) var<storage, read_write> residual: array<f32>;
@group(0) @binding(3) var<storage, read_write> gamma: array<f32>;
@group(0) @binding(4) var<storage, read_write> beta: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<storage, read_write> info: array<u32>;

const WG: u32 = {{ workgroup_size }}u;
const HAS_RESIDUAL: bool = {{ has_residual }};

// reduce_sum (shared/reduce_sum.wgsl) and uniform_row_count (shared/uniform_count.wgsl) are
// appended by the host (wgpu.rs).

@compute @workgroup_size({{ workgroup_size }}, 1, 1)
fn main(
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let rows = uniform_row_count(lid);
    let width = info[1];
    let eps = bitcast<f32>(info[2]);
    let row = wid.x + wid.y * groups.x;
    // Uniform per workgroup, so every invocation takes the same branch around the barriers.
    if row >= rows {
        return;
    }
    let base = row * width;

    var sum = 0.0;
    for (var c = lid; c < width; c += WG) {
        var v = x[base + c] + bias[c];
        if HAS_RESIDUAL {
            v += residual[base + c];
        }
        out[base + c] = v;
        sum += v;
    }
    let mean = reduce_sum(lid, sum) / f32(width);

    var sq = 0.0;
    for (var c = lid; c < width; c += WG) {
        let d = out[base + c] - mean;
        sq += d * d;
    }
    let var_ = reduce_sum(lid, sq) / f32(width);
    let inv = 1.0 / sqrt(var_ + eps);

    for (var c = lid; c < width; c += WG) {
        out[base + c] = (out[base + c] - mean) * inv * gamma[c] + beta[c];
    }
}
