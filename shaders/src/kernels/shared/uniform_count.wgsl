
// ---- shared/uniform_count.wgsl (appended to the one-workgroup-per-row kernels): the row count,
// read through workgroup memory so that the early return on it is uniform control flow (a load
// from a read_write buffer is not uniform for WGSL's analysis, and the kernels have barriers).
var<workgroup> uniform_count: u32;

fn uniform_row_count(lid: u32) -> u32 {
    if lid == 0u {
        uniform_count = info[0];
    }
    return workgroupUniformLoad(&uniform_count);
}
