//! The in-process cache layer.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use tokio::sync::watch;

use crate::cache::{Clock, CurrentVersion, Key, KeyRef};
use crate::error::{Error, ErrorKind, Result};
use crate::id::SecretId;
use crate::options::{Options, parse_bool, parse_duration, parse_duration_or_zero, parse_positive};
use crate::source::SecretSource;
use crate::value::{Secret, VersionSelector};

/// Options of a [`MemoryCache`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryOptions {
    /// How long an entry is served without asking the backend (`memory_ttl=`). Any duration.
    pub ttl: Duration,
    /// Most entries kept (`memory_max_entries=`, default 1000); beyond it the least useful
    /// are evicted (S3-FIFO, from `quick_cache`).
    pub max_entries: usize,
    /// Most bytes of values (with their ids and metadata) kept (`memory_max_bytes=`, default
    /// 16 MiB): a few large secrets can't take a small function's memory. A value larger
    /// than this is served but not kept.
    pub max_bytes: usize,
    /// How long past its TTL an entry may still be served when the refresh fails with a
    /// retryable error (`memory_stale_for=`, default 0: never). Permanent errors (not found,
    /// access denied) are never masked.
    pub stale_for: Duration,
    /// On expiry, ask the backend for the current version id first and keep the entry when it
    /// is unchanged (`memory_version_check=true`; Secrets Manager: one `DescribeSecret`
    /// instead of a `GetSecretValue`). Off by default; see `docs/caches.md` for the trade.
    pub version_check: bool,
}

impl MemoryOptions {
    /// Options with this TTL and the defaults for the rest.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            max_entries: 1000,
            max_bytes: 16 * 1024 * 1024,
            stale_for: Duration::ZERO,
            version_check: false,
        }
    }

    /// The option keys of the memory layer (`memory_` in a URL, a `[memory]` table in TOML).
    pub(crate) const KEYS: &'static [&'static str] = &[
        "ttl",
        "max_entries",
        "max_bytes",
        "stale_for",
        "version_check",
    ];

    /// The memory layer's options, from its keys (prefix removed); `None` when none is given.
    ///
    /// # Errors
    /// [`InvalidConfig`](crate::Error::InvalidConfig) for a bad or unknown key, or keys without
    /// `ttl`.
    pub(crate) fn from_options(mut options: Options) -> Result<Option<Self>> {
        let Some(ttl) = options.take_switch("ttl", parse_duration)? else {
            return Ok(None);
        };
        let mut memory = Self::new(ttl);
        if let Some(max) = options.take_with("max_entries", parse_positive)? {
            memory.max_entries = max;
        }
        if let Some(max) = options.take_with("max_bytes", parse_positive)? {
            memory.max_bytes = max;
        }
        if let Some(stale) = options.take_with("stale_for", parse_duration_or_zero)? {
            memory.stale_for = stale;
        }
        if let Some(check) = options.take_with("version_check", parse_bool)? {
            memory.version_check = check;
        }
        let valid = options.names(Self::KEYS);
        options.finish("", &valid)?;
        Ok(Some(memory))
    }
}

/// What a [`MemoryCache`] has done, counted in every build.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryStats {
    /// Answered from a fresh entry.
    pub hits: u64,
    /// No usable entry: the backend was asked.
    pub misses: u64,
    /// An expired entry was refreshed from the backend.
    pub refreshes: u64,
    /// An expired entry was kept after a version check found it current.
    pub renewed: u64,
    /// Waited for another caller's backend call for the same key, and shared its result.
    pub coalesced: u64,
    /// Served an expired entry because the refresh failed with a retryable error.
    pub stale_served: u64,
    /// Backend calls that failed (and were not masked by a stale entry).
    pub errors: u64,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    refreshes: AtomicU64,
    renewed: AtomicU64,
    coalesced: AtomicU64,
    stale_served: AtomicU64,
    errors: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

#[derive(Clone)]
struct Entry {
    secret: Secret,
    /// When it was read, on the coarse monotonic clock.
    fetched_at: Duration,
}

/// The result of a backend call in flight, once it has one: what every caller of that flight
/// gets, the error included.
type FlightResult = Option<Result<Secret>>;

