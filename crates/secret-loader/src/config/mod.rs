//! Choosing a backend by configuration: a source URL, from a flag, the environment or a TOML file.
//!
//! ```text
//! secretsmanager://                                  Secrets Manager, region etc. from the environment
//! secretsmanager://?region=eu-west-1&timeout=5s      ... with options
//! s3+kms://bucket/prefix?kms_key_id=alias/app         KMS envelopes in S3 objects
//! s3+sse-kms://bucket/prefix?kms_key_id=alias/app     plain objects, S3 server-side encryption
//! file+kms:///mnt/efs/secrets?kms_key_id=alias/app    KMS envelopes in files (EFS)
//! ssm://                                             Parameter Store (`/` for ids with a `/`)
//! ssm:///team/app                                    ... under a hierarchy
//! env+kms://?prefix=APP_                             KMS ciphertexts in environment variables
//! env://                                             plaintext environment variables (baseline)
//! ```
//!
//! Configuration only reads text and dispatches: a URL ([`url`](self)) or a TOML file is parsed
//! into a [`Scheme`] first, then a `match` hands the options to that backend's own parser
//! (each backend owns its options type and its builder), and the cache layers' options to
//! theirs; [`Config::build`] builds the backend, then stacks the layers over it. Unknown
//! schemes and unknown options are errors that list the valid ones.

use std::fmt;
use std::str::FromStr;

use crate::cache::{MemoryOptions, TmpOptions};
use crate::error::{Error, Result};
use crate::options::list;

#[cfg(feature = "aws")]
pub use crate::aws::AwsOptions;
#[cfg(feature = "s3")]
pub use crate::aws::s3::S3Config;
#[cfg(feature = "secretsmanager")]
pub use crate::aws::secretsmanager::SecretsManagerConfig;
#[cfg(feature = "ssm")]
pub use crate::aws::ssm::SsmConfig;
#[cfg(feature = "env")]
pub use crate::env::{ContextOption, EnvConfig, EnvKmsConfig};
#[cfg(feature = "file")]
pub use crate::file::FileConfig;

mod file;
mod stack;
mod url;

/// Environment variable holding a source URL.
pub const SOURCE_ENV: &str = "SECRET_LOADER_SOURCE";
/// Environment variable holding the path of a TOML configuration file.
pub const CONFIG_FILE_ENV: &str = "SECRET_LOADER_CONFIG";

/// The kinds of source a URL can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scheme {
    /// `secretsmanager://`: AWS Secrets Manager.
    SecretsManager,
    /// `s3+kms://bucket/prefix`: KMS envelopes as S3 objects.
    S3Kms,
    /// `s3+sse-kms://bucket/prefix`: plain S3 objects under server-side KMS encryption.
    S3SseKms,
    /// `file+kms:///dir`: KMS envelopes as files (EFS in Lambda).
    FileKms,
    /// `ssm://[/hierarchy]`: Systems Manager Parameter Store.
    Ssm,
    /// `env+kms://`: KMS ciphertexts in environment variables.
    EnvKms,
    /// `env://`: plaintext environment variables (the baseline).
    Env,
}

