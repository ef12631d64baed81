//! Load application secrets (API keys, tokens, database passwords) from the places AWS
//! offers to keep them, behind one async trait, chosen by configuration.
//!
//! * [`SecretSource`] is the trait every backend implements (read side); [`SecretStore`]
//!   adds `put`/`delete` for the backends this project fills itself; [`SecretSourceExt`]
//!   adds conveniences (string, JSON field, typed value) to every source.
//! * Backends: [`SecretsManagerSource`] (`secretsmanager://`, feature `secretsmanager`),
//!   [`SsmSource`] (`ssm://`, Parameter Store, feature `ssm`),
//!   [`S3Source`] (`s3+kms://`, `s3+sse-kms://`, feature `s3`), [`FileKmsSource`]
//!   (`file+kms://`, feature `file`), [`EnvKmsSource`] and [`EnvSource`] (`env+kms://`,
//!   `env://`, feature `env`), [`InMemorySource`] (in-process, for tests).
//! * [`Envelope`] seals values as AWS Encryption SDK messages under a KMS key (feature `kms`).
//! * [`Config`] picks a backend from a URL, the `SECRET_LOADER_SOURCE` environment variable
//!   or a TOML file.
//! * [`SecretValue`] is never printable and zeroized on drop; [`Error`] never carries a value.
//!
//! ```no_run
//! use secret_loader::{Config, SecretId, SecretSourceExt};
//! use secrecy::ExposeSecret;
//!
//! # async fn run() -> secret_loader::Result<()> {
//! // SECRET_LOADER_SOURCE=secretsmanager://
//! let source = Config::from_env()?.build().await?;
//! let id = SecretId::new("prod/app/api")?;
//! let access_key = source.get_field(&id, "access_key").await?;
//! # let _ = access_key.expose_secret();
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub, rustdoc::broken_intra_doc_links)]

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "kms")]
mod beneath;
pub mod cache;
#[cfg(feature = "calls")]
pub mod calls;
#[cfg(feature = "comparison")]
pub mod comparison;
pub mod config;
#[cfg(feature = "env")]
pub mod env;
#[cfg(feature = "kms")]
pub mod envelope;
mod error;
#[cfg(feature = "file")]
pub mod file;
mod id;
mod memory;
mod options;
#[cfg(feature = "kms")]
mod random;
mod source;
#[cfg(feature = "testing")]
pub mod testing;
mod value;

#[cfg(feature = "s3")]
pub use aws::s3::S3Source;
#[cfg(feature = "secretsmanager")]
pub use aws::secretsmanager::SecretsManagerSource;
#[cfg(feature = "ssm")]
pub use aws::ssm::SsmSource;
pub use config::{Config, SourceConfig};
#[cfg(feature = "env")]
pub use env::{EnvKmsSource, EnvSource};
#[cfg(feature = "kms")]
pub use envelope::{AlgorithmSuite, Envelope, SignaturePolicy};
pub use error::{BoxError, DisplayChain, Error, ErrorKind, Result, SharedError};
#[cfg(feature = "file")]
pub use file::FileKmsSource;
pub use id::{ArnService, MAX_ARN_LEN, MAX_NAME_LEN, SecretId};
pub use memory::InMemorySource;
pub use source::{
    DEFAULT_GET_MANY_CONCURRENCY, PutOutcome, SecretSource, SecretSourceExt, SecretStore, get_each,
};
pub use value::{STAGE_CURRENT, STAGE_PREVIOUS, Secret, SecretValue, VersionSelector};

/// Re-exported so callers use the same `secrecy` version as the values they receive.
pub use secrecy;

// The README's Rust example compiles as a doctest of this crate, so it can't go stale.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
