//! The one public error type, with kinds a caller can act on.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

/// A boxed lower-level cause (an SDK error, an I/O error). Never holds a secret value.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// A lower-level cause as an [`Error`] holds it: shared, so an error can be cloned and handed
/// to every caller waiting on the same backend call. Never holds a secret value.
pub type SharedError = Arc<dyn StdError + Send + Sync + 'static>;

/// `Result` with [`Error`] as the error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while loading or storing a secret.
///
/// Each variant names the backend and the secret id it concerns (where there is one) and
/// never the secret value: the `Display` and `Debug` of an error are safe to log. Match on the
/// variant to decide what to do; [`Error::is_retryable`] answers the most common question.
///
/// New kinds may be added, so matches need a wildcard arm. Errors are cheap to clone (causes
/// are shared), so one backend failure can be handed to every caller that waited on it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No secret (or no such version of it) exists under this id.
    #[error("{backend}: secret `{id}` not found")]
    NotFound {
        /// The backend that answered.
        backend: &'static str,
        /// The secret id as requested.
        id: String,
        /// The service's own error, when there is one.
        #[source]
        source: Option<SharedError>,
    },

    /// The caller's credentials may not read (or write) this secret, or use its key.
    #[error("{backend}: access denied to secret `{id}`")]
    AccessDenied {
        /// The backend that answered.
        backend: &'static str,
        /// The secret id as requested.
        id: String,
        /// The service's own error.
        #[source]
        source: Option<SharedError>,
    },

    /// The ciphertext could not be opened: tampered, sealed under another key or another
    /// encryption context (for example an envelope copied to another id), or the key is unusable.
    #[error("{backend}: secret `{id}` could not be decrypted")]
    DecryptionFailed {
        /// The backend that answered.
        backend: &'static str,
        /// The secret id as requested.
        id: String,
        /// The cause.
        #[source]
        source: Option<SharedError>,
    },

    /// The service asked us to slow down. Safe to retry later.
    #[error("{backend}: throttled while reading secret `{id}`")]
    Throttled {
        /// The backend that answered.
        backend: &'static str,
        /// The secret id as requested.
        id: String,
        /// The service's own error.
        #[source]
        source: Option<SharedError>,
    },

    /// A failure that may pass: connection refused or reset, timeout, a 5xx answer.
    /// Safe to retry later.
    #[error("{backend}: transient failure for secret `{id}`")]
    Transient {
        /// The backend that answered.
        backend: &'static str,
        /// The secret id as requested.
        id: String,
        /// The transport or service error.
        #[source]
        source: Option<SharedError>,
    },

    /// The id is not a valid secret id; rejected before any call was made.
    #[error("invalid secret id `{id}`: {reason}")]
    InvalidId {
        /// The rejected id (printable: ids are names, not values).
        id: String,
        /// Which rule it broke.
        reason: &'static str,
    },

    /// The configuration (source URL, TOML file, environment) is not valid.
    #[error("invalid configuration: {message}")]
    InvalidConfig {
        /// What is wrong and, where it helps, what is valid.
        message: String,
    },

    /// The stored value is not what the caller asked for: not UTF-8, not JSON, a JSON field
    /// missing. The reason never quotes the value.
    #[error("{backend}: secret `{id}` {reason}")]
    InvalidFormat {
        /// The backend that answered.
        backend: &'static str,
        /// The secret id as requested.
        id: String,
        /// What was expected, without quoting the value.
        reason: String,
    },

    /// The backend cannot do this (a selector it has no notion of, a backend compiled out).
    #[error("{backend}: {operation} is not supported")]
    Unsupported {
        /// The backend asked.
        backend: &'static str,
        /// What was asked of it.
        operation: String,
    },

    /// Anything else, with the backend's own error as the source.
    #[error("{backend}: failed on secret `{id}`")]
    Other {
        /// The backend that answered.
        backend: &'static str,
        /// The secret id as requested.
        id: String,
        /// The underlying error.
        #[source]
        source: Option<SharedError>,
    },
}

/// The coarse class of an [`Error`]: what a caller (or the CLI's exit code) keys off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// See [`Error::NotFound`].
    NotFound,
    /// See [`Error::AccessDenied`].
    AccessDenied,
    /// See [`Error::DecryptionFailed`].
    DecryptionFailed,
    /// See [`Error::Throttled`].
    Throttled,
    /// See [`Error::Transient`].
    Transient,
    /// See [`Error::InvalidId`].
    InvalidId,
    /// See [`Error::InvalidConfig`].
    InvalidConfig,
    /// See [`Error::InvalidFormat`].
    InvalidFormat,
    /// See [`Error::Unsupported`].
    Unsupported,
    /// See [`Error::Other`].
    Other,
}

