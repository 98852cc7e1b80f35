//! Generated gRPC types and services of the Likeness matcher (`likeness.matcher.v1`).
#![allow(missing_docs, clippy::all, clippy::unwrap_used, clippy::expect_used)]

/// `likeness.matcher.v1`: the face matcher API.
pub mod matcher_v1 {
    tonic::include_proto!("likeness.matcher.v1");
}

/// Encoded file descriptor set, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("matcher_descriptor");
