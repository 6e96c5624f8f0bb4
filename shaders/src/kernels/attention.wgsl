// Fused multi-head self-attention for short sequences: scores, padding mask, softmax and the
// weighted sum of values in one pass, one invocation per (batch row, head, query position).
//
// q, k, v, out: [batch, seq, hidden] row-major, head h owning columns h*HEAD_DIM..(h+1)*HEAD_DIM
// (the layout the projections produce, so no transposes are needed). mask: [batch, seq], 1 for
// a token and 0 for padding. info: [batch, seq, hidden, heads, bits of scale (f32)].
//
// The softmax is computed online (running max and sum, rescaling the accumulator), so nothing of
// size seq is stored. Padding keys get weight exactly 0, as exp(-1e9) does in the reference; a row
// whose keys are all padding attends to every key with equal weight, as the reference does (its
// scores all round to -1e9).

@group(0) @binding(0) var<storage, read_write> q: array<f32>;
@group(0) @binding(1) var<storage, read_write> k: array<f32>;
@group(0) @binding(2) var<storage, read_write> v: array<f32>;
@group(0) @binding(3) var<storage, read_write> mask: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read_write> info: array<u32>;

const WG: u32 = {{ workgroup_size }}u;
const HEAD_DIM: u32 = {{ head_dim }}u;

@compute @workgroup_size({{ workgroup_size }}, 1, 1)
fn main(
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let batch = info[0];
    let seq = info[1];
    let hidden = info[2];
    let heads = info[3];
    let scale = bitcast<f32>(info[4]);
    let t = (wid.x + wid.y * groups.x) * WG + lid;
    if t >= batch * heads * seq {
        return;
    }
    let i = t % seq;
    let head = (t / seq) % heads;
    let b = t / (seq * heads);
    let col = head * HEAD_DIM;
    let row0 = b * seq;

    var attended = 0u;
    for (var j = 0u; j < seq; j++) {
        attended += u32(mask[row0 + j] != 0.0);
    }
    let use_all = attended == 0u;

    var qi: array<f32, {{ head_dim }}>;
    var acc: array<f32, {{ head_dim }}>;
    let qbase = (row0 + i) * hidden + col;
    for (var d = 0u; d < HEAD_DIM; d++) {
        qi[d] = q[qbase + d] * scale;
        acc[d] = 0.0;
    }
    // f32::MIN written out exactly: a literal beyond the f32 range (such as -3.4028235e38) is a
    // shader-creation error for Tint (Chromium's WGSL compiler), though naga rounds it.
    var running_max = -340282346638528859811704183484516925440.0;
    var total = 0.0;
    for (var j = 0u; j < seq; j++) {
        if !use_all && mask[row0 + j] == 0.0 {
            continue;
        }
        let kbase = (row0 + j) * hidden + col;
        var score = 0.0;
        for (var d = 0u; d < HEAD_DIM; d++) {
            score += qi[d] * k[kbase + d];
        }
        if use_all {
            // The reference's scores are then all -1e9 (f32 cannot hold -1e9 + s for |s| < 32).
            score = 0.0;
        }
        let new_max = max(running_max, score);
        let rescale = exp(running_max - new_max);
        let w = exp(score - new_max);
        total = total * rescale + w;
        for (var d = 0u; d < HEAD_DIM; d++) {
            acc[d] = acc[d] * rescale + w * v[kbase + d];
        }
        running_max = new_max;
    }
    let inv = 1.0 / total;
    for (var d = 0u; d < HEAD_DIM; d++) {
        out[qbase + d] = acc[d] * inv;
    }
}
