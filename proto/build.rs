//! Generates the tonic/prost code for the matcher API with the vendored protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    unsafe_set_protoc(&protoc);
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("matcher_descriptor.bin"))
        .compile_protos(&["likeness/matcher/v1/matcher.proto"], &["."])?;
    println!("cargo:rerun-if-changed=likeness/matcher/v1/matcher.proto");
    Ok(())
}

#[allow(unsafe_code)]
fn unsafe_set_protoc(path: &std::path::Path) {
    // SAFETY: the build script has no other threads.
    unsafe { std::env::set_var("PROTOC", path) };
}
