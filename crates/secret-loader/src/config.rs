//! Choosing a backend by configuration: a source URL, from a flag, the environment or a TOML file.
//!
//! ```text
//! secretsmanager://                                  Secrets Manager, region etc. from the environment
//! secretsmanager://?region=eu-west-1&timeout=5s      ... with options
//! s3+kms://bucket/prefix?kms_key_id=alias/app         KMS envelopes in S3 objects
//! s3+sse-kms://bucket/prefix?kms_key_id=alias/app     plain objects, S3 server-side encryption
//! file+kms:///mnt/efs/secrets?kms_key_id=alias/app    KMS envelopes in files (EFS)
//! ```
//!
//! A URL is parsed into a [`Scheme`] first, then a `match` builds that scheme's options; unknown
//! schemes and unknown options are errors that list the valid ones.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::cache::{CurrentVersion, MemoryCache, MemoryOptions, TmpOptions};
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
    /// `s3+kms://bucket/prefix`: KMS envelopes as S3 objects.
    S3Kms,
    /// `s3+sse-kms://bucket/prefix`: plain S3 objects under server-side KMS encryption.
    S3SseKms,
    /// `file+kms:///dir`: KMS envelopes as files (EFS in Lambda).
    FileKms,
}

impl Scheme {
    /// Every scheme, in the order error messages list them.
    pub const ALL: &'static [Scheme] = &[
        Scheme::SecretsManager,
        Scheme::S3Kms,
        Scheme::S3SseKms,
        Scheme::FileKms,
    ];

    /// The URL scheme, e.g. `secretsmanager`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SecretsManager => "secretsmanager",
            Self::S3Kms => "s3+kms",
            Self::S3SseKms => "s3+sse-kms",
            Self::FileKms => "file+kms",
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

/// The algorithm suite used to seal. Both are committing (key commitment on); opening accepts
/// either, and refuses non-committing messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AlgorithmSuite {
    /// `AES-256-GCM, HKDF-SHA512, key commitment` (`committing`, the default).
    #[default]
    Committing,
    /// The same plus an ECDSA P-384 signature (`committing-signed`): readers who can decrypt
    /// still can't forge a message. Costs a signature per seal and a verification per open,
    /// and ~100 more bytes; see the benchmarks.
    CommittingSigned,
}

impl AlgorithmSuite {
    /// The name used in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Committing => "committing",
            Self::CommittingSigned => "committing-signed",
        }
    }
}

impl FromStr for AlgorithmSuite {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "committing" => Ok(Self::Committing),
            "committing-signed" => Ok(Self::CommittingSigned),
            _ => Err(Error::invalid_config(format!(
                "unknown algorithm suite `{s}`; valid: committing, committing-signed"
            ))),
        }
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

/// Options of `s3+kms://bucket/prefix` and `s3+sse-kms://bucket/prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct S3Config {
    /// Shared AWS options.
    pub aws: AwsOptions,
    /// The bucket (the URL's host).
    pub bucket: String,
    /// The key prefix (the URL's path, without surrounding `/`).
    pub prefix: String,
    /// KMS key (`kms_key_id=`): required for `s3+kms`; for `s3+sse-kms` the bucket's default
    /// KMS key when unset.
    pub kms_key_id: Option<String>,
    /// Envelope algorithm suite (`suite=committing|committing-signed`, `s3+kms` only).
    pub suite: AlgorithmSuite,
    /// Path-style addressing (`force_path_style=true`), for emulators on `localhost`.
    pub force_path_style: bool,
}

/// Options of `file+kms:///dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileConfig {
    /// Shared AWS options (for KMS).
    pub aws: AwsOptions,
    /// The root directory (the URL's path; absolute).
    pub root: PathBuf,
    /// KMS key (`kms_key_id=`, required).
    pub kms_key_id: Option<String>,
    /// Envelope algorithm suite (`suite=committing|committing-signed`).
    pub suite: AlgorithmSuite,
}

