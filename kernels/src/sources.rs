//! The CUDA C sources, embedded in the binary and compiled at run time with NVRTC.

/// One `.cu` file and the kernels it defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelSource {
    /// File name under `kernels/src/cuda/`.
    pub name: &'static str,
    /// The CUDA C text.
    pub code: &'static str,
    /// The `extern "C"` kernels it defines.
    pub functions: &'static [&'static str],
}

/// Batched letterbox (resample + channel order + normalisation + padding).
pub const LETTERBOX: KernelSource = KernelSource {
    name: "letterbox.cu",
    code: include_str!("cuda/letterbox.cu"),
    functions: &["letterbox_vert", "letterbox_horiz"],
};

/// YuNet output decoding and per-image NMS.
pub const YUNET: KernelSource = KernelSource {
    name: "yunet.cu",
    code: include_str!("cuda/yunet.cu"),
    functions: &["yunet_decode", "nms_per_image"],
};

/// Warp-affine alignment into 112x112 crops.
pub const WARP: KernelSource = KernelSource {
    name: "warp.cu",
    code: include_str!("cuda/warp.cu"),
    functions: &["warp_faces"],
};

/// L2 normalisation of embedding rows.
pub const L2NORM: KernelSource = KernelSource {
    name: "l2norm.cu",
    code: include_str!("cuda/l2norm.cu"),
    functions: &["l2_normalize_rows"],
};

/// Top-k per row of a score matrix.
pub const TOPK: KernelSource = KernelSource {
    name: "topk.cu",
    code: include_str!("cuda/topk.cu"),
    functions: &["topk_rows"],
};

/// The steps of our graph executor (convolution, pooling, resize, add, activations,
/// transpose).
pub const GRAPH: KernelSource = KernelSource {
    name: "graph.cu",
    code: include_str!("cuda/graph.cu"),
    functions: &[
        "conv2d",
        "max_pool",
        "resize_nearest",
        "add_act",
        "act",
        "sigmoid",
        "transpose",
        "bias_act",
    ],
};

/// Every source.
pub const ALL: [KernelSource; 6] = [LETTERBOX, YUNET, WARP, L2NORM, TOPK, GRAPH];