impl Error {
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound { .. } => ErrorKind::NotFound,
            Self::AccessDenied { .. } => ErrorKind::AccessDenied,
            Self::DecryptionFailed { .. } => ErrorKind::DecryptionFailed,
            Self::Throttled { .. } => ErrorKind::Throttled,
            Self::Transient { .. } => ErrorKind::Transient,
            Self::InvalidId { .. } => ErrorKind::InvalidId,
            Self::InvalidConfig { .. } => ErrorKind::InvalidConfig,
            Self::InvalidFormat { .. } => ErrorKind::InvalidFormat,
            Self::Unsupported { .. } => ErrorKind::Unsupported,
            Self::Other { .. } => ErrorKind::Other,
        }
    }

    /// True when trying again later may succeed (throttling and transient failures).
    /// Caches serve a stale value only for these.
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind(), ErrorKind::Throttled | ErrorKind::Transient)
    }

    /// The error of `kind` for secret `id` at `backend`, with `source` as its cause.
    ///
    /// For the kinds that don't concern one secret's read ([`ErrorKind::InvalidId`],
    /// [`ErrorKind::InvalidConfig`], [`ErrorKind::InvalidFormat`], [`ErrorKind::Unsupported`])
    /// this gives [`Error::Other`]: build those variants directly.
    pub fn from_kind(
        kind: ErrorKind,
        backend: &'static str,
        id: impl Into<String>,
        source: Option<BoxError>,
    ) -> Self {
        let id = id.into();
        let source: Option<SharedError> = source.map(Arc::from);
        match kind {
            ErrorKind::NotFound => Self::NotFound {
                backend,
                id,
                source,
            },
            ErrorKind::AccessDenied => Self::AccessDenied {
                backend,
                id,
                source,
            },
            ErrorKind::DecryptionFailed => Self::DecryptionFailed {
                backend,
                id,
                source,
            },
            ErrorKind::Throttled => Self::Throttled {
                backend,
                id,
                source,
            },
            ErrorKind::Transient => Self::Transient {
                backend,
                id,
                source,
            },
            _ => Self::Other {
                backend,
                id,
                source,
            },
        }
    }

    /// The [`Error::InvalidFormat`] of a value `backend` can't keep: `size` bytes (`what`:
    /// the value, or its sealed envelope) against a limit of `limit`. A `put` checks this
    /// before writing anything, so what it stores a `get` can read back.
    pub fn too_large(
        backend: &'static str,
        id: impl Into<String>,
        what: &str,
        size: usize,
        limit: u64,
    ) -> Self {
        Self::InvalidFormat {
            backend,
            id: id.into(),
            reason: format!(
                "is too large to store: {what} is {size} bytes, {backend}:// keeps at most {limit} bytes"
            ),
        }
    }

    /// An [`Error::InvalidConfig`] with this message.
    pub fn invalid_config(message: impl Into<String>) -> Self {
        Self::InvalidConfig {
            message: message.into(),
        }
    }

    /// Wraps the error and its whole `source()` chain for one-line display:
    /// `outer: cause: root cause`. Safe to print; no error here carries a secret value.
    pub fn display_chain(&self) -> DisplayChain<'_> {
        DisplayChain(self)
    }
}

/// One-line display of an error and its causes; see [`Error::display_chain`].
#[derive(Debug)]
pub struct DisplayChain<'a>(&'a Error);

impl fmt::Display for DisplayChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut last = self.0.to_string();
        let mut cause = self.0.source();
        while let Some(err) = cause {
            let text = err.to_string();
            // SDK errors often repeat their inner error's text; print each message once.
            if !text.is_empty() && !last.contains(&text) {
                write!(f, ": {text}")?;
            }
            last = text;
            cause = err.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_prints_each_cause_once_on_one_line() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let err = Error::Transient {
            backend: "secretsmanager",
            id: "app/db".into(),
            source: Some(Arc::new(io)),
        };
        let line = err.display_chain().to_string();
        assert_eq!(
            line,
            "secretsmanager: transient failure for secret `app/db`: connection refused"
        );
        assert!(err.is_retryable());
        assert_eq!(err.kind(), ErrorKind::Transient);
    }

    #[test]
    fn permanent_kinds_are_not_retryable() {
        let err = Error::NotFound {
            backend: "secretsmanager",
            id: "x".into(),
            source: None,
        };
        assert!(!err.is_retryable());
        assert!(!Error::invalid_config("bad").is_retryable());
    }
}