/// A parsed source URL: which backend, with which options.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SourceConfig {
    /// `secretsmanager://`.
    SecretsManager(SecretsManagerConfig),
    /// `s3+kms://bucket/prefix`.
    S3Kms(S3Config),
    /// `s3+sse-kms://bucket/prefix`.
    S3SseKms(S3Config),
    /// `file+kms:///dir`.
    FileKms(FileConfig),
}

impl SourceConfig {
    /// The scheme this configuration was parsed from.
    pub fn scheme(&self) -> Scheme {
        match self {
            Self::SecretsManager(_) => Scheme::SecretsManager,
            Self::S3Kms(_) => Scheme::S3Kms,
            Self::S3SseKms(_) => Scheme::S3SseKms,
            Self::FileKms(_) => Scheme::FileKms,
        }
    }

    /// The AWS options of the source.
    pub fn aws(&self) -> &AwsOptions {
        match self {
            Self::SecretsManager(c) => &c.aws,
            Self::S3Kms(c) | Self::S3SseKms(c) => &c.aws,
            Self::FileKms(c) => &c.aws,
        }
    }

    /// The KMS key option, where the scheme has one.
    pub fn kms_key_id(&self) -> Option<&str> {
        match self {
            Self::SecretsManager(c) => c.kms_key_id.as_deref(),
            Self::S3Kms(c) | Self::S3SseKms(c) => c.kms_key_id.as_deref(),
            Self::FileKms(c) => c.kms_key_id.as_deref(),
        }
    }

    /// Sets the KMS key (e.g. from a `--kms-key` flag), overriding the URL's.
    pub fn set_kms_key_id(&mut self, key: impl Into<String>) {
        let key = Some(key.into());
        match self {
            Self::SecretsManager(c) => c.kms_key_id = key,
            Self::S3Kms(c) | Self::S3SseKms(c) => c.kms_key_id = key,
            Self::FileKms(c) => c.kms_key_id = key,
        }
    }

    /// Builds the configured store (the write side; also readable).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] (no region, ...), [`Error::Unsupported`] when the backend was
    /// compiled out (cargo feature off).
    pub async fn build_store(&self) -> Result<Arc<dyn SecretStore>> {
        Ok(self.build_all(None).await?.store)
    }

    /// Builds the configured source (without cache layers: see [`Config::build`]).
    ///
    /// # Errors
    /// As [`SourceConfig::build_store`].
    pub async fn build(&self) -> Result<Arc<dyn SecretSource>> {
        Ok(self.build_all(None).await?.store)
    }

    /// Loads the SDK configuration once (on `http_client` when given) and builds the source
    /// with it.
    #[cfg(feature = "aws")]
    async fn build_all(&self, http_client: Option<HttpClientHook>) -> Result<Built> {
        let sdk = crate::aws::load_sdk_config_with(self.aws(), http_client).await?;
        let (store, versions): (Arc<dyn SecretStore>, Option<Arc<dyn CurrentVersion>>) = match self
        {
            #[cfg(feature = "secretsmanager")]
            Self::SecretsManager(config) => {
                let source = Arc::new(
                    crate::aws::secretsmanager::SecretsManagerSource::from_config(&sdk, config),
                );
                (source.clone(), Some(source))
            }
            #[cfg(feature = "s3")]
            Self::S3Kms(config) => (
                Arc::new(crate::aws::s3::S3Source::from_config(&sdk, config, false).await?),
                None,
            ),
            #[cfg(feature = "s3")]
            Self::S3SseKms(config) => (
                Arc::new(crate::aws::s3::S3Source::from_config(&sdk, config, true).await?),
                None,
            ),
            #[cfg(feature = "file")]
            Self::FileKms(config) => (
                Arc::new(crate::file::FileKmsSource::from_config(&sdk, config).await?),
                None,
            ),
            #[allow(unreachable_patterns)]
            other => return Err(compiled_out(other.scheme())),
        };
        Ok(Built {
            store,
            versions,
            sdk,
        })
    }

    #[cfg(not(feature = "aws"))]
    async fn build_all(&self, _http_client: Option<HttpClientHook>) -> Result<Built> {
        Err(compiled_out(self.scheme()))
    }
}

