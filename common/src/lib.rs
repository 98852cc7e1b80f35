//! What the Likeness binaries (the matcher and the control plane) and their storage layers
//! share, written once:
//!
//! - [`config`]: configuration loading with figment (defaults, a TOML file, environment
//!   overrides) whose errors name the key and where its value came from;
//! - [`logging`]: the `tracing` subscriber on stderr, as text or JSON;
//! - [`keys`]: the 32-byte master key (hex, key file, "exactly one of key or key file",
//!   generation), zeroized on drop and never printed;
//! - [`ids`]: the safe-id rule for ids that name files and directories.

pub mod config;
pub mod ids;
pub mod keys;
pub mod logging;

pub use config::ConfigError;
pub use keys::{KeyError, MasterKey};
