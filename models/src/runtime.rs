//! Loading the ONNX Runtime shared library (the `ort` crate's load-dynamic mode) and sessions.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;

use crate::error::{Error, Result};

static ENV: OnceLock<std::result::Result<(PathBuf, ort::environment::Environment), String>> =
    OnceLock::new();

/// Candidate locations of `libonnxruntime.so`, in the order they are tried when no path is
/// configured: `ORT_DYLIB_PATH`, then `.cache/onnxruntime/libonnxruntime.so` in the current
/// directory or any parent (where `deploy/fetch-onnxruntime.sh` puts it), then next to the
/// executable.
pub fn library_candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        out.push(PathBuf::from(p));
    }
    let rel = Path::new(".cache/onnxruntime/libonnxruntime.so");
    if let Ok(cwd) = std::env::current_dir() {
        for dir in cwd.ancestors() {
            out.push(dir.join(rel));
        }
    }
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1) {
            out.push(dir.join(rel));
            out.push(dir.join("libonnxruntime.so"));
        }
    }
    out
}

/// Loads ONNX Runtime once per process, from `explicit` if given, else from the first
/// existing candidate. Returns the path it was loaded from.
pub fn init(explicit: Option<&Path>) -> Result<PathBuf> {
    let res = ENV.get_or_init(|| {
        let path = match explicit {
            Some(p) => p.to_owned(),
            None => library_candidates()
                .into_iter()
                .find(|p| p.is_file())
                .ok_or_else(|| {
                    "libonnxruntime.so not found: run deploy/fetch-onnxruntime.sh or set ORT_DYLIB_PATH (or runtime.onnxruntime_lib in the config)".to_owned()
                })?,
        };
        if !path.is_file() {
            return Err(format!(
                "{} does not exist: run deploy/fetch-onnxruntime.sh or fix ORT_DYLIB_PATH",
                path.display()
            ));
        }
        let env = ort::init_from(&path)
            .map_err(|e| format!("cannot load {}: {e}", path.display()))?
            .with_name("likeness")
            .build()
            .map_err(|e| format!("cannot create environment from {}: {e}", path.display()))?;
        Ok((path, env))
    });
    match res {
        Ok((p, _)) => Ok(p.clone()),
        Err(e) => Err(Error::Runtime(e.clone())),
    }
}

/// Opens an ONNX session on the CPU with `threads` intra-op threads (not spinning when idle).
pub fn open_session(path: &Path, threads: usize) -> Result<Session> {
    let stage = "session";
    let env = match ENV.get() {
        Some(Ok((_, env))) => env,
        _ => return Err(Error::Runtime("ONNX Runtime is not initialised".into())),
    };
    let mut builder = Session::builder(env)
        .map_err(|e| Error::inference(stage, e))?
        .with_optimization_level(GraphOptimizationLevel::Level3)
        .map_err(|e| Error::inference(stage, e))?
        // Idle intra-op threads sleep instead of spinning: on a 2-core machine the spinning
        // threads took the cores from view preparation, decoding and the other session
        // (`bench/speed.sh`: half the CPU time per image, see README "Speed").
        .with_intra_op_spinning(false)
        .map_err(|e| Error::inference(stage, e))?
        .with_intra_threads(threads.max(1))
        .map_err(|e| Error::inference(stage, e))?
        .with_inter_threads(1)
        .map_err(|e| Error::inference(stage, e))?;
    builder
        .commit_from_file(path)
        .map_err(|e| Error::Runtime(format!("cannot open model {}: {e}", path.display())))
}