/// A backend call in flight for one key.
#[derive(Clone)]
struct Flight {
    result: watch::Receiver<FlightResult>,
    /// A forced refresh (reads past every layer); a plain read may be answered by a layer
    /// below (a `/tmp` entry), so a refresh doesn't join one.
    refresh: bool,
}

/// Both bounds of the cache in one weight: the capacity is `max_entries` units, and an entry
/// weighs at least one unit and otherwise its share of `max_bytes` in units, so neither the
/// count nor the bytes can exceed their bound.
#[derive(Clone)]
struct Weight {
    max_entries: u64,
    max_bytes: u64,
}

impl quick_cache::Weighter<Key, Entry> for Weight {
    fn weight(&self, key: &Key, entry: &Entry) -> u64 {
        entry_bytes(key, entry)
            .saturating_mul(self.max_entries)
            .div_ceil(self.max_bytes)
            .max(1)
    }
}

/// What an entry holds, roughly: the value, the id, the metadata and a fixed overhead.
fn entry_bytes(key: &Key, entry: &Entry) -> u64 {
    let secret = &entry.secret;
    let metadata = secret.version_id().map_or(0, str::len)
        + secret
            .version_stages()
            .iter()
            .map(String::len)
            .sum::<usize>()
        + secret.arn().map_or(0, str::len)
        + secret.name().map_or(0, str::len);
    (secret.value().len() + 2 * key.id.as_str().len() + metadata + 128) as u64
}

/// What a flight does to the cache when it lands.
enum Landing {
    /// Keep this secret, read now.
    Insert,
    /// Leave the entry as it is (it was fresh already, or a stale one was served).
    Keep,
}

/// An in-process cache over any [`SecretSource`]: TTL, bounded in entries and in bytes,
/// single-flight, bounded stale-on-error, forced refresh, invalidation, prefetch, and
/// optionally a cheap version check on expiry.
///
/// * **Single-flight.** Concurrent misses on one key make one backend call, and every caller
///   gets that call's result, success or error. The call runs in a task of its own: a caller
///   that gives up (a deadline, a dropped request) doesn't throw it away, and its result is
///   still cached for the next caller.
/// * **Refresh** ([`SecretSource::refresh`]) reads past this layer and every layer below it
///   (a `/tmp` entry too). Concurrent refreshes of a key share one call; a refresh doesn't
///   join a plain read in flight (which a layer below may answer from its cache) but takes
///   its place, so callers after it get the refreshed value.
/// * **Only the key's current flight lands.** [`MemoryCache::invalidate`] and a refresh
///   replace the key's flight; a flight that was replaced still answers the callers that
///   joined it, but can't put its (older) value into the cache.
/// * **Prefetch** joins the same flights: a read that arrives while the prefetch is in flight
///   waits for it instead of calling the backend again.
///
/// Keyed by id and version selector. A hit is a hash lookup and a reference-count increment.
pub struct MemoryCache {
    shared: Arc<Shared>,
}

/// The cache's state, shared with the tasks its flights run in.
struct Shared {
    inner: Arc<dyn SecretSource>,
    options: MemoryOptions,
    entries: quick_cache::sync::Cache<Key, Entry, Weight>,
    /// The backend calls in flight, one per key: the single-flight. Callers that find one
    /// wait for its result instead of calling the backend themselves.
    flights: Mutex<HashMap<Key, Flight>>,
    versions: Option<Arc<dyn CurrentVersion>>,
    clock: Clock,
    counters: Counters,
}

/// A caller's place in a key's flight.
enum Joined {
    /// A new flight: the caller starts it with this sender, and waits like everyone else.
    Started(watch::Sender<FlightResult>, watch::Receiver<FlightResult>),
    /// An existing flight: wait for it.
    Joined(watch::Receiver<FlightResult>),
}

/// The backend name of the error a caller gets when a flight ended without an answer.
const BACKEND: &str = "memory-cache";

