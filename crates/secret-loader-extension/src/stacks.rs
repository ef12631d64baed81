//! Which stack serves which route, built from the [settings](crate::Settings).
//!
//! * `/secretsmanager/get` and `/v1/<id>`: the stack named `secretsmanager`, else the only
//!   `secretsmanager://` stack. A stack of another scheme may take that name: code written for
//!   AWS's extension then reads from S3, EFS or anywhere, unchanged.
//! * `/systemsmanager/parameters/get`: the stack named `ssm`, else the only `ssm://` stack.
//! * `/secret-loader/get?source=NAME`: any stack, by name.
//!
//! The two AWS routes' stacks get AWS's cache switches (`SECRETS_MANAGER_TTL`,
//! `SSM_PARAMETER_STORE_TTL`, `PARAMETERS_SECRETS_EXTENSION_CACHE_*`) unless their URL
//! configures its own memory layer; every stack's backend calls are bounded by
//! `PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use secret_loader::SecretsManagerSource;
use secret_loader::aws::ssm::SsmSource;
use secret_loader::cache::{CurrentVersion, MemoryCache, MemoryOptions};
use secret_loader::config::{Scheme, SourceConfig};
use secret_loader::{Config, Error, Result, Secret, SecretId, SecretSource, VersionSelector};
use tokio::sync::{OnceCell, Semaphore};

use crate::settings::{DEFAULT_TIMEOUT, Settings, StackSource};

/// The name of the stack `SECRET_LOADER_SOURCE` / `SECRET_LOADER_CONFIG` configures.
pub const DEFAULT_STACK: &str = "default";

/// One configured stack, ready to serve.
pub struct Stack {
    name: String,
    scheme: Scheme,
    source: Arc<dyn SecretSource>,
    /// The source without the memory layer: what reads use while caching is off.
    uncached: Arc<dyn SecretSource>,
    /// Whether reads may be cached (off under SnapStart until the first INVOKE).
    caching: Arc<AtomicBool>,
    memory: Option<Arc<MemoryCache>>,
    ssm_prefix: Option<String>,
    /// For an `ssm://` stack, its configuration and, once a `withDecryption=false` request has
    /// needed it, the reader that answers those without decryption (built then, not at start:
    /// such requests are rare and a start-up pays for every client it builds).
    ssm_raw: Option<(secret_loader::config::SsmConfig, OnceCell<SsmSource>)>,
    timeout: Duration,
}

impl Stack {
    /// The stack's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The backend's scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The deadline of one read.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Reads `id`; with `refresh`, past the cache (and into it).
    ///
    /// # Errors
    /// As the stack's source.
    pub async fn get(
        &self,
        id: &SecretId,
        version: &VersionSelector,
        refresh: bool,
    ) -> Result<Secret> {
        if !self.caching.load(Ordering::Acquire) {
            return self.uncached.get(id, version).await;
        }
        if refresh {
            self.source.refresh(id, version).await
        } else {
            self.source.get(id, version).await
        }
    }

    /// Reads `id` as Parameter Store holds it, without decryption (a `SecureString`'s
    /// ciphertext), past the caches; `None` for a stack that is not `ssm://`.
    pub async fn get_without_decryption(
        &self,
        id: &SecretId,
        version: &VersionSelector,
    ) -> Option<Result<Secret>> {
        let (config, raw) = self.ssm_raw.as_ref()?;
        let built = raw
            .get_or_try_init(|| async {
                let sdk = secret_loader::aws::load_sdk_config(&config.aws).await?;
                SsmSource::from_config(&sdk, config).await
            })
            .await;
        Some(match built {
            Ok(raw) => raw.get_without_decryption(id, version).await,
            Err(err) => Err(err),
        })
    }

    /// The id a Parameter Store name means here: for an `ssm://` stack its own mapping, for
    /// any other the name without a leading `/`.
    pub fn id_for_parameter(&self, name: &str) -> Option<SecretId> {
        match &self.ssm_prefix {
            Some(prefix) => secret_loader::aws::ssm::id_for_name(prefix, name),
            None => SecretId::new(name.strip_prefix('/').unwrap_or(name)).ok(),
        }
    }

    /// Reads `ids` into the cache (those that fail are logged, by id and kind only).
    pub async fn prefetch(&self, ids: &[SecretId]) {
        if !self.caching.load(Ordering::Acquire) {
            return;
        }
        let results = match &self.memory {
            Some(memory) => memory.prefetch(ids).await,
            None => Vec::new(),
        };
        for (id, result) in ids.iter().zip(results) {
            match result {
                Ok(()) => tracing::info!(stack = %self.name, %id, "prefetched"),
                Err(err) => {
                    tracing::warn!(stack = %self.name, %id, kind = ?err.kind(), "prefetch failed")
                }
            }
        }
    }
}

