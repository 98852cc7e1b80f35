//! Likeness kernels: the CUDA C kernels of the face pipeline, compiled at run time with NVRTC
//! (through cudarc with dynamic loading, so a binary without CUDA still builds and runs), and
//! a CPU twin of every kernel that is always compiled and is the reference the device result
//! is tested against.
//!
//! - [`sources`]: the `.cu` files (batched letterbox, YuNet decoding + NMS, warp-affine
//!   alignment, L2 normalisation, top-k).
//! - [`twin`]: the CPU twins (same arithmetic as `models/`, tested against it on real images).
//! - [`probe`]: finds libnvrtc / libcuda and the devices without ever letting cudarc panic.
//! - [`nvrtc`]: compilation with a PTX cache.
//! - [`gpu`]: the kernels on a device (cudarc + cuBLAS for the gallery GEMM).
//! - [`graph`]: our own executor of the ONNX detector and embedder graphs (plan + CPU twin).
//! - [`gpu_graph`]: the graph executor's plans on a device (`graph.cu`).
//! - [`device`]: the pipeline on a device, pixels to embeddings, buffers allocated at start.
//! - [`backend`]: the `auto | cpu | cuda` choice and the reason for it.

pub mod backend;
pub mod device;
pub mod error;
pub mod gpu;
pub mod gpu_graph;
pub mod graph;
pub mod nvrtc;
pub mod probe;
pub mod sources;
pub mod twin;

pub use backend::{Backend, BackendChoice, choose};
pub use error::{Error, Result};
