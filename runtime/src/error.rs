use std::fmt;

/// Why the bytes of an event could not be turned into its Rust type.
///
/// Every variant names the event type and the version that was being read, so
/// that a dead-lettered entry explains itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The entry carries a version this reader has no decoder for: newer than
    /// the current one, or older than the oldest in the `upcast_from` chain.
    #[error(
        "cannot decode `{type_name}` v{version}: this reader knows versions {}",
        Versions(known)
    )]
    UnknownVersion {
        /// Event type name, such as `file.uploaded`.
        type_name: &'static str,
        /// The version found on the wire.
        version: u32,
        /// Every version this reader decodes, ascending.
        known: Vec<u32>,
    },
    /// The payload is not valid JSON, or a field does not match the type.
    #[error("cannot decode `{type_name}` v{version} at `{path}`: {message}")]
    Data {
        /// Event type name, such as `file.uploaded`.
        type_name: &'static str,
        /// The version the payload was read as.
        version: u32,
        /// Path of the failing field (`files[2].size`), `.` for the root.
        path: String,
        /// What serde said about it.
        message: String,
    },
}

impl DecodeError {
    /// Event type name the error is about.
    pub fn type_name(&self) -> &'static str {
        match self {
            DecodeError::UnknownVersion { type_name, .. } | DecodeError::Data { type_name, .. } => {
                type_name
            }
        }
    }

    /// Version of the payload the error is about.
    pub fn version(&self) -> u32 {
        match self {
            DecodeError::UnknownVersion { version, .. } | DecodeError::Data { version, .. } => {
                *version
            }
        }
    }
}

struct Versions<'a>(&'a [u32]);

impl fmt::Display for Versions<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "v{v}")?;
        }
        Ok(())
    }
}
