//! Generates the shop services with the `protoc` that `protoc-bin-vendored`
//! ships, so building needs no system `protoc` (as `testkit/build.rs` does).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Handed to prost-build directly rather than through `PROTOC`: setting an
    // environment variable is `unsafe` in edition 2024 and the workspace
    // denies `unsafe_code`.
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure().compile_with_config(
        config,
        &["proto/shop.proto"],
        &["proto"],
    )?;
    Ok(())
}
