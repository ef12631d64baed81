//! Choosing a backend by configuration: a source URL, from a flag, the environment or a TOML file.
//!
//! ```text
//! secretsmanager://                                  Secrets Manager, region etc. from the environment
//! secretsmanager://?region=eu-west-1&timeout=5s      ... with options
//! ```
//!
//! A URL is parsed into a [`Scheme`] first, then a `match` builds that scheme's options; unknown
//! schemes and unknown options are errors that list the valid ones.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::error::{Error, Result};
use crate::source::{SecretSource, SecretStore};

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
}

impl Scheme {
    /// Every scheme, in the order error messages list them.
    pub const ALL: &'static [Scheme] = &[Scheme::SecretsManager];

    /// The URL scheme, e.g. `secretsmanager`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SecretsManager => "secretsmanager",
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

/// Options shared by every AWS backend. Unset fields follow the SDK's own conventions
/// (`AWS_REGION`, `AWS_PROFILE`, `AWS_ENDPOINT_URL`, the default credential chain).
///
/// The retry and timeout bounds make every call finish in bounded time: at most
/// `max_attempts` attempts, each cut at `attempt_timeout`, all within `operation_timeout`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AwsOptions {
    /// Region (`region=`); default from the environment or profile.
    pub region: Option<String>,
    /// Endpoint URL (`endpoint_url=`), e.g. an emulator on loopback; default `AWS_ENDPOINT_URL`.
    pub endpoint_url: Option<String>,
    /// Shared-config profile (`profile=`); default `AWS_PROFILE` or `default`.
    pub profile: Option<String>,
    /// Attempts per call, first try included (`max_attempts=`, default 3).
    pub max_attempts: u32,
    /// TCP/TLS connect timeout (`connect_timeout=`, default 3.1 s, the SDK's).
    pub connect_timeout: Duration,
    /// Deadline of one attempt (`attempt_timeout=`, default 5 s).
    pub attempt_timeout: Duration,
    /// Deadline of a whole call, retries included (`timeout=`, default 15 s).
    pub operation_timeout: Duration,
}

impl Default for AwsOptions {
    fn default() -> Self {
        Self {
            region: None,
            endpoint_url: None,
            profile: None,
            max_attempts: 3,
            connect_timeout: Duration::from_millis(3100),
            attempt_timeout: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(15),
        }
    }
}

const AWS_KEYS: &[&str] = &[
    "region",
    "endpoint_url",
    "profile",
    "max_attempts",
    "connect_timeout",
    "attempt_timeout",
    "timeout",
];

impl AwsOptions {
    fn from_query(query: &mut Query) -> Result<Self> {
        let mut options = Self {
            region: query.take("region"),
            profile: query.take("profile"),
            ..Self::default()
        };
        if let Some(endpoint) = query.take("endpoint_url") {
            match Url::parse(&endpoint) {
                Ok(url) if matches!(url.scheme(), "http" | "https") => {}
                _ => {
                    return Err(Error::invalid_config(format!(
                        "endpoint_url `{endpoint}` is not an http(s) URL"
                    )));
                }
            }
            options.endpoint_url = Some(endpoint);
        }
        if let Some(attempts) = query.take("max_attempts") {
            options.max_attempts = attempts
                .parse()
                .ok()
                .filter(|n| (1..=10).contains(n))
                .ok_or_else(|| {
                    Error::invalid_config(format!(
                        "max_attempts `{attempts}` is not a number from 1 to 10"
                    ))
                })?;
        }
        for (key, field) in [
            ("connect_timeout", &mut options.connect_timeout),
            ("attempt_timeout", &mut options.attempt_timeout),
            ("timeout", &mut options.operation_timeout),
        ] {
            if let Some(text) = query.take(key) {
                *field = parse_duration(key, &text)?;
            }
        }
        Ok(options)
    }
}

/// Options of `secretsmanager://`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct SecretsManagerConfig {
    /// Shared AWS options.
    pub aws: AwsOptions,
    /// KMS key for secrets the CLI creates (`kms_key_id=`); default `aws/secretsmanager`.
    pub kms_key_id: Option<String>,
}

/// A parsed source URL: which backend, with which options.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SourceConfig {
    /// `secretsmanager://`.
    SecretsManager(SecretsManagerConfig),
}

