//! Ids that name files or directories (tenant ids, blob ids) are restricted to a safe
//! alphabet, so that no id can escape its directory (`..`, `/`) or surprise a file system.

/// The longest safe id, in characters.
pub const SAFE_ID_MAX_LEN: usize = 64;

/// Why an id is not safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Empty or longer than [`SAFE_ID_MAX_LEN`].
    #[error("must be 1 to 64 characters")]
    Length,
    /// Holds a character outside `[A-Za-z0-9_-]` (the first such character).
    #[error("only letters, digits, '-' and '_' are allowed, not {0:?}")]
    Character(char),
}

impl IdError {
    /// The rule the id breaks, without the offending character.
    pub fn rule(&self) -> &'static str {
        match self {
            Self::Length => "must be 1 to 64 characters",
            Self::Character(_) => "only letters, digits, '-' and '_' are allowed",
        }
    }
}

/// Checks the safe-id rule: 1-64 characters of `[A-Za-z0-9_-]`.
pub fn check_safe_id(s: &str) -> Result<(), IdError> {
    if s.is_empty() || s.len() > SAFE_ID_MAX_LEN {
        return Err(IdError::Length);
    }
    match s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        Some(c) => Err(IdError::Character(c)),
        None => Ok(()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn safe_ids_pass() {
        for ok in ["a", "acme-01_X", &"x".repeat(64)] {
            check_safe_id(ok).unwrap();
        }
    }

    #[test]
    fn length_is_checked() {
        assert_eq!(check_safe_id(""), Err(IdError::Length));
        assert_eq!(check_safe_id(&"x".repeat(65)), Err(IdError::Length));
    }

    #[test]
    fn bad_characters_are_named() {
        for (bad, c) in [("../x", '.'), ("a/b", '/'), ("a b", ' '), ("é", 'é')] {
            let e = check_safe_id(bad).unwrap_err();
            assert_eq!(e, IdError::Character(c), "{bad:?}");
            let msg = e.to_string();
            assert!(msg.contains(&format!("{c:?}")), "{msg}");
            assert!(msg.starts_with(e.rule()), "{msg}");
        }
    }
}
