// Cosine scoring of queries against a corpus matrix with top-k, one workgroup per query.
//
// queries: [nq, width]; corpus: [n, width] (unit rows, so the dot product is the cosine);
// scores: [nq, K]; ids: [nq, K] (i32). info: [nq, n, width].
// Order: higher score first, ties to the lower corpus row; when n < K the tail is f32::MIN (-3.4e38) / -1.
//
// Each invocation scans corpus rows lid, lid + WG, ... and keeps its own best K in a sorted list.
// The lists are then merged in K rounds: every invocation offers its best remaining entry, a
// tree reduction in workgroup memory picks the winner, and the winner's owner moves on.
//
// Mesa's llvmpipe/lavapipe stops a shader invocation's loops after 65,535 iterations in all, so
// the host only launches this kernel when each invocation's share stays well below that
// (`cosine_top_k` in wgpu.rs); larger corpora take the reference path.

@group(0) @binding(0) var<storage, read_write> queries: array<f32>;
@group(0) @binding(1) var<storage, read_write> corpus: array<f32>;
@group(0) @binding(2) var<storage, read_write> scores: array<f32>;
@group(0) @binding(3) var<storage, read_write> ids: array<i32>;
@group(0) @binding(4) var<storage, read_write> info: array<u32>;

const WG: u32 = {{ workgroup_size }}u;
const K: u32 = {{ k }}u;
const NONE: u32 = 0xffffffffu;
// f32::MIN exactly (-3.4028235e38 lies beyond the f32 range, which Tint rejects).
const LOWEST: f32 = -340282346638528859811704183484516925440.0;

var<workgroup> best_score: array<f32, {{ workgroup_size }}>;
var<workgroup> best_row: array<u32, {{ workgroup_size }}>;
var<workgroup> best_owner: array<u32, {{ workgroup_size }}>;

// (score a, row a) ranks before (score b, row b).
fn before(sa: f32, ra: u32, sb: f32, rb: u32) -> bool {
    return sa > sb || (sa == sb && ra < rb);
}

// uniform_row_count (shared/uniform_count.wgsl) is appended by the host (wgpu.rs).

@compute @workgroup_size({{ workgroup_size }}, 1, 1)
fn main(
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let nq = uniform_row_count(lid);
    let n = info[1];
    let width = info[2];
    let query = wid.x + wid.y * groups.x;
    if query >= nq {
        return;
    }

    var top_score: array<f32, {{ k }}>;
    var top_row: array<u32, {{ k }}>;
    for (var i = 0u; i < K; i++) {
        top_score[i] = LOWEST;
        top_row[i] = NONE;
    }
    let qbase = query * width;
    for (var r = lid; r < n; r += WG) {
        // Four products per iteration: fewer loop iterations (see the note on lavapipe above).
        var s = 0.0;
        let cbase = r * width;
        var c = 0u;
        for (; c + 4u <= width; c += 4u) {
            s += queries[qbase + c] * corpus[cbase + c] + queries[qbase + c + 1u] * corpus[cbase + c + 1u]
                + queries[qbase + c + 2u] * corpus[cbase + c + 2u] + queries[qbase + c + 3u] * corpus[cbase + c + 3u];
        }
        for (; c < width; c++) {
            s += queries[qbase + c] * corpus[cbase + c];
        }
        if !before(s, r, top_score[K - 1u], top_row[K - 1u]) {
            continue;
        }
        // Insertion into the sorted list.
        var pos = K - 1u;
        while pos > 0u && before(s, r, top_score[pos - 1u], top_row[pos - 1u]) {
            top_score[pos] = top_score[pos - 1u];
            top_row[pos] = top_row[pos - 1u];
            pos -= 1u;
        }
        top_score[pos] = s;
        top_row[pos] = r;
    }

    var next = 0u;
    for (var round = 0u; round < K; round++) {
        if next < K {
            best_score[lid] = top_score[next];
            best_row[lid] = top_row[next];
        } else {
            best_score[lid] = LOWEST;
            best_row[lid] = NONE;
        }
        best_owner[lid] = lid;
        workgroupBarrier();
        for (var half = WG / 2u; half > 0u; half = half / 2u) {
            if lid < half && before(best_score[lid + half], best_row[lid + half], best_score[lid], best_row[lid]) {
                best_score[lid] = best_score[lid + half];
                best_row[lid] = best_row[lid + half];
                best_owner[lid] = best_owner[lid + half];
            }
            workgroupBarrier();
        }
        let winner = best_owner[0];
        let row = best_row[0];
        if lid == 0u {
            scores[query * K + round] = best_score[0];
            ids[query * K + round] = select(i32(row), -1, row == NONE);
        }
        if lid == winner && row != NONE {
            next += 1u;
        }
        workgroupBarrier();
    }
}
