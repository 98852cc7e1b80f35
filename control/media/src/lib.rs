//! Media layer of the Likeness control plane.
//!
//! - [`blob`]: the encrypted blob store (AES-256-GCM per blob or, streamed, per 64 KiB chunk, a
//!   random 256-bit data key per tenant wrapped by the master key, atomic durable writes,
//!   erasure).
//! - [`probe`]: uploads spooled to temporary files ([`UploadFile`]); what an upload is (image or video by its magic bytes), its limits, size after
//!   EXIF orientation, sha256, perceptual hash and JPEG thumbnail.
//! - [`phash`]: the 64-bit DCT perceptual hash and its Hamming distance.
//! - [`matcher`]: the gRPC client of the face matcher (Suggest, Enroll, Remove*, health) with
//!   timeouts and errors that say whether to retry.

// Lets `testing` (also compiled into integration tests by path) name this crate.
extern crate self as likeness_control_media;

pub mod blob;
pub mod error;
pub mod matcher;
pub mod phash;
pub mod probe;
#[cfg(feature = "testing")]
pub mod testing;

pub use blob::{BlobStore, MasterKey};
pub use error::{MediaError, Result};
pub use matcher::{MatcherClient, MatcherConfig};
pub use probe::{MediaKind, Probe, ProbeLimits, UploadFile, UploadWriter, probe, probe_file};
