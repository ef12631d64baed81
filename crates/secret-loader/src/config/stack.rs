//! Building a configuration: the backend (by its own builder), then the cache layers over it,
//! outermost first: `memory → tmp → backend`.

use std::sync::Arc;

use super::{Config, SourceConfig};
use crate::cache::{CurrentVersion, MemoryCache, TmpOptions};
use crate::error::{Error, Result};
use crate::source::{SecretSource, SecretStore};

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
    /// `None` for a source that makes no AWS call (`env://`).
    #[cfg(feature = "kms")]
    sdk: Option<aws_config::SdkConfig>,
}

impl SourceConfig {
    /// Builds the configured store (the write side; also readable).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] (no region, ...).
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

    /// Loads the SDK configuration once (on `http_client` when given) and hands it to the
    /// backend's builder.
    #[cfg(not(not(any(
        feature = "secretsmanager",
        feature = "ssm",
        feature = "s3",
        feature = "file",
        feature = "env"
    ))))]
    async fn build_all(&self, http_client: Option<HttpClientHook>) -> Result<Built> {
        let sdk = match self.aws() {
            Some(aws) => Some(crate::aws::load_sdk_config_with(aws, http_client).await?),
            None => None,
        };
        // Every scheme but `env://` has AWS options, hence a loaded configuration.
        let aws_sdk = || {
            sdk.as_ref()
                .expect("an AWS source has an SDK configuration")
        };
        let (store, versions): (Arc<dyn SecretStore>, Option<Arc<dyn CurrentVersion>>) = match *self
        {
            #[cfg(feature = "secretsmanager")]
            Self::SecretsManager(ref config) => {
                let source = Arc::new(
                    crate::aws::secretsmanager::SecretsManagerSource::from_config(
                        aws_sdk(),
                        config,
                    )
                    .await,
                );
                (source.clone(), Some(source))
            }
            #[cfg(feature = "s3")]
            Self::S3Kms(ref config) => (
                Arc::new(crate::aws::s3::S3Source::from_config(aws_sdk(), config, false).await?),
                None,
            ),
            #[cfg(feature = "s3")]
            Self::S3SseKms(ref config) => (
                Arc::new(crate::aws::s3::S3Source::from_config(aws_sdk(), config, true).await?),
                None,
            ),
            #[cfg(feature = "file")]
            Self::FileKms(ref config) => (
                Arc::new(crate::file::FileKmsSource::from_config(aws_sdk(), config).await?),
                None,
            ),
            #[cfg(feature = "ssm")]
            Self::Ssm(ref config) => (
                Arc::new(crate::aws::ssm::SsmSource::from_config(aws_sdk(), config).await?),
                None,
            ),
            #[cfg(feature = "env")]
            Self::EnvKms(ref config) => (
                Arc::new(ReadOnly {
                    inner: crate::env::EnvKmsSource::from_config(aws_sdk(), config).await,
                    backend: crate::env::BACKEND_KMS,
                    instead: "seal the value with `secret-loader seal` and set the variable \
                              in the function's configuration",
                }),
                None,
            ),
            #[cfg(feature = "env")]
            Self::Env(ref config) => (
                Arc::new(ReadOnly {
                    inner: crate::env::EnvSource::from_config(config),
                    backend: crate::env::BACKEND_PLAIN,
                    instead: "set the variable in the function's configuration",
                }),
                None,
            ),
        };
        Ok(Built {
            store,
            versions,
            #[cfg(feature = "kms")]
            sdk,
        })
    }

    /// Without a backend compiled in there is no configuration to build.
    #[cfg(not(any(
        feature = "secretsmanager",
        feature = "ssm",
        feature = "s3",
        feature = "file",
        feature = "env"
    )))]
    #[allow(clippy::unused_async)]
    async fn build_all(&self, _http_client: Option<HttpClientHook>) -> Result<Built> {
        match *self {}
    }
}

impl Config {
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

