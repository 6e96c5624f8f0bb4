// out = x · w (+ bias): the encoder's linear layers, every token of the batch as one row.
//
// x: [rows, k] row-major, read as vec4 (k is a multiple of 4); w: [k, n] row-major, read as vec4
// (n is a multiple of 4); bias: [n] as vec4 (read only when HAS_BIAS); out: [rows, n] as vec4.
// info: [rows, k / 4, n / 4].
//
// One invocation computes a ROWS × 4 block of out in registers, with no workgroup memory and no
// barriers: on the software adapters this runs on (llvmpipe, SwiftShader), invocations are SIMD
// lanes of CPU threads, workgroup barriers are costly, and the CPU's caches already do what a
// workgroup tile would. Neighbouring invocations take neighbouring column blocks, so a
// workgroup's loads of one row of w are contiguous and its loads of x are the same address.

@group(0) @binding(0) var<storage, read_write> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> w: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> bias: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> info: array<u32>;

const WG: u32 = {{ workgroup_size }}u;
const HAS_BIAS: bool = {{ has_bias }};

// acc + x[p..p + 4] · w[p..p + 4, col..col + 4]
fn mac4(acc: vec4<f32>, xv: vec4<f32>, w0: vec4<f32>, w1: vec4<f32>, w2: vec4<f32>, w3: vec4<f32>) -> vec4<f32> {
    return fma(vec4<f32>(xv.w), w3, fma(vec4<f32>(xv.z), w2, fma(vec4<f32>(xv.y), w1, fma(vec4<f32>(xv.x), w0, acc))));
}

@compute @workgroup_size({{ workgroup_size }}, 1, 1)
fn main(
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let rows = info[0];
    let k4 = info[1];
    let n4 = info[2];
    let t = (wid.x + wid.y * groups.x) * WG + lid;
    let col = t % n4;
    let r0 = (t / n4) * 4u;
    if r0 >= rows {
        return;
    }
    // Rows past the end repeat the last row (their results are not written).
    let x0 = r0 * k4;
    let x1 = min(r0 + 1u, rows - 1u) * k4;
    let x2 = min(r0 + 2u, rows - 1u) * k4;
    let x3 = min(r0 + 3u, rows - 1u) * k4;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var p = 0u; p < k4; p++) {
        let wi = 4u * p * n4 + col;
        let w0 = w[wi];
        let w1 = w[wi + n4];
        let w2 = w[wi + 2u * n4];
        let w3 = w[wi + 3u * n4];
        acc0 = mac4(acc0, x[x0 + p], w0, w1, w2, w3);
        acc1 = mac4(acc1, x[x1 + p], w0, w1, w2, w3);
        acc2 = mac4(acc2, x[x2 + p], w0, w1, w2, w3);
        acc3 = mac4(acc3, x[x3 + p], w0, w1, w2, w3);
    }
    var b = vec4<f32>(0.0);
    if HAS_BIAS {
        b = bias[col];
    }
    out[r0 * n4 + col] = acc0 + b;
    if r0 + 1u < rows {
        out[(r0 + 1u) * n4 + col] = acc1 + b;
    }
    if r0 + 2u < rows {
        out[(r0 + 2u) * n4 + col] = acc2 + b;
    }
    if r0 + 3u < rows {
        out[(r0 + 3u) * n4 + col] = acc3 + b;
    }
}
