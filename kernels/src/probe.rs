//! Probing for CUDA before any cudarc call: cudarc (dynamic loading) panics at its first use
//! when a library is missing, so every entry point of this crate checks here first that the
//! library loads under one of the names cudarc will try.
//!
//! `LIKENESS_NVRTC_PATH` (a `libnvrtc.so.*` file or the directory holding it, as
//! `deploy/fetch-nvrtc.sh` prints) is loaded by full path and kept loaded, so that cudarc's
//! later `dlopen` by soname finds it without `LD_LIBRARY_PATH`.
// Loading a shared library runs its initialisers and calling into it is FFI: both are
// `unsafe` in Rust. This module is the only place besides `gpu` that does it; the libraries
// are NVIDIA's, looked up under their documented names.
#![allow(unsafe_code)]

use std::ffi::c_int;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// The environment variable naming libnvrtc (file or directory).
pub const NVRTC_PATH_ENV: &str = "LIKENESS_NVRTC_PATH";

/// A loaded NVRTC: where it came from and its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NvrtcInfo {
    /// The file or soname it was loaded from.
    pub library: String,
    /// `(major, minor)` as `nvrtcVersion` reports.
    pub version: (i32, i32),
}

static NVRTC: OnceLock<std::result::Result<(NvrtcInfo, libloading::Library), String>> =
    OnceLock::new();

fn candidates(lib: &str) -> Vec<String> {
    cudarc::get_lib_name_candidates(lib)
}

/// The first of cudarc's candidate names for `lib` that loads, if any.
fn loadable_candidate(lib: &str) -> Option<String> {
    candidates(lib).into_iter().find(|name| {
        // SAFETY: loads an NVIDIA library by one of its documented names; it is dropped
        // (dlclose) at once, the handle that cudarc keeps is its own.
        unsafe { libloading::Library::new(name) }.is_ok()
    })
}

fn nvrtc_file(path: &Path) -> Option<PathBuf> {
    if path.is_file() {
        return Some(path.to_path_buf());
    }
    ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"]
        .iter()
        .map(|n| path.join(n))
        .find(|p| p.is_file())
}

fn load_nvrtc() -> std::result::Result<(NvrtcInfo, libloading::Library), String> {
    let explicit = std::env::var_os(NVRTC_PATH_ENV).filter(|v| !v.is_empty());
    let (library, lib) = match explicit {
        Some(p) => {
            let p = PathBuf::from(p);
            let file = nvrtc_file(&p).ok_or_else(|| {
                format!(
                    "{NVRTC_PATH_ENV}={} holds no libnvrtc.so.13/.12 (run deploy/fetch-nvrtc.sh)",
                    p.display()
                )
            })?;
            // SAFETY: as above; the handle is kept for the life of the process.
            let lib = unsafe { libloading::Library::new(&file) }
                .map_err(|e| format!("{}: {e}", file.display()))?;
            (file.display().to_string(), lib)
        }
        None => {
            let name = loadable_candidate("nvrtc").ok_or_else(|| {
                format!(
                    "libnvrtc not found (set {NVRTC_PATH_ENV} or LD_LIBRARY_PATH; tried {:?})",
                    candidates("nvrtc")
                )
            })?;
            // SAFETY: as above.
            let lib =
                unsafe { libloading::Library::new(&name) }.map_err(|e| format!("{name}: {e}"))?;
            (name, lib)
        }
    };
    // cudarc opens its own handle by soname: that must resolve (to the library just loaded).
    if loadable_candidate("nvrtc").is_none() {
        return Err(format!(
            "{library} loaded, but under none of the names cudarc opens ({:?})",
            candidates("nvrtc")
        ));
    }
    type VersionFn = unsafe extern "C" fn(*mut c_int, *mut c_int) -> c_int;
    let (mut major, mut minor) = (0 as c_int, 0 as c_int);
    // SAFETY: `nvrtcVersion(int*, int*)` is NVRTC's documented C signature; both pointers are
    // valid for the call.
    let rc = unsafe {
        let f = lib
            .get::<VersionFn>(b"nvrtcVersion\0")
            .map_err(|e| format!("{library}: no nvrtcVersion: {e}"))?;
        f(&mut major, &mut minor)
    };
    if rc != 0 {
        return Err(format!("{library}: nvrtcVersion failed with code {rc}"));
    }
    Ok((
        NvrtcInfo {
            library,
            version: (major, minor),
        },
        lib,
    ))
}