    /// Builds the configured store; see [`SourceConfig::build_store`].
    ///
    /// # Errors
    /// As [`SourceConfig::build_store`].
    pub async fn build_store(&self) -> Result<Arc<dyn SecretStore>> {
        self.source.build_store().await
    }

    async fn build_on(&self, http_client: Option<HttpClientHook>) -> Result<Arc<dyn SecretSource>> {
        if self.tmp.is_some() && self.source.scheme() == super::Scheme::Env {
            return Err(Error::invalid_config(
                "a tmp cache over env:// saves nothing (the value is in the process's \
                 environment already) and would copy a plaintext variable to disk: drop `tmp_ttl`",
            ));
        }
        let built = self.source.build_all(http_client).await?;
        let mut source: Arc<dyn SecretSource> = built.store.clone();
        if let Some(options) = &self.tmp {
            source = self.build_tmp(source, options, &built).await?;
        }
        if let Some(options) = &self.memory {
            let mut cache = MemoryCache::new(source, options.clone());
            if options.version_check {
                let versions = built.versions.ok_or_else(|| {
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
        // A directory this process can't use (read-only, another user's) turns the layer off:
        // the stack still serves, from the backend.
        if let Err(err) = TmpCache::check_dir(&options.dir) {
            tracing::warn!(
                error = %err,
                "the tmp cache layer is off: its directory can't be used; reading without it"
            );
            return Ok(source);
        }
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
            let sdk = match &built.sdk {
                Some(sdk) => sdk.clone(),
                None => crate::aws::load_sdk_config(&crate::aws::AwsOptions::default()).await?,
            };
            let envelope = crate::envelope::Envelope::kms(
                aws_sdk_kms::Client::new(&sdk),
                key,
                crate::envelope::AlgorithmSuite::default(),
            )
            .await?;
            TmpAtRest::Encrypted(Arc::new(envelope))
        };
        // The directory was checked above, before KMS was asked for the key.
        Ok(Arc::new(TmpCache::in_checked_dir(source, options, at_rest)))
    }

    #[cfg(not(feature = "kms"))]
    #[allow(clippy::unused_async)]
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
}

/// A source without a write side, as a store whose `put` and `delete` say what to do instead
/// (a process can't change another process's environment).
#[cfg(feature = "env")]
#[derive(Debug)]
struct ReadOnly<S> {
    inner: S,
    backend: &'static str,
    instead: &'static str,
}

#[cfg(feature = "env")]
impl<S: std::fmt::Display> std::fmt::Display for ReadOnly<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

#[cfg(feature = "env")]
#[async_trait::async_trait]
impl<S: SecretSource> SecretSource for ReadOnly<S> {
    fn identity(&self) -> String {
        self.inner.identity()
    }

    fn identity_of(&self, id: &crate::SecretId) -> String {
        self.inner.identity_of(id)
    }

    async fn get(
        &self,
        id: &crate::SecretId,
        version: &crate::VersionSelector,
    ) -> Result<crate::Secret> {
        self.inner.get(id, version).await
    }

    async fn refresh(
        &self,
        id: &crate::SecretId,
        version: &crate::VersionSelector,
    ) -> Result<crate::Secret> {
        self.inner.refresh(id, version).await
    }

    async fn get_many(&self, ids: &[crate::SecretId]) -> Vec<Result<crate::Secret>> {
        self.inner.get_many(ids).await
    }
}

#[cfg(feature = "env")]
#[async_trait::async_trait]
impl<S: SecretSource> SecretStore for ReadOnly<S> {
    async fn put(
        &self,
        _id: &crate::SecretId,
        _value: &crate::SecretValue,
    ) -> Result<crate::PutOutcome> {
        Err(Error::Unsupported {
            backend: self.backend,
            operation: format!("put ({} instead)", self.instead),
        })
    }

    async fn delete(&self, _id: &crate::SecretId) -> Result<()> {
        Err(Error::Unsupported {
            backend: self.backend,
            operation: format!("delete ({} instead)", self.instead),
        })
    }
}