/// An HTTP client for every AWS call of a stack (nothing without AWS).
#[cfg(feature = "aws")]
type HttpClientHook = aws_smithy_runtime_api::client::http::SharedHttpClient;
#[cfg(not(feature = "aws"))]
type HttpClientHook = std::convert::Infallible;

/// A built source: the store, the same source as a cheap version checker where it is one,
/// and the SDK configuration it was built with (reused by cache layers that call KMS).
struct Built {
    store: Arc<dyn SecretStore>,
    versions: Option<Arc<dyn CurrentVersion>>,
    #[cfg(feature = "aws")]
    #[cfg_attr(not(feature = "kms"), allow(dead_code))]
    sdk: aws_config::SdkConfig,
}

/// The KMS key a scheme that seals envelopes can't do without.
#[cfg(any(feature = "s3", feature = "file"))]
pub(crate) fn required_kms_key(scheme: Scheme, key: Option<&str>) -> Result<&str> {
    key.ok_or_else(|| {
        Error::invalid_config(format!(
            "{scheme}:// needs a KMS key: `kms_key_id=` in the URL (key ARN, id or alias), or --kms-key"
        ))
    })
}

#[allow(dead_code)]
fn compiled_out(scheme: Scheme) -> Error {
    let feature = match scheme {
        Scheme::SecretsManager => "secretsmanager",
        Scheme::S3Kms | Scheme::S3SseKms => "s3",
        Scheme::FileKms => "file",
    };
    Error::Unsupported {
        backend: scheme.as_str(),
        operation: format!("this build (cargo feature `{feature}` is off)"),
    }
}

impl FromStr for SourceConfig {
    type Err = Error;

    /// Parses a source URL such as `secretsmanager://?region=eu-west-1` (without cache
    /// options: those make a [`Config`]).
    fn from_str(text: &str) -> Result<Self> {
        let config = Config::from_url(text)?;
        if config.memory.is_some() || config.tmp.is_some() {
            return Err(Error::invalid_config(
                "cache options (memory_*, tmp_*) configure a Config, not a SourceConfig",
            ));
        }
        Ok(config.source)
    }
}

impl SourceConfig {
    fn from_url_parts(text: &str, url: &Url, mut query: Query) -> Result<Self> {
        let scheme: Scheme = url.scheme().parse()?;
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
                query.finish(scheme, &[AWS_KEYS, &["kms_key_id"], CACHE_KEYS])?;
                Self::SecretsManager(SecretsManagerConfig { aws, kms_key_id })
            }
            Scheme::S3Kms | Scheme::S3SseKms => {
                let bucket = url.host_str().filter(|h| !h.is_empty()).ok_or_else(|| {
                    Error::invalid_config(format!(
                        "`{text}`: {scheme}:// needs a bucket ({scheme}://BUCKET/PREFIX)"
                    ))
                })?;
                let aws = AwsOptions::from_query(&mut query)?;
                let kms_key_id = query.take("kms_key_id");
                let force_path_style = match query.take("force_path_style").as_deref() {
                    None | Some("false") => false,
                    Some("true") => true,
                    Some(other) => {
                        return Err(Error::invalid_config(format!(
                            "force_path_style `{other}` is not true or false"
                        )));
                    }
                };
                let suite = if scheme == Scheme::S3Kms {
                    let suite = query.take("suite").map(|s| s.parse()).transpose()?;
                    query.finish(
                        scheme,
                        &[AWS_KEYS, &["kms_key_id", "suite", "force_path_style"]],
                    )?;
                    suite.unwrap_or_default()
                } else {
                    query.finish(
                        scheme,
                        &[AWS_KEYS, &["kms_key_id", "force_path_style"], CACHE_KEYS],
                    )?;
                    AlgorithmSuite::default()
                };
                let config = S3Config {
                    aws,
                    bucket: bucket.to_owned(),
                    prefix: decode_path(url)?.trim_matches('/').to_owned(),
                    kms_key_id,
                    suite,
                    force_path_style,
                };
                if scheme == Scheme::S3Kms {
                    Self::S3Kms(config)
                } else {
                    Self::S3SseKms(config)
                }
            }
            Scheme::FileKms => {
                let root = decode_path(url)?;
                if url.host_str().is_some_and(|h| !h.is_empty())
                    || !root.starts_with('/')
                    || root == "/"
                {
                    return Err(Error::invalid_config(format!(
                        "`{text}`: file+kms:// needs an absolute directory and no host \
                         (file+kms:///mnt/efs/secrets)"
                    )));
                }
                let aws = AwsOptions::from_query(&mut query)?;
                let kms_key_id = query.take("kms_key_id");
                let suite = query.take("suite").map(|s| s.parse()).transpose()?;
                query.finish(scheme, &[AWS_KEYS, &["kms_key_id", "suite"], CACHE_KEYS])?;
                Self::FileKms(FileConfig {
                    aws,
                    root: PathBuf::from(root),
                    kms_key_id,
                    suite: suite.unwrap_or_default(),
                })
            }
        };
        Ok(config)
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