/// Loads NVRTC once per process (see the module docs); the error says what was tried.
pub fn nvrtc() -> Result<NvrtcInfo> {
    match NVRTC.get_or_init(load_nvrtc) {
        Ok((info, _)) => Ok(info.clone()),
        Err(m) => Err(Error::LibraryUnavailable(m.clone())),
    }
}

/// One CUDA device.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Device {
    /// Ordinal.
    pub ordinal: i32,
    /// Name as the driver reports it.
    pub name: String,
    /// Compute capability `(major, minor)`.
    pub compute_capability: (i32, i32),
    /// Total device memory in bytes.
    pub total_memory: usize,
}

/// What the machine offers for the CUDA backend.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CudaProbe {
    /// The devices (empty when none is usable).
    pub devices: Vec<Device>,
    /// Why there is no usable device, when there is none.
    pub unavailable: Option<String>,
}

impl CudaProbe {
    /// Whether a device can be used.
    pub fn usable(&self) -> bool {
        self.unavailable.is_none() && !self.devices.is_empty()
    }

    /// One line for the start-up log: the device used, or why there is none.
    pub fn summary(&self) -> String {
        match (&self.unavailable, self.devices.first()) {
            (None, Some(d)) => format!(
                "{} (compute {}.{}, {:.1} GiB){}",
                d.name,
                d.compute_capability.0,
                d.compute_capability.1,
                d.total_memory as f64 / f64::from(1u32 << 30),
                if self.devices.len() > 1 {
                    format!(", {} devices", self.devices.len())
                } else {
                    String::new()
                }
            ),
            (Some(why), _) => why.clone(),
            (None, None) => "no CUDA device".into(),
        }
    }
}

fn driver_err(e: cudarc::driver::DriverError) -> String {
    format!("{e:?}")
}

/// Oldest compute capability the kernels are built for.
pub const MIN_COMPUTE_CAPABILITY: (i32, i32) = (7, 5);

/// Looks for libcuda and the devices it offers. Never panics: a missing library, a driver
/// that fails to initialise or no device all end up in `unavailable`.
pub fn probe_cuda() -> CudaProbe {
    let none = |why: String| CudaProbe {
        devices: Vec::new(),
        unavailable: Some(why),
    };
    if loadable_candidate("cuda").is_none() {
        return none("libcuda.so.1 not found (no NVIDIA driver)".into());
    }
    use cudarc::driver::result as drv;
    use cudarc::driver::sys::CUdevice_attribute as A;
    if let Err(e) = drv::init() {
        return none(format!(
            "CUDA driver failed to initialise: {}",
            driver_err(e)
        ));
    }
    let count = match drv::device::get_count() {
        Ok(n) => n,
        Err(e) => return none(format!("cuDeviceGetCount failed: {}", driver_err(e))),
    };
    if count == 0 {
        return none("the CUDA driver reports no device".into());
    }
    let mut devices = Vec::new();
    for ordinal in 0..count {
        let info = (|| -> std::result::Result<Device, String> {
            let dev = drv::device::get(ordinal).map_err(driver_err)?;
            let name = drv::device::get_name(dev).map_err(driver_err)?;
            // SAFETY: `dev` is a valid device handle from cuDeviceGet on an initialised driver.
            let (major, minor, total_memory) = unsafe {
                (
                    drv::device::get_attribute(
                        dev,
                        A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
                    )
                    .map_err(driver_err)?,
                    drv::device::get_attribute(
                        dev,
                        A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
                    )
                    .map_err(driver_err)?,
                    drv::device::total_mem(dev).map_err(driver_err)?,
                )
            };
            Ok(Device {
                ordinal,
                name,
                compute_capability: (major, minor),
                total_memory,
            })
        })();
        match info {
            Ok(d) => devices.push(d),
            Err(e) => return none(format!("CUDA device {ordinal}: {e}")),
        }
    }
    devices.retain(|d| d.compute_capability >= MIN_COMPUTE_CAPABILITY);
    if devices.is_empty() {
        return none(format!(
            "no CUDA device of compute capability {}.{} or newer",
            MIN_COMPUTE_CAPABILITY.0, MIN_COMPUTE_CAPABILITY.1
        ));
    }
    CudaProbe {
        devices,
        unavailable: None,
    }
}

/// Whether the CUDA driver library loads at all (cheap; no driver initialisation).
pub fn libcuda_present() -> bool {
    loadable_candidate("cuda").is_some()
}

/// Whether a CUDA library (`"cuda"`, `"nvrtc"`, `"cublas"`, ...) loads under one of the
/// names cudarc tries.
pub fn library_loads(lib: &str) -> bool {
    loadable_candidate(lib).is_some()
}
