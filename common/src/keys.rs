//! The master key: 32 bytes that wrap the data keys of the storage layers (the matcher's
//! galleries, the control plane's blob store). Read from 64 hex characters or a key file
//! holding them, generated from the operating system's random source, zeroized on drop and
//! never printed. The cipher operations stay with the layers that use the key.

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

/// Why a master key cannot be read or made. The messages name the problem; callers prefix
/// them with "master key: ".
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Not hexadecimal.
    #[error("must be 64 hex characters (32 bytes): {0}")]
    NotHex(String),
    /// Hexadecimal, but not 32 bytes.
    #[error("must be 64 hex characters (32 bytes), got {0} bytes")]
    WrongLength(usize),
    /// The key file cannot be read.
    #[error("cannot read key file {}: {source}", path.display())]
    Unreadable {
        /// The key file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The key file does not hold a valid key.
    #[error("key file {}: {source}", path.display())]
    InFile {
        /// The key file.
        path: PathBuf,
        /// What is wrong with its content.
        source: Box<KeyError>,
    },
    /// Both a key and a key file are configured.
    #[error("both master_key and master_key_file are set: configure only one")]
    Both,
    /// Neither a key nor a key file is configured.
    #[error("no master key configured: set master_key (64 hex characters) or master_key_file")]
    Missing,
    /// The operating system's random source failed.
    #[error("no randomness: {0}")]
    NoRandomness(String),
}

/// The master key (32 bytes). `Debug` shows `MasterKey(..)`; the bytes are zeroized on drop.
#[derive(Clone)]
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// Parses 64 hex characters (surrounding white space is ignored).
    pub fn from_hex(s: &str) -> Result<Self, KeyError> {
        let bytes =
            Zeroizing::new(hex::decode(s.trim()).map_err(|e| KeyError::NotHex(e.to_string()))?);
        let arr: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::WrongLength(bytes.len()))?;
        Ok(Self(Zeroizing::new(arr)))
    }

    /// Reads a key file holding the key as 64 hex characters.
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|source| {
            KeyError::Unreadable {
                path: path.to_owned(),
                source,
            }
        })?);
        Self::from_hex(&text).map_err(|e| KeyError::InFile {
            path: path.to_owned(),
            source: Box::new(e),
        })
    }

    /// The key from configuration: exactly one of a hex string (blank counts as unset) or a
    /// key file.
    pub fn from_config(hex_key: Option<&str>, key_file: Option<&Path>) -> Result<Self, KeyError> {
        match (hex_key.filter(|s| !s.trim().is_empty()), key_file) {
            (Some(h), None) => Self::from_hex(h),
            (None, Some(p)) => Self::from_file(p),
            (Some(_), Some(_)) => Err(KeyError::Both),
            (None, None) => Err(KeyError::Missing),
        }
    }

    /// A random key (tests, `generate-key`).
    pub fn random() -> Result<Self, KeyError> {
        let mut k = Zeroizing::new([0u8; 32]);
        getrandom::fill(&mut k[..]).map_err(|e| KeyError::NoRandomness(e.to_string()))?;
        Ok(Self(k))
    }

    /// Hex form (for `generate-key` output and key files).
    pub fn to_hex(&self) -> String {
        hex::encode(*self.0)
    }

    /// The raw 32 bytes, for building a cipher.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_debug_hides_the_key() {
        let k = MasterKey::random().unwrap();
        let back = MasterKey::from_hex(&format!("  {}\n", k.to_hex())).unwrap();
        assert_eq!(back.as_bytes(), k.as_bytes());
        assert_eq!(format!("{k:?}"), "MasterKey(..)");
        assert_ne!(MasterKey::random().unwrap().as_bytes(), k.as_bytes());
    }

    #[test]
    fn wrong_length_and_bad_hex_are_named() {
        let e = MasterKey::from_hex("abcd").unwrap_err();
        assert!(matches!(e, KeyError::WrongLength(2)), "{e:?}");
        assert!(e.to_string().contains("got 2 bytes"), "{e}");
        let e = MasterKey::from_hex(&"zz".repeat(32)).unwrap_err();
        assert!(matches!(e, KeyError::NotHex(_)), "{e:?}");
        assert!(e.to_string().contains("64 hex characters"), "{e}");
    }

    #[test]
    fn config_takes_exactly_one_of_key_and_key_file() {
        let k = MasterKey::random().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        std::fs::write(&p, format!("{}\n", k.to_hex())).unwrap();
        let from_file = MasterKey::from_config(None, Some(&p)).unwrap();
        assert_eq!(from_file.as_bytes(), k.as_bytes());
        let from_hex = MasterKey::from_config(Some(&k.to_hex()), None).unwrap();
        assert_eq!(from_hex.as_bytes(), k.as_bytes());

        let e = MasterKey::from_config(Some(&k.to_hex()), Some(&p)).unwrap_err();
        assert!(matches!(e, KeyError::Both), "{e:?}");
        assert!(e.to_string().contains("configure only one"), "{e}");
        let e = MasterKey::from_config(None, None).unwrap_err();
        assert!(matches!(e, KeyError::Missing), "{e:?}");
        let e = MasterKey::from_config(Some("  "), None).unwrap_err();
        assert!(matches!(e, KeyError::Missing), "{e:?}");
    }

    #[test]
    fn key_file_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let e = MasterKey::from_file(&missing).unwrap_err();
        assert!(matches!(e, KeyError::Unreadable { .. }), "{e:?}");
        assert!(e.to_string().contains("missing"), "{e}");

        let short = dir.path().join("short");
        std::fs::write(&short, "abcd").unwrap();
        let e = MasterKey::from_file(&short).unwrap_err().to_string();
        assert!(e.contains("short") && e.contains("got 2 bytes"), "{e}");
    }
}
