//! Sets `cfg(mlr_gemm)` on x86-64, as shaders/build.rs does, so that the kernels compile in.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(mlr_gemm)");
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("x86_64") {
        println!("cargo::rustc-cfg=mlr_gemm");
    }
}