impl SourceConfig {
    /// The scheme this configuration was parsed from.
    pub fn scheme(&self) -> Scheme {
        match self {
            Self::SecretsManager(_) => Scheme::SecretsManager,
        }
    }

    /// Builds the configured store (the write side; also readable).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] (no region, ...), [`Error::Unsupported`] when the backend was
    /// compiled out (cargo feature off).
    pub async fn build_store(&self) -> Result<Arc<dyn SecretStore>> {
        match self {
            #[cfg(feature = "secretsmanager")]
            Self::SecretsManager(config) => Ok(Arc::new(
                crate::aws::secretsmanager::SecretsManagerSource::from_config(config).await?,
            )),
            #[cfg(not(feature = "secretsmanager"))]
            Self::SecretsManager(_) => Err(compiled_out(Scheme::SecretsManager, "secretsmanager")),
        }
    }

    /// Builds the configured source.
    ///
    /// # Errors
    /// As [`SourceConfig::build_store`].
    pub async fn build(&self) -> Result<Arc<dyn SecretSource>> {
        // Every backend so far is also a store; cache layers will wrap the source here.
        let store = self.build_store().await?;
        Ok(store as Arc<dyn SecretSource>)
    }
}

#[cfg(not(feature = "secretsmanager"))]
fn compiled_out(scheme: Scheme, feature: &str) -> Error {
    Error::Unsupported {
        backend: scheme.as_str(),
        operation: format!("this build (cargo feature `{feature}` is off)"),
    }
}

impl FromStr for SourceConfig {
    type Err = Error;

    /// Parses a source URL such as `secretsmanager://?region=eu-west-1`.
    fn from_str(text: &str) -> Result<Self> {
        let url = Url::parse(text.trim()).map_err(|err| {
            Error::invalid_config(format!(
                "source `{text}` is not a URL ({err}); expected e.g. `secretsmanager://`"
            ))
        })?;
        let scheme: Scheme = url.scheme().parse()?;
        let mut query = Query::parse(&url)?;
        let config = match scheme {
            Scheme::SecretsManager => {
                if url.host_str().is_some_and(|h| !h.is_empty()) || !matches!(url.path(), "" | "/")
                {
                    return Err(Error::invalid_config(format!(
                        "`{text}`: secretsmanager:// takes no host or path, only options \
                         (secretsmanager://?region=...)"
                    )));
                }
                let aws = AwsOptions::from_query(&mut query)?;
                let kms_key_id = query.take("kms_key_id");
                query.finish(scheme, &[AWS_KEYS, &["kms_key_id"]])?;
                Self::SecretsManager(SecretsManagerConfig { aws, kms_key_id })
            }
        };
        Ok(config)
    }
}

/// The whole configuration: the source (and, as they land, the cache layers over it).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// The backend to read from.
    pub source: SourceConfig,
}

/// The TOML file's shape.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    source: String,
}

impl Config {
    /// A configuration reading from `source`.
    pub fn new(source: SourceConfig) -> Self {
        Self { source }
    }

    /// A configuration from a source URL.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] listing what is valid.
    pub fn from_url(url: &str) -> Result<Self> {
        Ok(Self::new(url.parse()?))
    }

    /// A configuration from TOML text:
    ///
    /// ```toml
    /// source = "secretsmanager://?region=eu-west-1"
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for invalid TOML, unknown keys (listing the valid ones) and
    /// an invalid source URL.
    pub fn from_toml_str(text: &str) -> Result<Self> {
        let file: ConfigFile = toml::from_str(text)
            .map_err(|err| Error::invalid_config(format!("TOML: {}", err.message())))?;
        Self::from_url(&file.source)
    }