/// Cache options any source URL takes.
const CACHE_KEYS: &[&str] = &[
    "memory_ttl",
    "memory_max_entries",
    "memory_stale_for",
    "memory_version_check",
    "tmp_ttl",
    "tmp_dir",
    "tmp_plaintext",
    "tmp_kms_key_id",
];

/// The TOML file's shape.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    source: String,
    memory: Option<MemoryTable>,
    tmp: Option<TmpTable>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemoryTable {
    ttl: String,
    max_entries: Option<usize>,
    stale_for: Option<String>,
    version_check: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TmpTable {
    ttl: String,
    dir: Option<PathBuf>,
    plaintext: Option<bool>,
    kms_key_id: Option<String>,
}

impl MemoryTable {
    fn options(self) -> Result<MemoryOptions> {
        let mut options = MemoryOptions::new(parse_duration("memory.ttl", &self.ttl)?);
        if let Some(max) = self.max_entries {
            options.max_entries = positive("memory.max_entries", max)?;
        }
        if let Some(stale) = self.stale_for {
            options.stale_for = parse_duration_or_zero("memory.stale_for", &stale)?;
        }
        options.version_check = self.version_check.unwrap_or(false);
        Ok(options)
    }
}

impl TmpTable {
    fn options(self) -> Result<TmpOptions> {
        let mut options = TmpOptions::new(parse_duration("tmp.ttl", &self.ttl)?);
        if let Some(dir) = self.dir {
            options.dir = dir;
        }
        options.plaintext = self.plaintext.unwrap_or(false);
        options.kms_key_id = self.kms_key_id;
        Ok(options)
    }
}

fn positive(key: &str, n: usize) -> Result<usize> {
    if n == 0 {
        return Err(Error::invalid_config(format!("{key} must be at least 1")));
    }
    Ok(n)
}

fn parse_bool(key: &str, text: &str) -> Result<bool> {
    match text {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(Error::invalid_config(format!(
            "{key} `{text}` is not true or false"
        ))),
    }
}

fn parse_duration_or_zero(key: &str, text: &str) -> Result<Duration> {
    if matches!(text, "0" | "0s") {
        return Ok(Duration::ZERO);
    }
    parse_duration(key, text)
}

/// The cache options in a URL query, taken out of it.
fn cache_from_query(query: &mut Query) -> Result<(Option<MemoryOptions>, Option<TmpOptions>)> {
    let memory = match query.take("memory_ttl") {
        Some(ttl) => {
            let mut options = MemoryOptions::new(parse_duration("memory_ttl", &ttl)?);
            if let Some(max) = query.take("memory_max_entries") {
                let n = max.parse().map_err(|_| {
                    Error::invalid_config(format!("memory_max_entries `{max}` is not a number"))
                })?;
                options.max_entries = positive("memory_max_entries", n)?;
            }
            if let Some(stale) = query.take("memory_stale_for") {
                options.stale_for = parse_duration_or_zero("memory_stale_for", &stale)?;
            }
            if let Some(check) = query.take("memory_version_check") {
                options.version_check = parse_bool("memory_version_check", &check)?;
            }
            Some(options)
        }
        None => None,
    };
    let tmp = match query.take("tmp_ttl") {
        Some(ttl) => {
            let mut options = TmpOptions::new(parse_duration("tmp_ttl", &ttl)?);
            if let Some(dir) = query.take("tmp_dir") {
                options.dir = PathBuf::from(dir);
            }
            if let Some(plain) = query.take("tmp_plaintext") {
                options.plaintext = parse_bool("tmp_plaintext", &plain)?;
            }
            options.kms_key_id = query.take("tmp_kms_key_id");
            Some(options)
        }
        None => None,
    };
    for (key, layer, on) in [
        ("memory_", "memory_ttl", memory.is_some()),
        ("tmp_", "tmp_ttl", tmp.is_some()),
    ] {
        if let Some(stray) = query.keys().find(|k| k.starts_with(key)).filter(|_| !on) {
            return Err(Error::invalid_config(format!(
                "`{stray}` needs `{layer}`, which turns that cache on"
            )));
        }
    }
    Ok((memory, tmp))
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

    /// A configuration from a source URL, cache options included
    /// (`s3+kms://bucket/app?kms_key_id=alias/app&memory_ttl=5m&tmp_ttl=1h`).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] listing what is valid.
    pub fn from_url(text: &str) -> Result<Self> {
        let url = Url::parse(text.trim()).map_err(|err| {
            Error::invalid_config(format!(
                "source `{text}` is not a URL ({err}); expected e.g. `secretsmanager://`"
            ))
        })?;
        let mut query = Query::parse(&url)?;
        let (memory, tmp) = cache_from_query(&mut query)?;
        let source = SourceConfig::from_url_parts(text, &url, query)?;
        Ok(Self {
            source,
            memory,
            tmp,
        })
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
        let mut config = Self::from_url(&file.source)?;
        if let Some(table) = file.memory {
            if config.memory.is_some() {
                return Err(Error::invalid_config(
                    "the memory cache is configured twice: in the source URL and in [memory]",
                ));
            }
            config.memory = Some(table.options()?);
        }
        if let Some(table) = file.tmp {
            if config.tmp.is_some() {
                return Err(Error::invalid_config(
                    "the tmp cache is configured twice: in the source URL and in [tmp]",
                ));
            }
            config.tmp = Some(table.options()?);
        }
        Ok(config)
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
        Self::from_toml_str(&text).map_err(|err| match err {
            Error::InvalidConfig { message } => {
                Error::invalid_config(format!("{}: {message}", path.display()))
            }
            other => other,
        })
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

    /// Builds the configured source with its cache layers: `memory → tmp → source`.
    ///
    /// # Errors
    /// As [`SourceConfig::build`]; [`Error::InvalidConfig`] for an encrypted tmp cache without
    /// a KMS key, an unsafe tmp directory, or a version check over a source without versions.
    pub async fn build(&self) -> Result<Arc<dyn SecretSource>> {
        self.build_on(None).await
    }

    /// As [`Config::build`], with every AWS call of the stack (the source's and an encrypted
    /// tmp layer's) sent through `http_client`: for proxies, custom TLS, or counting calls
    /// (the comparison Lambda counts calls per read this way).
    ///
    /// # Errors
    /// As [`Config::build`].
    #[cfg(feature = "aws")]
    pub async fn build_with_http_client(
        &self,
        http_client: aws_smithy_runtime_api::client::http::SharedHttpClient,
    ) -> Result<Arc<dyn SecretSource>> {
        self.build_on(Some(http_client)).await
    }

    async fn build_on(&self, http_client: Option<HttpClientHook>) -> Result<Arc<dyn SecretSource>> {
        let built = self.source.build_all(http_client).await?;
        let mut source: Arc<dyn SecretSource> = built.store.clone();
        if let Some(options) = &self.tmp {
            source = self.build_tmp(source, options, &built).await?;
        }
        let versions = built.versions;
        if let Some(options) = &self.memory {
            let mut cache = MemoryCache::new(source, options.clone());
            if options.version_check {
                let versions = versions.ok_or_else(|| {
                    Error::invalid_config(format!(
                        "memory_version_check needs a source with versions; {}:// has none",
                        self.source.scheme()
                    ))
                })?;
                cache = cache.with_version_check(versions);
            }
            source = Arc::new(cache);
        }
        Ok(source)
    }

    #[cfg(feature = "kms")]
    async fn build_tmp(
        &self,
        source: Arc<dyn SecretSource>,
        options: &TmpOptions,
        built: &Built,
    ) -> Result<Arc<dyn SecretSource>> {
        use crate::cache::{TmpAtRest, TmpCache};
        let at_rest = if options.plaintext {
            TmpAtRest::Plaintext
        } else {
            let key = options
                .kms_key_id
                .as_deref()
                .or(self.source.kms_key_id())
                .ok_or_else(|| {
                    Error::invalid_config(
                        "the tmp cache encrypts entries: give `tmp_kms_key_id=` (or the source's \
                         `kms_key_id=`), or opt in to `tmp_plaintext=true`",
                    )
                })?;
            let envelope = crate::envelope::Envelope::kms(
                aws_sdk_kms::Client::new(&built.sdk),
                key,
                AlgorithmSuite::default(),
            )
            .await?;
            TmpAtRest::Encrypted(Arc::new(envelope))
        };
        Ok(Arc::new(TmpCache::new(source, options, at_rest)?))
    }

    #[cfg(not(feature = "kms"))]
    async fn build_tmp(
        &self,
        _source: Arc<dyn SecretSource>,
        _options: &TmpOptions,
        _built: &Built,
    ) -> Result<Arc<dyn SecretSource>> {
        Err(Error::Unsupported {
            backend: "tmp-cache",
            operation: "this build (cargo feature `kms` is off)".into(),
        })
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

    fn keys(&self) -> impl Iterator<Item = &String> {
        self.0.keys()
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

/// The URL's path, percent-decoded.
fn decode_path(url: &Url) -> Result<String> {
    percent_encoding::percent_decode_str(url.path())
        .decode_utf8()
        .map(|path| path.into_owned())
        .map_err(|_| Error::invalid_config(format!("`{url}`: the path is not UTF-8")))
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
        let SourceConfig::SecretsManager(sm) = config else {
            panic!("{config:?}")
        };
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
    fn parses_s3_and_file_schemes() {
        let s3: SourceConfig =
            "s3+kms://my-bucket/app/prod/?kms_key_id=alias/app&suite=committing-signed"
                .parse()
                .unwrap();
        let SourceConfig::S3Kms(c) = &s3 else {
            panic!("{s3:?}")
        };
        assert_eq!(
            (c.bucket.as_str(), c.prefix.as_str()),
            ("my-bucket", "app/prod")
        );
        assert_eq!(c.kms_key_id.as_deref(), Some("alias/app"));
        assert_eq!(c.suite, AlgorithmSuite::CommittingSigned);

        let sse: SourceConfig = "s3+sse-kms://b?force_path_style=true".parse().unwrap();
        let SourceConfig::S3SseKms(c) = &sse else {
            panic!("{sse:?}")
        };
        assert_eq!(
            (c.bucket.as_str(), c.prefix.as_str(), c.force_path_style),
            ("b", "", true)
        );

        let mut file: SourceConfig = "file+kms:///mnt/efs/my%20secrets?kms_key_id=k"
            .parse()
            .unwrap();
        file.set_kms_key_id("alias/other");
        let SourceConfig::FileKms(c) = &file else {
            panic!("{file:?}")
        };
        assert_eq!(c.root, PathBuf::from("/mnt/efs/my secrets"));
        assert_eq!(file.kms_key_id(), Some("alias/other"));
        assert_eq!(file.scheme(), Scheme::FileKms);
    }

    #[test]
    fn env_prefers_the_url_then_the_file() {
        let config = Config::from_lookup(|name| {
            (name == SOURCE_ENV).then(|| "secretsmanager://?region=us-west-2".to_owned())
        })
        .unwrap();
        let SourceConfig::SecretsManager(sm) = config.source else {
            panic!()
        };
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
        let SourceConfig::SecretsManager(sm) = config.source else {
            panic!()
        };
        assert_eq!(sm.aws.profile.as_deref(), Some("dev"));
    }
}
