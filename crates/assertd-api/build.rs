//! Generates the assertd.v1 gRPC code with a vendored `protoc`, so a fresh
//! machine needs nothing but cargo.
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time, not baked in with env!(): a build script compiled
    // for another checkout sharing the target directory (CI clones anew
    // each run) must still read this checkout's protos.
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto").canonicalize()?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let files = ["assertd/v1/types.proto", "assertd/v1/verification.proto", "assertd/v1/credentials.proto"].map(|f| root.join(f));
    // Relative to this package, so a checkout elsewhere sharing the target
    // directory (cargo hashes path packages by relative path) reruns this
    // script for its own files.
    for f in ["types", "verification", "credentials"] {
        println!("cargo:rerun-if-changed=../../proto/assertd/v1/{f}.proto");
    }
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure().file_descriptor_set_path(out.join("assertd_descriptor.bin")).compile_with_config(
        config,
        &files,
        &[root],
    )?;
    Ok(())
}