impl fmt::Debug for Stack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stack")
            .field("name", &self.name)
            .field("source", &self.source.to_string())
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Every stack, and which serves the two AWS routes.
#[derive(Debug, Default)]
pub struct Stacks {
    by_name: BTreeMap<String, Arc<Stack>>,
    secretsmanager: Option<Arc<Stack>>,
    ssm: Option<Arc<Stack>>,
    /// Shared by every stack: whether reads may be cached.
    caching: Arc<AtomicBool>,
}

impl Stacks {
    /// Builds the stacks the settings describe.
    ///
    /// # Errors
    /// A stack's configuration error, naming the stack.
    pub async fn build(settings: &Settings) -> Result<Self> {
        let configs: Vec<(String, Config)> = match &settings.stacks {
            StackSource::Named(urls) => urls
                .iter()
                .map(|(name, url)| {
                    Config::from_url(url)
                        .map(|config| (name.clone(), config))
                        .map_err(|err| named(name, &err))
                })
                .collect::<Result<_>>()?,
            StackSource::Single(config) => vec![(DEFAULT_STACK.to_owned(), (**config).clone())],
            StackSource::AwsDefaults => vec![
                (
                    "secretsmanager".to_owned(),
                    Config::from_url("secretsmanager://")?,
                ),
                ("ssm".to_owned(), Config::from_url("ssm://")?),
            ],
        };
        let route_owner = |route: &str, scheme: Scheme| -> Option<String> {
            if configs.iter().any(|(name, _)| name == route) {
                return Some(route.to_owned());
            }
            let mut of_scheme = configs.iter().filter(|(_, c)| c.source.scheme() == scheme);
            match (of_scheme.next(), of_scheme.next()) {
                (Some((name, _)), None) => Some(name.clone()),
                _ => None,
            }
        };
        let sm_owner = route_owner("secretsmanager", Scheme::SecretsManager);
        let ssm_owner = route_owner("ssm", Scheme::Ssm);
        let mut stacks = Self {
            caching: Arc::new(AtomicBool::new(!settings.snap_start)),
            ..Self::default()
        };
        for (name, mut config) in configs {
            let serves_sm = sm_owner.as_deref() == Some(name.as_str());
            let serves_ssm = ssm_owner.as_deref() == Some(name.as_str());
            let (ttl, timeout) = if serves_sm {
                (
                    settings.secrets_manager_ttl,
                    settings.secrets_manager_timeout,
                )
            } else if serves_ssm {
                (settings.ssm_ttl, settings.ssm_timeout)
            } else {
                (None, DEFAULT_TIMEOUT)
            };
            if config.memory.is_none()
                && let Some(ttl) = ttl
            {
                let mut memory = MemoryOptions::new(ttl);
                memory.max_entries = settings.cache_size;
                memory.stale_for = settings.stale_for;
                config.memory = Some(memory);
            }
            if settings.snap_start && config.tmp.is_some() {
                return Err(named(
                    &name,
                    &Error::invalid_config(
                        "a /tmp layer under SnapStart would put secrets into the snapshot",
                    ),
                ));
            }
            let stack = build_stack(
                &name,
                config,
                settings.max_connections,
                timeout,
                stacks.caching.clone(),
            )
            .await
            .map_err(|err| named(&name, &err))?;
            let stack = Arc::new(stack);
            if serves_sm {
                stacks.secretsmanager = Some(stack.clone());
            }
            if serves_ssm {
                stacks.ssm = Some(stack.clone());
            }
            stacks.by_name.insert(name, stack);
        }
        Ok(stacks)
    }

    /// The stack of the Secrets Manager routes.
    pub fn secretsmanager(&self) -> Option<&Arc<Stack>> {
        self.secretsmanager.as_ref()
    }

    /// The stack of the Parameter Store route.
    pub fn ssm(&self) -> Option<&Arc<Stack>> {
        self.ssm.as_ref()
    }

    /// A stack by name.
    pub fn named(&self, name: &str) -> Option<&Arc<Stack>> {
        self.by_name.get(name)
    }

    /// The only stack, when there is one (the generic route's default).
    pub fn only(&self) -> Option<&Arc<Stack>> {
        let mut all = self.by_name.values();
        match (all.next(), all.next()) {
            (Some(stack), None) => Some(stack),
            _ => None,
        }
    }

    /// The stacks' names.
    pub fn names(&self) -> Vec<&str> {
        self.by_name.keys().map(String::as_str).collect()
    }

    /// Whether reads are cached now (off under SnapStart until [`Stacks::start_caching`]).
    pub fn caching(&self) -> bool {
        self.caching.load(Ordering::Acquire)
    }

    /// Lets reads be cached from now on: under SnapStart, at the first `INVOKE`, once the
    /// environment has been restored from its snapshot. True when it was off.
    pub fn start_caching(&self) -> bool {
        !self.caching.swap(true, Ordering::AcqRel)
    }

