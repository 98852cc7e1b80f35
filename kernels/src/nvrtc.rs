//! Run-time compilation of the kernel sources with NVRTC (through cudarc), with an on-disk
//! PTX cache keyed by the sha256 of source, options and NVRTC version.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::probe::{self, NvrtcInfo};
use crate::sources::KernelSource;

/// The environment variable overriding the PTX cache directory.
pub const PTX_CACHE_ENV: &str = "LIKENESS_PTX_CACHE";

/// The PTX cache directory: `LIKENESS_PTX_CACHE`, else `$XDG_CACHE_HOME/likeness/ptx`, else
/// `$HOME/.cache/likeness/ptx`, else `<temp>/likeness-ptx`.
pub fn default_cache_dir() -> PathBuf {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env(PTX_CACHE_ENV)
        .or_else(|| env("XDG_CACHE_HOME").map(|p| p.join("likeness/ptx")))
        .or_else(|| env("HOME").map(|p| p.join(".cache/likeness/ptx")))
        .unwrap_or_else(|| std::env::temp_dir().join("likeness-ptx"))
}

/// NVRTC options for a device of compute capability `cc`: virtual architecture
/// `compute_XY` (the driver JIT-compiles the PTX for the actual GPU) and no fused
/// multiply-add, so that results agree with the CPU twins bit for bit.
pub fn options(cc: (i32, i32)) -> Vec<String> {
    vec![
        format!("--gpu-architecture=compute_{}{}", cc.0, cc.1),
        "--fmad=false".into(),
    ]
}

/// A compiled source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compiled {
    /// The PTX text.
    pub ptx: String,
    /// Whether it came from the cache.
    pub cached: bool,
    /// The cache file (written or read), if the cache is used.
    pub cache_file: Option<PathBuf>,
}

/// NVRTC with a PTX cache.
#[derive(Debug, Clone)]
pub struct Compiler {
    nvrtc: NvrtcInfo,
    cache_dir: Option<PathBuf>,
}

impl Compiler {
    /// Loads NVRTC (see [`probe::nvrtc`]); `cache_dir` None disables the cache.
    pub fn new(cache_dir: Option<PathBuf>) -> Result<Self> {
        Ok(Self {
            nvrtc: probe::nvrtc()?,
            cache_dir,
        })
    }

    /// The NVRTC in use.
    pub fn nvrtc(&self) -> &NvrtcInfo {
        &self.nvrtc
    }

    /// The cache key of a source compiled with `opts`.
    pub fn cache_key(&self, src: &KernelSource, opts: &[String]) -> String {
        let mut h = Sha256::new();
        h.update(src.code.as_bytes());
        for o in opts {
            h.update([0u8]);
            h.update(o.as_bytes());
        }
        h.update(format!("\0nvrtc {}.{}", self.nvrtc.version.0, self.nvrtc.version.1).as_bytes());
        hex::encode(h.finalize())
    }

    /// Compiles `src` for compute capability `cc`, from the cache when it holds it.
    pub fn compile(&self, src: &KernelSource, cc: (i32, i32)) -> Result<Compiled> {
        let opts = options(cc);
        let file = self.cache_dir.as_ref().map(|d| {
            let key = self.cache_key(src, &opts);
            let stem = src.name.trim_end_matches(".cu");
            d.join(format!("{stem}-{}.ptx", &key[..32]))
        });
        if let Some(f) = &file
            && let Ok(ptx) = std::fs::read_to_string(f)
            && ptx.contains(".entry")
        {
            return Ok(Compiled {
                ptx,
                cached: true,
                cache_file: file,
            });
        }
        let ptx = cudarc::nvrtc::compile_ptx_with_opts(
            src.code,
            cudarc::nvrtc::CompileOptions {
                options: opts,
                name: Some(src.name.to_owned()),
                ..Default::default()
            },
        )
        .map_err(|e| Error::Compile {
            source_name: src.name.to_owned(),
            log: match e {
                cudarc::nvrtc::CompileError::CompileError { log, .. } => {
                    log.to_string_lossy().into_owned()
                }
                other => format!("{other:?}"),
            },
        })?
        .to_src();
        if let Some(f) = &file {
            write_atomic(f, &ptx)?;
        }
        Ok(Compiled {
            ptx,
            cached: false,
            cache_file: file,
        })
    }
}

/// Writes through a temporary file and a rename, so a reader never sees half a file.
fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let err = |e: std::io::Error| Error::Cache {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let tmp = path.with_extension(format!("ptx.{}.tmp", std::process::id()));
    std::fs::write(&tmp, text).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}
