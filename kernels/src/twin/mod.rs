//! CPU twins of the CUDA kernels: always compiled, the reference every device result is
//! tested against, and the fallback when no GPU is present. Each follows the arithmetic of
//! the `models/` stage it mirrors, in the same order, so that twin and CPU pipeline agree
//! exactly (tested on real images in `tests/twins.rs`).

pub mod detect;
pub mod graph;
pub mod letterbox;
pub mod pipeline;
pub mod search;
pub mod warp;
