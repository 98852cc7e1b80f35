//! The one error type of the domain crate.

/// Errors of the domain layer: always name the field or value at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A string is not one of the values of an enum.
    #[error("unknown {kind} {value:?}; valid values: {valid}")]
    UnknownValue {
        /// What kind of value was parsed (e.g. "role").
        kind: &'static str,
        /// The rejected input.
        value: String,
        /// The valid values, comma separated.
        valid: String,
    },
    /// A field has an invalid value.
    #[error("{field}: {message}")]
    Invalid {
        /// The field at fault (dotted path for nested fields, e.g. `channels[2]`).
        field: String,
        /// What is wrong with it.
        message: String,
    },
}

impl Error {
    /// Shorthand for [`Error::Invalid`].
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The field at fault, if this is a field error.
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::Invalid { field, .. } => Some(field),
            Error::UnknownValue { .. } => None,
        }
    }
}
