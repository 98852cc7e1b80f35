//! Logging setup shared by the binaries: a `tracing` subscriber writing to stderr.

use serde::{Deserialize, Serialize};
use tracing_subscriber::EnvFilter;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The filter to use: `filter` when it parses as a `tracing` filter (e.g. `info` or
/// `likeness_matcher=debug`), else `info`.
pub fn filter_or_info(filter: &str) -> EnvFilter {
    EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Installs the global subscriber: events passing `filter` (see [`filter_or_info`]) go to
/// stderr as `format`. Returns `false` (and changes nothing) when a global subscriber is
/// already installed.
pub fn init(filter: &str, format: LogFormat) -> bool {
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter_or_info(filter))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => b.json().try_init().is_ok(),
        LogFormat::Text => b.try_init().is_ok(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_filter_falls_back_to_info() {
        assert_eq!(filter_or_info("not a [filter").to_string(), "info");
        assert_eq!(
            filter_or_info("likeness=debug").to_string(),
            "likeness=debug"
        );
    }

    #[test]
    fn formats_read_as_lowercase_words() {
        #[derive(Deserialize)]
        struct L {
            format: LogFormat,
        }
        let l: L =
            figment::Figment::from(figment::providers::Serialized::default("format", "json"))
                .extract()
                .unwrap();
        assert_eq!(l.format, LogFormat::Json);
    }
}
