//! The error type of the kernels layer.

/// Errors of the kernels layer: bad arguments to a kernel or its twin, a missing CUDA library,
/// NVRTC compilation and CUDA driver failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A kernel or twin was called with arguments that do not fit together.
    #[error("{kernel}: {message}")]
    InvalidArgument {
        /// The kernel (or twin) that refused the call.
        kernel: &'static str,
        /// What is wrong.
        message: String,
    },
    /// An ONNX graph could not be read or planned by our executor; the message names the node.
    #[error("graph {model}: {message}")]
    Graph {
        /// The model (its path).
        model: String,
        /// What is wrong, with the node's operator and name where there is one.
        message: String,
    },
    /// A CUDA library could not be loaded; the message names it and where it was looked for.
    #[error("CUDA library unavailable: {0}")]
    LibraryUnavailable(String),
    /// NVRTC refused a kernel source; the message carries its log.
    #[error("NVRTC failed to compile {source_name}: {log}")]
    Compile {
        /// Which `.cu` file.
        source_name: String,
        /// The compiler's log.
        log: String,
    },
    /// The PTX cache could not be read or written.
    #[error("PTX cache {path}: {message}")]
    Cache {
        /// The cache file or directory.
        path: String,
        /// What failed.
        message: String,
    },
    /// A CUDA driver or cuBLAS call failed (out of memory, launch failure, ...).
    #[error("CUDA {operation}: {message}")]
    Driver {
        /// What was being done.
        operation: &'static str,
        /// The driver's message.
        message: String,
    },
}

impl Error {
    pub(crate) fn invalid(kernel: &'static str, message: impl Into<String>) -> Self {
        Self::InvalidArgument {
            kernel,
            message: message.into(),
        }
    }

    pub(crate) fn driver(operation: &'static str, e: impl std::fmt::Display) -> Self {
        Self::Driver {
            operation,
            message: e.to_string(),
        }
    }
}

/// Result of the kernels layer.
pub type Result<T> = std::result::Result<T, Error>;