impl MemoryCache {
    /// A cache over `inner`.
    pub fn new(inner: Arc<dyn SecretSource>, options: MemoryOptions) -> Self {
        let max_entries = options.max_entries.max(1);
        let weight = Weight {
            max_entries: max_entries as u64,
            max_bytes: options.max_bytes.max(1) as u64,
        };
        Self {
            shared: Arc::new(Shared {
                inner,
                entries: quick_cache::sync::Cache::with_weighter(
                    max_entries,
                    max_entries as u64,
                    weight,
                ),
                options,
                flights: Mutex::default(),
                versions: None,
                clock: Clock::system(),
                counters: Counters::default(),
            }),
        }
    }

    /// The state to configure, before the cache is shared with any flight.
    fn configure(&mut self) -> &mut Shared {
        Arc::get_mut(&mut self.shared).expect("a MemoryCache is configured before its first read")
    }

    /// Uses `clock` for entry ages instead of the system's (tests move a manual one).
    ///
    /// # Panics
    /// When called after the cache has started reading (configure it first).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.configure().clock = clock;
        self
    }

    /// Enables the version check on expiry with `versions` (e.g. the Secrets Manager source
    /// under this cache), when [`MemoryOptions::version_check`] is on.
    ///
    /// # Panics
    /// When called after the cache has started reading (configure it first).
    pub fn with_version_check(mut self, versions: Arc<dyn CurrentVersion>) -> Self {
        self.configure().versions = Some(versions);
        self
    }

    /// The counters so far.
    pub fn stats(&self) -> MemoryStats {
        let c = &self.shared.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        MemoryStats {
            hits: load(&c.hits),
            misses: load(&c.misses),
            refreshes: load(&c.refreshes),
            renewed: load(&c.renewed),
            coalesced: load(&c.coalesced),
            stale_served: load(&c.stale_served),
            errors: load(&c.errors),
        }
    }

    /// How many entries the cache holds (fresh or not).
    pub fn len(&self) -> usize {
        self.shared.entries.len()
    }

    /// True when the cache holds no entry.
    pub fn is_empty(&self) -> bool {
        self.shared.entries.is_empty()
    }

    /// Drops the cached entry of `id` at `version`. A backend call for it already in flight
    /// still answers the callers waiting on it, but won't put its value into the cache: the
    /// next read starts a call of its own.
    pub fn invalidate(&self, id: &SecretId, version: &VersionSelector) {
        let mut flights = self.shared.lock_flights();
        flights.remove(&Key::new(id, version));
        self.shared.entries.remove(&KeyRef::new(id, version));
    }

    /// Drops every cached entry; no call in flight will put a value back.
    pub fn invalidate_all(&self) {
        let mut flights = self.shared.lock_flights();
        flights.clear();
        self.shared.entries.clear();
    }

    /// Reads the current version of `ids` into the cache, concurrently (one batch call where
    /// the backend has one), and returns what failed per id. An id with a call already in
    /// flight waits for that call instead; reads that arrive while the prefetch is in flight
    /// wait for it.
    pub async fn prefetch(&self, ids: &[SecretId]) -> Vec<Result<()>> {
        let mut waits = Vec::with_capacity(ids.len());
        let mut batch = Vec::new();
        {
            let mut flights = self.shared.lock_flights();
            for id in ids {
                let key = Key::new(id, &VersionSelector::Current);
                match Shared::join(&mut flights, &key, false) {
                    Joined::Joined(result) => waits.push(result),
                    Joined::Started(sender, result) => {
                        batch.push((id.clone(), key, sender, result.clone()));
                        waits.push(result);
                    }
                }
            }
        }
        if !batch.is_empty() {
            let shared = self.shared.clone();
            tokio::spawn(async move {
                let ids: Vec<SecretId> = batch.iter().map(|(id, ..)| id.clone()).collect();
                let results = shared.inner.get_many(&ids).await;
                for ((_, key, sender, mine), result) in batch.into_iter().zip(results) {
                    shared.land(&key, &mine, sender, result, Landing::Insert);
                }
            });
        }
        let mut out = Vec::with_capacity(ids.len());
        for (id, result) in ids.iter().zip(waits) {
            out.push(wait(result, id).await.map(drop));
        }
        out
    }

    /// The cached secret if a fresh entry holds it, without asking the backend: the hit path
    /// of [`SecretSource::get`], synchronous (no future to box). Counts a hit when it returns
    /// one; a `None` counts nothing.
    pub fn get_fresh(&self, id: &SecretId, version: &VersionSelector) -> Option<Secret> {
        let shared = &self.shared;
        let entry = shared.entries.get(&KeyRef::new(id, version))?;
        if !shared.fresh(&entry, shared.clock.monotonic()) {
            return None;
        }
        bump(&shared.counters.hits);
        Some(entry.secret)
    }

    /// The slow path: joins the key's flight, or starts one in a task of its own, and waits
    /// for its result.
    async fn load(
        &self,
        id: &SecretId,
        version: &VersionSelector,
        refresh: bool,
    ) -> Result<Secret> {
        let key = Key::new(id, version);
        let joined = {
            let mut flights = self.shared.lock_flights();
            Shared::join(&mut flights, &key, refresh)
        };
        let result = match joined {
            Joined::Joined(result) => {
                bump(&self.shared.counters.coalesced);
                result
            }
            Joined::Started(sender, result) => {
                let shared = self.shared.clone();
                let (id, version, mine) = (id.clone(), version.clone(), result.clone());
                tokio::spawn(async move {
                    let (outcome, landing) = if refresh {
                        bump(&shared.counters.refreshes);
                        (shared.inner.refresh(&id, &version).await, Landing::Insert)
                    } else {
                        shared.fetch(&id, &version, &key).await
                    };
                    shared.land(&key, &mine, sender, outcome, landing);
                });
                result
            }
        };
        wait(result, id).await
    }
}