impl Scheme {
    /// Every scheme, in the order error messages list them.
    pub const ALL: &'static [Scheme] = &[
        Scheme::SecretsManager,
        Scheme::S3Kms,
        Scheme::S3SseKms,
        Scheme::FileKms,
        Scheme::Ssm,
        Scheme::EnvKms,
        Scheme::Env,
    ];

    /// The URL scheme, e.g. `secretsmanager`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SecretsManager => "secretsmanager",
            Self::S3Kms => "s3+kms",
            Self::S3SseKms => "s3+sse-kms",
            Self::FileKms => "file+kms",
            Self::Ssm => "ssm",
            Self::EnvKms => "env+kms",
            Self::Env => "env",
        }
    }

    /// The cargo feature that compiles this scheme's backend in.
    pub fn feature(self) -> &'static str {
        match self {
            Self::SecretsManager => "secretsmanager",
            Self::S3Kms | Self::S3SseKms => "s3",
            Self::FileKms => "file",
            Self::Ssm => "ssm",
            Self::EnvKms | Self::Env => "env",
        }
    }

    /// The error for a scheme whose backend this build leaves out.
    #[cfg_attr(
        all(
            feature = "secretsmanager",
            feature = "ssm",
            feature = "s3",
            feature = "file",
            feature = "env"
        ),
        allow(dead_code)
    )]
    fn compiled_out(self) -> Error {
        Error::Unsupported {
            backend: self.as_str(),
            operation: format!("this build (cargo feature `{}` is off)", self.feature()),
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scheme {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|scheme| scheme.as_str() == s)
            .ok_or_else(|| {
                Error::invalid_config(format!(
                    "unknown source scheme `{s}`; valid schemes: {}",
                    list(Self::ALL.iter().map(|s| format!("{s}://")))
                ))
            })
    }
}

/// A parsed source URL: which backend, with which options. Each variant's options type lives
/// with its backend; a variant exists only where its backend is compiled in.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SourceConfig {
    /// `secretsmanager://`.
    #[cfg(feature = "secretsmanager")]
    SecretsManager(SecretsManagerConfig),
    /// `s3+kms://bucket/prefix`.
    #[cfg(feature = "s3")]
    S3Kms(S3Config),
    /// `s3+sse-kms://bucket/prefix`.
    #[cfg(feature = "s3")]
    S3SseKms(S3Config),
    /// `file+kms:///dir`.
    #[cfg(feature = "file")]
    FileKms(FileConfig),
    /// `ssm://[/hierarchy]`.
    #[cfg(feature = "ssm")]
    Ssm(SsmConfig),
    /// `env+kms://`.
    #[cfg(feature = "env")]
    EnvKms(EnvKmsConfig),
    /// `env://`.
    #[cfg(feature = "env")]
    Env(EnvConfig),
}

impl SourceConfig {
    /// The scheme this configuration was parsed from.
    pub fn scheme(&self) -> Scheme {
        match *self {
            #[cfg(feature = "secretsmanager")]
            Self::SecretsManager(_) => Scheme::SecretsManager,
            #[cfg(feature = "s3")]
            Self::S3Kms(_) => Scheme::S3Kms,
            #[cfg(feature = "s3")]
            Self::S3SseKms(_) => Scheme::S3SseKms,
            #[cfg(feature = "file")]
            Self::FileKms(_) => Scheme::FileKms,
            #[cfg(feature = "ssm")]
            Self::Ssm(_) => Scheme::Ssm,
            #[cfg(feature = "env")]
            Self::EnvKms(_) => Scheme::EnvKms,
            #[cfg(feature = "env")]
            Self::Env(_) => Scheme::Env,
        }
    }

    /// The AWS options of the source; `None` for `env://`, which makes no AWS call.
    #[cfg(feature = "aws")]
    pub fn aws(&self) -> Option<&AwsOptions> {
        match *self {
            #[cfg(feature = "secretsmanager")]
            Self::SecretsManager(ref c) => Some(&c.aws),
            #[cfg(feature = "s3")]
            Self::S3Kms(ref c) | Self::S3SseKms(ref c) => Some(&c.aws),
            #[cfg(feature = "file")]
            Self::FileKms(ref c) => Some(&c.aws),
            #[cfg(feature = "ssm")]
            Self::Ssm(ref c) => Some(&c.aws),
            #[cfg(feature = "env")]
            Self::EnvKms(ref c) => Some(&c.aws),
            #[cfg(feature = "env")]
            Self::Env(_) => None,
        }
    }

