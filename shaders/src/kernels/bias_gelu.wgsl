// out = gelu(x + bias), GELU with the exact erf form: v * 0.5 * (1 + erf(v / sqrt(2))).
//
// x, out: [rows, width] row-major; bias: [width].
// info: [n = rows * width, width]. Grid-stride loop, so any n fits in one dispatch.

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> bias: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read_write> info: array<u32>;

const WG: u32 = {{ workgroup_size }}u;

// erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7); WGSL has no erf builtin.
fn erf_approx(v: f32) -> f32 {
    let a = abs(v);
    let t = 1.0 / (1.0 + 0.3275911 * a);
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    let y = 1.0 - poly * exp(-a * a);
    return select(y, -y, v < 0.0);
}

@compute @workgroup_size({{ workgroup_size }}, 1, 1)
fn main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let n = info[0];
    let width = info[1];
    let stride = groups.x * WG;
    for (var i = gid.x; i < n; i += stride) {
        let v = x[i] + bias[i % width];
        out[i] = 0.5 * v * (1.0 + erf_approx(v * 0.70710678118654752));
    }
}
