//! The trait every backend implements, its write side, and the conveniences beside it.

use std::fmt::{Debug, Display};

use async_trait::async_trait;
use futures_util::StreamExt;
use secrecy::SecretString;
use serde::de::DeserializeOwned;

use crate::error::Result;
use crate::id::SecretId;
use crate::value::{Secret, SecretValue, VersionSelector};

/// How many single reads the default [`SecretSource::get_many`] keeps in flight.
pub const DEFAULT_GET_MANY_CONCURRENCY: usize = 16;

/// A place secrets are read from: a backend, or a cache layered over one.
///
/// `Display` names the source and its layers, e.g. `secretsmanager(us-east-1)`.
///
/// # Contract
///
/// * `get` returns the requested version of the secret under `id`, or an error naming the
///   backend and the id. It never returns a value for another id or version.
/// * Errors: [`NotFound`](crate::Error::NotFound) when the secret or the version does not exist;
///   [`AccessDenied`](crate::Error::AccessDenied); [`DecryptionFailed`](crate::Error::DecryptionFailed)
///   when a ciphertext cannot be opened (tampered, another key, another encryption context);
///   [`Throttled`](crate::Error::Throttled) / [`Transient`](crate::Error::Transient) when a retry
///   may succeed, after the backend's own bounded retries; [`Unsupported`](crate::Error::Unsupported)
///   for a selector the backend has no notion of; [`Other`](crate::Error::Other) for the rest.
/// * No error, log line or `Debug` output contains a secret value.
/// * `get_many` returns exactly one result per requested id, in the order given; one failing
///   id does not fail the others.
/// * Implementations are cheap to share (`Arc<dyn SecretSource>`) and safe to call concurrently.
#[async_trait]
pub trait SecretSource: Debug + Display + Send + Sync + 'static {
    /// Reads one version of one secret.
    async fn get(&self, id: &SecretId, version: &VersionSelector) -> Result<Secret>;

    /// A stable identity of the data this source reads: everything that selects it (service,
    /// region, endpoint, profile, bucket and prefix, root directory, key), the same in every
    /// process that configures the source alike. Caches that outlive the process key their
    /// entries by it, so two sources that could hold different values under one id must have
    /// different identities, even when they print alike. `Display` stays for people.
    ///
    /// The default is the `Display` text: override it when two instances can print alike.
    fn identity(&self) -> String {
        self.to_string()
    }

    /// Reads one version of one secret from the backend now, past every cache layer of this
    /// source (memory and `/tmp`), and lets each layer keep the answer: what the agent's
    /// `refreshNow=true` means. A backend without a cache reads as `get` does (the default).
    ///
    /// Errors as for [`SecretSource::get`]; a cache never masks them with what it held.
    async fn refresh(&self, id: &SecretId, version: &VersionSelector) -> Result<Secret> {
        self.get(id, version).await
    }

    /// The identity of the one value `id` reads: [`identity`](SecretSource::identity), plus
    /// whatever else selects that value in a source that has more (`env+kms://`: a hash of
    /// the variable's content, so a process whose variable holds another ciphertext never
    /// reads the entry of the first). The `/tmp` layer names its entries by it. The default
    /// is `identity()`; layers pass it through.
    fn identity_of(&self, id: &SecretId) -> String {
        let _ = id;
        self.identity()
    }

    /// The secret if this source can give it now, without waiting on anything: a fresh
    /// entry of an in-process cache. `None` means "ask [`get`](SecretSource::get)", never
    /// "not found". Callers that can't cheaply enter an async runtime (the Python package)
    /// try it first. The default is `None`; [`MemoryCache`](crate::cache::MemoryCache)
    /// answers from its entries.
    fn get_fresh(&self, id: &SecretId, version: &VersionSelector) -> Option<Secret> {
        let _ = (id, version);
        None
    }

    /// Reads the current version of many secrets. The default makes concurrent `get` calls
    /// (at most [`DEFAULT_GET_MANY_CONCURRENCY`] at once); backends with a batch API override it.
    async fn get_many(&self, ids: &[SecretId]) -> Vec<Result<Secret>> {
        get_each(self, ids).await
    }
}

/// Reads the current version of each id with concurrent `get` calls (at most
/// [`DEFAULT_GET_MANY_CONCURRENCY`] at once), results in the order of `ids`.
/// The default [`SecretSource::get_many`]; batch implementations fall back to it.
pub async fn get_each<S: SecretSource + ?Sized>(
    source: &S,
    ids: &[SecretId],
) -> Vec<Result<Secret>> {
    static CURRENT: VersionSelector = VersionSelector::Current;
    // Collect the futures first: a `map` closure here trips the compiler's higher-ranked
    // lifetime check on `Send` futures.
    let reads: Vec<_> = ids.iter().map(|id| source.get(id, &CURRENT)).collect();
    futures_util::stream::iter(reads)
        .buffered(DEFAULT_GET_MANY_CONCURRENCY)
        .collect()
        .await
}

/// What a successful [`SecretStore::put`] stored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PutOutcome {
    /// The new version's id, when the backend versions secrets.
    pub version_id: Option<String>,
    /// True when the secret did not exist before.
    pub created: bool,
    /// Something the operator should know about this write (a paid tier chosen, say);
    /// the CLI prints it on stderr. Never holds the value.
    pub notice: Option<String>,
}

impl PutOutcome {
    /// An outcome without a notice.
    pub fn new(version_id: Option<String>, created: bool) -> Self {
        Self {
            version_id,
            created,
            notice: None,
        }
    }
}

/// The write side, for the backends this project fills itself (and for seeding tests).
///
/// # Contract
///
/// * `put` stores `value` as the new current version of `id`, creating the secret if needed;
///   a following `get(id, Current)` returns it.
/// * `delete` removes the secret (Secrets Manager: schedules deletion with the service's
///   default recovery window). Deleting a missing secret is [`NotFound`](crate::Error::NotFound).
/// * Errors as for [`SecretSource`]; values never appear in them.
#[async_trait]
pub trait SecretStore: SecretSource {
    /// Stores a new version of `id`.
    async fn put(&self, id: &SecretId, value: &SecretValue) -> Result<PutOutcome>;

    /// Deletes `id`.
    async fn delete(&self, id: &SecretId) -> Result<()>;
}

/// Conveniences over any [`SecretSource`]: the current version as a string, a JSON field,
/// a typed value. Implemented for every source (including `dyn SecretSource`).
#[async_trait]
pub trait SecretSourceExt: SecretSource {
    /// The current version of `id`.
    async fn get_current(&self, id: &SecretId) -> Result<Secret> {
        self.get(id, &VersionSelector::Current).await
    }

    /// The current value of `id` as text. See [`Secret::to_secret_string`].
    async fn get_string(&self, id: &SecretId) -> Result<SecretString> {
        self.get_current(id).await?.to_secret_string()
    }

    /// One field of the current JSON value of `id`, e.g. `access_key` of
    /// `{"access_key": "...", "secret_key": "..."}`. See [`Secret::json_field`].
    async fn get_field(&self, id: &SecretId, field: &str) -> Result<SecretString> {
        self.get_current(id).await?.json_field(field)
    }

    /// The current JSON value of `id` deserialized into `T`. See [`Secret::deserialize`].
    async fn get_json<T: DeserializeOwned + 'static>(&self, id: &SecretId) -> Result<T> {
        self.get_current(id).await?.deserialize()
    }
}

impl<S: SecretSource + ?Sized> SecretSourceExt for S {}