/// The result of the flight `result` belongs to. A flight whose task ended without one (it
/// panicked, or the runtime is shutting down) is a transient failure, never a hang.
async fn wait(mut result: watch::Receiver<FlightResult>, id: &SecretId) -> Result<Secret> {
    match result.wait_for(Option::is_some).await {
        Ok(shared) => shared.clone().unwrap_or_else(|| Err(abandoned(id))),
        Err(_) => Err(abandoned(id)),
    }
}

fn abandoned(id: &SecretId) -> Error {
    Error::from_kind(
        ErrorKind::Transient,
        BACKEND,
        id.as_str(),
        Some("the backend call ended without an answer".into()),
    )
}

impl Shared {
    fn lock_flights(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Flight>> {
        self.flights.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Joins the key's flight, or registers a new one. A refresh joins only a refresh: it
    /// takes the place of a plain read in flight.
    fn join(flights: &mut HashMap<Key, Flight>, key: &Key, refresh: bool) -> Joined {
        if let Some(flight) = flights.get(key)
            && (flight.refresh || !refresh)
        {
            return Joined::Joined(flight.result.clone());
        }
        let (sender, result) = watch::channel(None);
        flights.insert(
            key.clone(),
            Flight {
                result: result.clone(),
                refresh,
            },
        );
        Joined::Started(sender, result)
    }

    fn fresh(&self, entry: &Entry, now: Duration) -> bool {
        now.saturating_sub(entry.fetched_at) < self.options.ttl
    }

    fn servable_stale(&self, entry: &Entry, now: Duration) -> bool {
        now.saturating_sub(entry.fetched_at)
            < self.options.ttl.saturating_add(self.options.stale_for)
    }

    /// Ends the flight `mine` of `key`: when it is still the key's flight, it leaves the map
    /// and its outcome goes into the cache (as `landing` says); a flight that was replaced
    /// (by `invalidate` or a refresh) changes nothing. Every caller that joined it gets
    /// `outcome`.
    fn land(
        &self,
        key: &Key,
        mine: &watch::Receiver<FlightResult>,
        sender: watch::Sender<FlightResult>,
        outcome: Result<Secret>,
        landing: Landing,
    ) {
        {
            let mut flights = self.lock_flights();
            let current = flights
                .get(key)
                .is_some_and(|flight| flight.result.same_channel(mine));
            if current {
                flights.remove(key);
                match (&outcome, landing) {
                    (Ok(secret), Landing::Insert) => {
                        let entry = Entry {
                            secret: secret.clone(),
                            fetched_at: self.clock.monotonic(),
                        };
                        self.entries.insert(key.clone(), entry);
                    }
                    (Err(err), _) if err.kind() == ErrorKind::NotFound => {
                        self.entries.remove(key);
                    }
                    _ => {}
                }
            }
        }
        if outcome.is_err() {
            bump(&self.counters.errors);
        }
        sender.send_replace(Some(outcome));
    }

    /// A plain read's flight: the entry once more (a flight may have just filled it), the
    /// version check, then the backend, with a stale entry served on a retryable failure.
    async fn fetch(
        &self,
        id: &SecretId,
        version: &VersionSelector,
        key: &Key,
    ) -> (Result<Secret>, Landing) {
        let now = self.clock.monotonic();
        let previous = self.entries.get(key);
        if let Some(entry) = previous.as_ref().filter(|e| self.fresh(e, now)) {
            bump(&self.counters.coalesced);
            return (Ok(entry.secret.clone()), Landing::Keep);
        }
        let previous =
            previous.filter(|e| self.servable_stale(e, now) || self.options.version_check);
        if let Some(entry) = &previous {
            if let Some(renewed) = self.renew_if_current(id, version, entry).await {
                return (Ok(renewed), Landing::Insert);
            }
            bump(&self.counters.refreshes);
        } else {
            bump(&self.counters.misses);
        }
        match self.inner.get(id, version).await {
            Err(err) if err.is_retryable() => {
                match previous.filter(|e| self.servable_stale(e, now)) {
                    Some(entry) => {
                        bump(&self.counters.stale_served);
                        tracing::warn!(
                            source = %self.inner,
                            id = %id,
                            error = %err.display_chain(),
                            age_ms = now.saturating_sub(entry.fetched_at).as_millis() as u64,
                            "refresh failed; serving the cached value past its TTL"
                        );
                        (Ok(entry.secret.clone()), Landing::Keep)
                    }
                    None => (Err(err), Landing::Keep),
                }
            }
            result => (result, Landing::Insert),
        }
    }

    /// With the version check on: when the backend's current version is the cached one,
    /// the cached secret, to be kept with a new TTL, without reading the value.
    async fn renew_if_current(
        &self,
        id: &SecretId,
        version: &VersionSelector,
        entry: &Entry,
    ) -> Option<Secret> {
        if !self.options.version_check || *version != VersionSelector::Current {
            return None;
        }
        let versions = self.versions.as_ref()?;
        let cached = entry.secret.version_id()?;
        match versions.current_version(id).await {
            Ok(Some(current)) if current == cached => {
                bump(&self.counters.renewed);
                Some(entry.secret.clone())
            }
            // Changed, unknown, or the check failed: read the value.
            _ => None,
        }
    }
}

#[async_trait]
impl SecretSource for MemoryCache {
    fn identity(&self) -> String {
        self.shared.inner.identity()
    }

    fn identity_of(&self, id: &SecretId) -> String {
        self.shared.inner.identity_of(id)
    }

    fn get_fresh(&self, id: &SecretId, version: &VersionSelector) -> Option<Secret> {
        MemoryCache::get_fresh(self, id, version)
    }

    async fn get(&self, id: &SecretId, version: &VersionSelector) -> Result<Secret> {
        if let Some(secret) = MemoryCache::get_fresh(self, id, version) {
            return Ok(secret);
        }
        self.load(id, version, false).await
    }

    /// Reads from the backend now, past this cache and every layer below, whatever they hold,
    /// and caches the result. Concurrent refreshes of a key share one backend call.
    ///
    /// # Errors
    /// The backend's error (never masked by a stale entry).
    async fn refresh(&self, id: &SecretId, version: &VersionSelector) -> Result<Secret> {
        self.load(id, version, true).await
    }
}

impl fmt::Debug for MemoryCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryCache")
            .field("inner", &self.shared.inner)
            .field("options", &self.shared.options)
            .field("entries", &self.shared.entries.len())
            .field("stats", &self.stats())
            .finish()
    }
}

impl fmt::Display for MemoryCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "memory({})", self.shared.inner)
    }
}
