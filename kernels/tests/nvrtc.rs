#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Every CUDA source compiles with NVRTC to PTX that defines its kernels; the PTX cache is
//! keyed by source, options and NVRTC version. Runs wherever libnvrtc loads (CI: the PyPI
//! wheel fetched by deploy/fetch-nvrtc.sh, named by LIKENESS_NVRTC_PATH); no GPU needed.

use likeness_kernels::nvrtc::{Compiler, options};
use likeness_kernels::probe::{self, NVRTC_PATH_ENV};
use likeness_kernels::sources;

/// The compiler, or None (with a message) where no NVRTC is installed. When
/// LIKENESS_NVRTC_PATH is set, NVRTC must load.
fn compiler(cache: Option<std::path::PathBuf>) -> Option<Compiler> {
    match Compiler::new(cache) {
        Ok(c) => Some(c),
        Err(e) if std::env::var_os(NVRTC_PATH_ENV).is_none() => {
            eprintln!("no NVRTC ({e}): NVRTC test skipped (deploy/fetch-nvrtc.sh provides one)");
            None
        }
        Err(e) => panic!("{NVRTC_PATH_ENV} is set but NVRTC does not load: {e}"),
    }
}

#[test]
fn every_source_compiles_for_turing_and_hopper() {
    let Some(c) = compiler(None) else { return };
    let v = probe::nvrtc().unwrap();
    eprintln!("NVRTC {}.{} from {}", v.version.0, v.version.1, v.library);
    assert!(v.version.0 >= 12, "{v:?}");
    for cc in [(7, 5), (9, 0)] {
        for src in sources::ALL {
            let out = c
                .compile(&src, cc)
                .unwrap_or_else(|e| panic!("{} for {cc:?}: {e}", src.name));
            assert!(!out.cached);
            assert!(
                out.ptx.contains(&format!(".target sm_{}{}", cc.0, cc.1)),
                "{}: {}",
                src.name,
                &out.ptx[..out.ptx.len().min(400)]
            );
            for f in src.functions {
                assert!(
                    out.ptx.contains(&format!(".entry {f}(")),
                    "{} lacks kernel {f}",
                    src.name
                );
            }
            // --fmad=false: no fused multiply-add in the kernels that must match their twins
            // bit for bit (yunet.cu calls expf, which uses fma inside).
            if ["warp.cu", "l2norm.cu", "letterbox.cu"].contains(&src.name) {
                assert!(!out.ptx.contains("fma.rn.f32"), "{} has fma", src.name);
            }
        }
    }
}

#[test]
fn ptx_cache_hits_and_is_keyed_by_source_options_and_version() {
    let dir = tempfile::tempdir().unwrap();
    let Some(c) = compiler(Some(dir.path().to_path_buf())) else {
        return;
    };
    let src = sources::TOPK;
    let first = c.compile(&src, (8, 0)).unwrap();
    assert!(!first.cached);
    let file = first.cache_file.clone().unwrap();
    assert!(file.is_file());
    let second = c.compile(&src, (8, 0)).unwrap();
    assert!(second.cached);
    assert_eq!(first.ptx, second.ptx);
    // Other options: another key, another file.
    let other = c.compile(&src, (9, 0)).unwrap();
    assert!(!other.cached);
    assert_ne!(other.cache_file, first.cache_file);
    assert_ne!(
        c.cache_key(&src, &options((8, 0))),
        c.cache_key(&sources::L2NORM, &options((8, 0)))
    );
    assert!(c.cache_key(&src, &options((8, 0))).len() == 64);
    // A damaged cache file is recompiled, not loaded.
    std::fs::write(&file, "garbage").unwrap();
    let again = c.compile(&src, (8, 0)).unwrap();
    assert!(!again.cached);
    assert_eq!(again.ptx, first.ptx);
}

#[test]
fn a_broken_source_reports_the_compiler_log() {
    let Some(c) = compiler(None) else { return };
    let bad = sources::KernelSource {
        name: "broken.cu",
        code: "extern \"C\" __global__ void k(float* x) { x[0] = undefined_name; }",
        functions: &["k"],
    };
    let e = c.compile(&bad, (8, 0)).unwrap_err().to_string();
    assert!(
        e.contains("broken.cu") && e.contains("undefined_name"),
        "{e}"
    );
}