    /// Reads the listed ids into their stacks' caches (nothing while caching is off).
    pub async fn prefetch(&self, ids: &[(Option<String>, String)]) {
        let mut by_stack: BTreeMap<&str, Vec<SecretId>> = BTreeMap::new();
        for (stack, id) in ids {
            let stack = match stack {
                Some(name) => self.named(name),
                None => self.secretsmanager(),
            };
            match (stack, SecretId::new(id.as_str())) {
                (Some(stack), Ok(id)) => by_stack.entry(stack.name()).or_default().push(id),
                (None, _) => tracing::warn!(%id, "prefetch: no such stack"),
                (_, Err(err)) => tracing::warn!(%err, "prefetch: invalid id"),
            }
        }
        for (name, ids) in by_stack {
            if let Some(stack) = self.named(name) {
                stack.prefetch(&ids).await;
            }
        }
    }
}

fn named(name: &str, err: &Error) -> Error {
    Error::invalid_config(format!("stack `{name}`: {}", err.display_chain()))
}

/// The backend, the call bound over it, then the memory layer (kept for `refreshNow` and
/// prefetch).
async fn build_stack(
    name: &str,
    mut config: Config,
    max_connections: usize,
    timeout: Duration,
    caching: Arc<AtomicBool>,
) -> Result<Stack> {
    let memory_options = config.memory.take();
    // The rotation check (`memory_version_check=true`): on expiry one `DescribeSecret` keeps
    // an unchanged entry, as the Secrets Manager Agent does.
    let versions: Option<Arc<dyn CurrentVersion>> = match (
        &config.source,
        memory_options.as_ref().is_some_and(|m| m.version_check),
    ) {
        (_, false) => None,
        (SourceConfig::SecretsManager(sm), true) => {
            let sdk = secret_loader::aws::load_sdk_config(&sm.aws).await?;
            Some(Arc::new(SecretsManagerSource::from_config(&sdk, sm).await))
        }
        (other, true) => {
            return Err(Error::invalid_config(format!(
                "memory_version_check needs a source with versions; {}:// has none",
                other.scheme()
            )));
        }
    };
    let (ssm_prefix, ssm_raw) = match &config.source {
        SourceConfig::Ssm(ssm) => (
            Some(ssm.prefix.clone()),
            Some((ssm.clone(), OnceCell::new())),
        ),
        _ => (None, None),
    };
    // Every local process may ask the extension for an id: an env:// stack without a prefix
    // would hand out any variable of the extension's environment, the function's AWS
    // credentials included.
    if let SourceConfig::Env(env) = &config.source
        && (env.prefix.is_empty() || env.prefix.starts_with("AWS_"))
    {
        return Err(Error::invalid_config(
            "an env:// stack needs a prefix= of its own (not empty, not AWS_): without one it \
             would serve every variable of the extension's environment, AWS credentials included",
        ));
    }
    let scheme = config.source.scheme();
    let backend: Arc<dyn SecretSource> = Arc::new(Bounded {
        inner: config.build().await?,
        permits: Semaphore::new(max_connections),
    });
    let memory = memory_options.map(|options| {
        let cache = MemoryCache::new(backend.clone(), options);
        Arc::new(match versions {
            Some(versions) => cache.with_version_check(versions),
            None => cache,
        })
    });
    let source = match &memory {
        Some(memory) => memory.clone() as Arc<dyn SecretSource>,
        None => backend.clone(),
    };
    Ok(Stack {
        name: name.to_owned(),
        scheme,
        source,
        uncached: backend,
        caching,
        memory,
        ssm_prefix,
        ssm_raw,
        timeout,
    })
}

/// At most N backend calls in flight (AWS's `MAX_CONNECTIONS`: connections to the service).
struct Bounded {
    inner: Arc<dyn SecretSource>,
    permits: Semaphore,
}

#[async_trait]
impl SecretSource for Bounded {
    fn identity(&self) -> String {
        self.inner.identity()
    }

    fn identity_of(&self, id: &SecretId) -> String {
        self.inner.identity_of(id)
    }

    async fn get(&self, id: &SecretId, version: &VersionSelector) -> Result<Secret> {
        let _permit = self.permit().await?;
        self.inner.get(id, version).await
    }

    async fn refresh(&self, id: &SecretId, version: &VersionSelector) -> Result<Secret> {
        let _permit = self.permit().await?;
        self.inner.refresh(id, version).await
    }
}

impl Bounded {
    async fn permit(&self) -> Result<tokio::sync::SemaphorePermit<'_>> {
        self.permits
            .acquire()
            .await
            .map_err(|_| Error::Unsupported {
                backend: "extension",
                operation: "reading while shutting down".into(),
            })
    }
}

impl fmt::Debug for Bounded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bounded")
            .field("inner", &self.inner)
            .field("permits", &self.permits.available_permits())
            .finish()
    }
}

impl fmt::Display for Bounded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}
