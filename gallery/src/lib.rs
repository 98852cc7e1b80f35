//! Likeness galleries: per-tenant face templates of enrolled persons, searched exactly or
//! through HNSW, stored in an encrypted write-ahead log and snapshots, and erasable for real.

pub mod assign;
pub mod crypto;
pub mod error;
pub mod gallery;
pub mod hnsw;
pub mod ids;
pub mod index;
pub mod storage;

pub use crypto::MasterKey;
pub use error::{GalleryError, Result};
pub use gallery::{Galleries, GalleryConfig, TenantStats};
pub use ids::TenantId;
pub use index::{Candidate, HnswParams};
