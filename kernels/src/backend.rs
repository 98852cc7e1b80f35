//! Which backend the pipeline runs on (`backend.kind` in the matcher configuration), and why: `auto` takes CUDA where a usable device,
//! NVRTC and a CUDA pipeline are present and the CPU otherwise; `cuda` insists and fails
//! with the reason; `cpu` never probes.

use crate::error::{Error, Result};
use crate::probe::{self, CudaProbe};

/// The configured backend (`backend.kind`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// CUDA when usable, else the CPU.
    #[default]
    Auto,
    /// ONNX Runtime on the CPU.
    Cpu,
    /// CUDA, or a start-up error.
    Cuda,
}

impl Backend {
    /// The configuration spelling.
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Cpu => "cpu",
            Self::Cuda => "cuda",
        }
    }
}

/// The backend chosen and the reason, for the one start-up log line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BackendChoice {
    /// `Cpu` or `Cuda` (never `Auto`).
    pub backend: Backend,
    /// Why: the device used, or what is missing.
    pub reason: String,
    /// The probe, when one was run.
    pub probe: Option<CudaProbe>,
}

impl BackendChoice {
    /// `backend=cpu: libcuda.so.1 not found (no NVIDIA driver)`.
    pub fn log_line(&self) -> String {
        format!("backend={}: {}", self.backend.name(), self.reason)
    }
}

/// Chooses the backend. `cuda_pipeline` says whether the caller has a CUDA execution path
/// (the matcher does not yet: with a GPU present, `auto` then stays on the CPU and says so,
/// and `cuda` is refused).
pub fn choose(requested: Backend, cuda_pipeline: bool) -> Result<BackendChoice> {
    choose_with(requested, cuda_pipeline, probe::probe_cuda, || {
        probe::nvrtc().map(|_| ()).map_err(|e| e.to_string())
    })
}

/// [`choose`] with the probes given (for tests).
pub fn choose_with(
    requested: Backend,
    cuda_pipeline: bool,
    probe_cuda: impl FnOnce() -> CudaProbe,
    nvrtc: impl FnOnce() -> std::result::Result<(), String>,
) -> Result<BackendChoice> {
    if requested == Backend::Cpu {
        return Ok(BackendChoice {
            backend: Backend::Cpu,
            reason: "requested by backend.kind".into(),
            probe: None,
        });
    }
    let p = probe_cuda();
    let missing = if !p.usable() {
        Some(p.summary())
    } else if let Err(e) = nvrtc() {
        Some(format!("{} present, but {e}", p.summary()))
    } else if !cuda_pipeline {
        Some(format!(
            "{} present, but the CUDA execution path of the pipeline is not built yet",
            p.summary()
        ))
    } else {
        None
    };
    match (requested, missing) {
        (_, None) => Ok(BackendChoice {
            backend: Backend::Cuda,
            reason: p.summary(),
            probe: Some(p),
        }),
        (Backend::Cuda, Some(why)) => Err(Error::LibraryUnavailable(format!(
            "backend.kind = \"cuda\" but CUDA is not usable: {why}; set it to \"auto\" or \"cpu\""
        ))),
        (_, Some(why)) => Ok(BackendChoice {
            backend: Backend::Cpu,
            reason: why,
            probe: Some(p),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::Device;

    fn gpu() -> CudaProbe {
        CudaProbe {
            devices: vec![Device {
                ordinal: 0,
                name: "NVIDIA H100".into(),
                compute_capability: (9, 0),
                total_memory: 80 << 30,
            }],
            unavailable: None,
        }
    }

    fn none() -> CudaProbe {
        CudaProbe {
            devices: vec![],
            unavailable: Some("libcuda.so.1 not found (no NVIDIA driver)".into()),
        }
    }

    #[test]
    fn choices_and_reasons() {
        let c = choose_with(Backend::Auto, true, none, || Ok(())).unwrap();
        assert_eq!(
            c.log_line(),
            "backend=cpu: libcuda.so.1 not found (no NVIDIA driver)"
        );
        let c = choose_with(Backend::Auto, true, gpu, || Ok(())).unwrap();
        assert_eq!(c.backend, Backend::Cuda);
        assert!(
            c.log_line()
                .starts_with("backend=cuda: NVIDIA H100 (compute 9.0, 80.0 GiB)")
        );
        let c = choose_with(Backend::Auto, false, gpu, || Ok(())).unwrap();
        assert_eq!(c.backend, Backend::Cpu);
        assert!(c.reason.contains("not built yet"), "{}", c.reason);
        let c = choose_with(
            Backend::Auto,
            true,
            gpu,
            || Err("libnvrtc not found".into()),
        )
        .unwrap();
        assert_eq!(c.backend, Backend::Cpu);
        assert!(c.reason.contains("libnvrtc not found"));
        let e = choose_with(Backend::Cuda, true, none, || Ok(())).unwrap_err();
        assert!(e.to_string().contains("libcuda.so.1 not found"), "{e}");
        let c = choose_with(Backend::Cpu, true, || unreachable!(), || unreachable!()).unwrap();
        assert_eq!(c.log_line(), "backend=cpu: requested by backend.kind");
    }
}