    /// The KMS key option, where the scheme has one.
    pub fn kms_key_id(&self) -> Option<&str> {
        match *self {
            #[cfg(feature = "secretsmanager")]
            Self::SecretsManager(ref c) => c.kms_key_id.as_deref(),
            #[cfg(feature = "s3")]
            Self::S3Kms(ref c) | Self::S3SseKms(ref c) => c.kms_key_id.as_deref(),
            #[cfg(feature = "file")]
            Self::FileKms(ref c) => c.kms_key_id.as_deref(),
            #[cfg(feature = "ssm")]
            Self::Ssm(ref c) => c.kms_key_id.as_deref(),
            #[cfg(feature = "env")]
            Self::EnvKms(ref c) => c.kms_key_id.as_deref(),
            #[cfg(feature = "env")]
            Self::Env(_) => None,
        }
    }

    /// Sets the KMS key (e.g. from a `--kms-key` flag), overriding the URL's.
    pub fn set_kms_key_id(&mut self, key: impl Into<String>) {
        let _key = Some(key.into());
        match *self {
            #[cfg(feature = "secretsmanager")]
            Self::SecretsManager(ref mut c) => c.kms_key_id = _key,
            #[cfg(feature = "s3")]
            Self::S3Kms(ref mut c) | Self::S3SseKms(ref mut c) => c.kms_key_id = _key,
            #[cfg(feature = "file")]
            Self::FileKms(ref mut c) => c.kms_key_id = _key,
            #[cfg(feature = "ssm")]
            Self::Ssm(ref mut c) => c.kms_key_id = _key,
            #[cfg(feature = "env")]
            Self::EnvKms(ref mut c) => c.kms_key_id = _key,
            #[cfg(feature = "env")]
            Self::Env(_) => {}
        }
    }
}

/// The whole configuration: the source and the cache layers over it.
///
/// Layers stack outermost first: `memory → tmp → source`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// The backend to read from.
    pub source: SourceConfig,
    /// The in-process cache, when configured (`memory_ttl=` or a `[memory]` table).
    pub memory: Option<MemoryOptions>,
    /// The `/tmp` cache, when configured (`tmp_ttl=` or a `[tmp]` table).
    pub tmp: Option<TmpOptions>,
}

impl Config {
    /// A configuration reading from `source`, without caches.
    pub fn new(source: SourceConfig) -> Self {
        Self {
            source,
            memory: None,
            tmp: None,
        }
    }

    /// The configuration from the environment: the URL in `SECRET_LOADER_SOURCE`, else the
    /// TOML file named by `SECRET_LOADER_CONFIG`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when neither is set, or as the parsers
    /// ([`Config::from_url`], [`Config::from_toml_file`]).
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`Config::from_env`] with another variable lookup (for tests and embedders).
    ///
    /// # Errors
    /// As [`Config::from_env`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let nonempty = |name| lookup(name).filter(|v: &String| !v.trim().is_empty());
        if let Some(url) = nonempty(SOURCE_ENV) {
            return Self::from_url(&url)
                .map_err(|err| Error::invalid_config(format!("{SOURCE_ENV}: {err}")));
        }
        if let Some(path) = nonempty(CONFIG_FILE_ENV) {
            return Self::from_toml_file(path);
        }
        Err(Error::invalid_config(format!(
            "no source configured: set {SOURCE_ENV} (e.g. `secretsmanager://`) or {CONFIG_FILE_ENV} \
             (a TOML file), or pass --source"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(irrefutable_let_patterns)]
    fn env_prefers_the_url_then_the_file() {
        let config = Config::from_lookup(|name| {
            (name == SOURCE_ENV).then(|| "secretsmanager://?region=us-west-2".to_owned())
        });
        #[cfg(feature = "secretsmanager")]
        {
            let SourceConfig::SecretsManager(sm) = config.unwrap().source else {
                panic!()
            };
            assert_eq!(sm.aws.region.as_deref(), Some("us-west-2"));
        }
        #[cfg(not(feature = "secretsmanager"))]
        assert_eq!(
            config.unwrap_err().kind(),
            crate::ErrorKind::Unsupported,
            "a scheme compiled out says so"
        );

        let err = Config::from_lookup(|_| None).unwrap_err().to_string();
        assert!(
            err.contains(SOURCE_ENV) && err.contains(CONFIG_FILE_ENV),
            "{err}"
        );
    }
}