    /// A configuration from a TOML file; see [`Config::from_toml_str`].
    ///
    /// # Errors
    /// As [`Config::from_toml_str`], and [`Error::InvalidConfig`] when the file can't be read.
    pub fn from_toml_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|err| {
            Error::invalid_config(format!("cannot read {}: {err}", path.display()))
        })?;
        Self::from_toml_str(&text)
            .map_err(|err| Error::invalid_config(format!("{}: {err}", path.display())))
    }

    /// The configuration from the environment: the URL in `SECRET_LOADER_SOURCE`, else the
    /// TOML file named by `SECRET_LOADER_CONFIG`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when neither is set, or as the parsers above.
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

    /// Builds the configured source; see [`SourceConfig::build`].
    ///
    /// # Errors
    /// As [`SourceConfig::build`].
    pub async fn build(&self) -> Result<Arc<dyn SecretSource>> {
        self.source.build().await
    }

    /// Builds the configured store; see [`SourceConfig::build_store`].
    ///
    /// # Errors
    /// As [`SourceConfig::build_store`].
    pub async fn build_store(&self) -> Result<Arc<dyn SecretStore>> {
        self.source.build_store().await
    }
}

/// A URL's query options, consumed key by key; what is left over is an error.
struct Query(BTreeMap<String, String>);

impl Query {
    fn parse(url: &Url) -> Result<Self> {
        let mut map = BTreeMap::new();
        for (key, value) in url.query_pairs() {
            if map.insert(key.to_string(), value.to_string()).is_some() {
                return Err(Error::invalid_config(format!("option `{key}` given twice")));
            }
        }
        Ok(Self(map))
    }

    fn take(&mut self, key: &str) -> Option<String> {
        self.0.remove(key)
    }

    fn finish(self, scheme: Scheme, valid: &[&[&str]]) -> Result<()> {
        match self.0.keys().next() {
            None => Ok(()),
            Some(key) => Err(Error::invalid_config(format!(
                "unknown option `{key}` for {scheme}://; valid options: {}",
                list(valid.iter().flat_map(|keys| keys.iter()))
            ))),
        }
    }
}

fn parse_duration(key: &str, text: &str) -> Result<Duration> {
    humantime::parse_duration(text)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            Error::invalid_config(format!(
                "{key} `{text}` is not a positive duration (e.g. `500ms`, `5s`, `2m`)"
            ))
        })
}

fn list<T: fmt::Display>(items: impl Iterator<Item = T>) -> String {
    items.map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_secretsmanager_with_options() {
        let config: SourceConfig =
            "secretsmanager://?region=eu-west-1&endpoint_url=http://127.0.0.1:5000&max_attempts=2&timeout=2s&attempt_timeout=500ms&kms_key_id=alias/app"
                .parse()
                .unwrap();
        let SourceConfig::SecretsManager(sm) = config;
        assert_eq!(sm.aws.region.as_deref(), Some("eu-west-1"));
        assert_eq!(
            sm.aws.endpoint_url.as_deref(),
            Some("http://127.0.0.1:5000")
        );
        assert_eq!(sm.aws.max_attempts, 2);
        assert_eq!(sm.aws.operation_timeout, Duration::from_secs(2));
        assert_eq!(sm.aws.attempt_timeout, Duration::from_millis(500));
        assert_eq!(
            sm.aws.connect_timeout,
            AwsOptions::default().connect_timeout
        );
        assert_eq!(sm.kms_key_id.as_deref(), Some("alias/app"));

        let bare: SourceConfig = "secretsmanager://".parse().unwrap();
        assert_eq!(
            bare,
            SourceConfig::SecretsManager(SecretsManagerConfig::default())
        );
        assert_eq!(bare.scheme(), Scheme::SecretsManager);
    }

    #[test]
    fn env_prefers_the_url_then_the_file() {
        let config = Config::from_lookup(|name| {
            (name == SOURCE_ENV).then(|| "secretsmanager://?region=us-west-2".to_owned())
        })
        .unwrap();
        let SourceConfig::SecretsManager(sm) = config.source;
        assert_eq!(sm.aws.region.as_deref(), Some("us-west-2"));

        let err = Config::from_lookup(|_| None).unwrap_err().to_string();
        assert!(
            err.contains(SOURCE_ENV) && err.contains(CONFIG_FILE_ENV),
            "{err}"
        );
    }

    #[test]
    fn toml_source() {
        let config = Config::from_toml_str("source = \"secretsmanager://?profile=dev\"\n").unwrap();
        let SourceConfig::SecretsManager(sm) = config.source;
        assert_eq!(sm.aws.profile.as_deref(), Some("dev"));
    }
}
