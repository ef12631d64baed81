//! The in-process cache layer.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use tokio::sync::watch;

use crate::cache::{Clock, CurrentVersion, Key, KeyRef};
use crate::error::Result;
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
            stale_for: Duration::ZERO,
            version_check: false,
        }
    }

    /// The option keys of the memory layer (`memory_` in a URL, a `[memory]` table in TOML).
    pub(crate) const KEYS: &'static [&'static str] =
        &["ttl", "max_entries", "stale_for", "version_check"];

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

/// An in-process cache over any [`SecretSource`]: TTL, bounded size, single-flight
/// (concurrent misses on one key make one backend call, and every caller gets that call's
/// result, success or error), bounded stale-on-error, forced refresh, invalidation, prefetch,
/// and optionally a cheap version check on expiry.
///
/// Keyed by id and version selector. A hit is a hash lookup and a reference-count increment.
pub struct MemoryCache {
    inner: Arc<dyn SecretSource>,
    options: MemoryOptions,
    entries: quick_cache::sync::Cache<Key, Entry>,
    /// The backend calls in flight, one per key: the single-flight. Callers that find one
    /// wait for its result instead of calling the backend themselves.
    in_flight: Mutex<HashMap<Key, watch::Receiver<FlightResult>>>,
    versions: Option<Arc<dyn CurrentVersion>>,
    clock: Clock,
    counters: Counters,
}

/// What a caller does about a key without a fresh entry.
enum Role {
    /// Nobody is asking the backend: this caller does, and hands the result to the others.
    Lead(watch::Sender<FlightResult>, watch::Receiver<FlightResult>),
    /// A call is in flight: wait for its result.
    Follow(watch::Receiver<FlightResult>),
}

impl MemoryCache {
    /// A cache over `inner`.
    pub fn new(inner: Arc<dyn SecretSource>, options: MemoryOptions) -> Self {
        Self {
            inner,
            entries: quick_cache::sync::Cache::new(options.max_entries.max(1)),
            options,
            in_flight: Mutex::default(),
            versions: None,
            clock: Clock::system(),
            counters: Counters::default(),
        }
    }

    /// Uses `clock` for entry ages instead of the system's (tests move a manual one).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Enables the version check on expiry with `versions` (e.g. the Secrets Manager source
    /// under this cache), when [`MemoryOptions::version_check`] is on.
    pub fn with_version_check(mut self, versions: Arc<dyn CurrentVersion>) -> Self {
        self.versions = Some(versions);
        self
    }

    /// The counters so far.
    pub fn stats(&self) -> MemoryStats {
        let c = &self.counters;
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
        self.entries.len()
    }

    /// True when the cache holds no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Reads from the backend now, whatever the cache holds, and caches the result. A call
    /// already in flight for the key is waited for first, not taken as this one's answer.
    ///
    /// # Errors
    /// The backend's error (never masked by a stale entry).
    pub async fn refresh(&self, id: &SecretId, version: &VersionSelector) -> Result<Secret> {
        let key = Key::new(id, version);
        loop {
            match self.join_or_lead(&key) {
                Role::Follow(mut flight) => {
                    let _ = flight.wait_for(Option::is_some).await;
                }
                Role::Lead(result, mine) => {
                    let _flight = FlightGuard::new(self, &key, mine);
                    bump(&self.counters.refreshes);
                    let fetched = self.inner.get(id, version).await;
                    return self.land(&key, result, self.store(key.clone(), fetched));
                }
            }
        }
    }

    /// Drops the cached entry of `id` at `version`.
    pub fn invalidate(&self, id: &SecretId, version: &VersionSelector) {
        self.entries.remove(&KeyRef::new(id, version));
    }

    /// Drops every cached entry.
    pub fn invalidate_all(&self) {
        self.entries.clear();
    }

    /// Reads the current version of `ids` into the cache, concurrently (one batch call where
    /// the backend has one), and returns what failed per id.
    pub async fn prefetch(&self, ids: &[SecretId]) -> Vec<Result<()>> {
        let results = self.inner.get_many(ids).await;
        ids.iter()
            .zip(results)
            .map(|(id, result)| {
                self.store(Key::new(id, &VersionSelector::Current), result)
                    .map(drop)
            })
            .collect()
    }

    fn fresh(&self, entry: &Entry, now: Duration) -> bool {
        now.saturating_sub(entry.fetched_at) < self.options.ttl
    }

    fn servable_stale(&self, entry: &Entry, now: Duration) -> bool {
        now.saturating_sub(entry.fetched_at)
            < self.options.ttl.saturating_add(self.options.stale_for)
    }

    /// The cached secret if a fresh entry holds it, without asking the backend: the hit path
    /// of [`SecretSource::get`], synchronous (no future to box). Counts a hit when it returns
    /// one; a `None` counts nothing.
    pub fn get_fresh(&self, id: &SecretId, version: &VersionSelector) -> Option<Secret> {
        let entry = self.entries.get(&KeyRef::new(id, version))?;
        if !self.fresh(&entry, self.clock.monotonic()) {
            return None;
        }
        bump(&self.counters.hits);
        Some(entry.secret)
    }

    /// Joins the backend call in flight for `key`, or starts one.
    fn join_or_lead(&self, key: &Key) -> Role {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(flight) = in_flight.get(key) {
            return Role::Follow(flight.clone());
        }
        let (result, flight) = watch::channel(None);
        in_flight.insert(key.clone(), flight.clone());
        Role::Lead(result, flight)
    }

    /// Ends the leader's flight: no new caller joins it from here on (the next one starts a
    /// flight of its own), and every caller that joined gets `outcome`.
    fn land(
        &self,
        key: &Key,
        result: watch::Sender<FlightResult>,
        outcome: Result<Secret>,
    ) -> Result<Secret> {
        self.forget_flight(key, &result.subscribe());
        result.send_replace(Some(outcome.clone()));
        outcome
    }

    /// Removes `flight` from the in-flight map, if it is still the key's flight.
    fn forget_flight(&self, key: &Key, flight: &watch::Receiver<FlightResult>) {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if in_flight
            .get(key)
            .is_some_and(|current| current.same_channel(flight))
        {
            in_flight.remove(key);
        }
    }

    fn store(&self, key: Key, result: Result<Secret>) -> Result<Secret> {
        match result {
            Ok(secret) => {
                let entry = Entry {
                    secret: secret.clone(),
                    fetched_at: self.clock.monotonic(),
                };
                self.entries.insert(key, entry);
                Ok(secret)
            }
            Err(err) => {
                bump(&self.counters.errors);
                if err.kind() == crate::ErrorKind::NotFound {
                    self.entries.remove(&key);
                }
                Err(err)
            }
        }
    }

    /// The slow path: no fresh entry. One caller per key asks the backend; the others wait
    /// for that call and share its result, error included. When the leader is cancelled
    /// before it has a result, its followers start over (one of them leads).
    async fn load(&self, id: &SecretId, version: &VersionSelector, key: Key) -> Result<Secret> {
        loop {
            match self.join_or_lead(&key) {
                Role::Follow(mut flight) => {
                    if let Ok(shared) = flight.wait_for(Option::is_some).await
                        && let Some(outcome) = shared.clone()
                    {
                        bump(&self.counters.coalesced);
                        return outcome;
                    }
                    // The leader was cancelled: try again.
                }
                Role::Lead(result, mine) => {
                    let _flight = FlightGuard::new(self, &key, mine);
                    let outcome = self.fetch(id, version, &key).await;
                    return self.land(&key, result, outcome);
                }
            }
        }
    }

    /// The leader's work: the entry once more (a flight may have just filled it), the version
    /// check, then the backend, with a stale entry served on a retryable failure.
    async fn fetch(&self, id: &SecretId, version: &VersionSelector, key: &Key) -> Result<Secret> {
        let now = self.clock.monotonic();
        let previous = self.entries.get(key);
        if let Some(entry) = previous.as_ref().filter(|e| self.fresh(e, now)) {
            bump(&self.counters.coalesced);
            return Ok(entry.secret.clone());
        }
        let previous =
            previous.filter(|e| self.servable_stale(e, now) || self.options.version_check);
        if let Some(entry) = &previous {
            if let Some(renewed) = self.renew_if_current(id, version, key, entry).await {
                return Ok(renewed);
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
                        Ok(entry.secret.clone())
                    }
                    None => self.store(key.clone(), Err(err)),
                }
            }
            result => self.store(key.clone(), result),
        }
    }

    /// With the version check on: when the backend's current version is the cached one,
    /// restart the entry's TTL without reading the value.
    async fn renew_if_current(
        &self,
        id: &SecretId,
        version: &VersionSelector,
        key: &Key,
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
                let renewed = Entry {
                    secret: entry.secret.clone(),
                    fetched_at: self.clock.monotonic(),
                };
                self.entries.insert(key.clone(), renewed);
                Some(entry.secret.clone())
            }
            // Changed, unknown, or the check failed: read the value.
            _ => None,
        }
    }
}

/// A leader's hold on its flight: when the leader is dropped before it lands (its caller
/// cancelled), the flight is forgotten, so its followers (whose result channel closes) and
/// later callers start a new one instead of waiting on nothing.
struct FlightGuard<'a> {
    cache: &'a MemoryCache,
    key: &'a Key,
    flight: watch::Receiver<FlightResult>,
}

impl<'a> FlightGuard<'a> {
    fn new(cache: &'a MemoryCache, key: &'a Key, flight: watch::Receiver<FlightResult>) -> Self {
        Self { cache, key, flight }
    }
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        self.cache.forget_flight(self.key, &self.flight);
    }
}

#[async_trait]
impl SecretSource for MemoryCache {
    fn identity(&self) -> String {
        self.inner.identity()
    }

    async fn get(&self, id: &SecretId, version: &VersionSelector) -> Result<Secret> {
        if let Some(secret) = self.get_fresh(id, version) {
            return Ok(secret);
        }
        self.load(id, version, Key::new(id, version)).await
    }
}

impl fmt::Debug for MemoryCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryCache")
            .field("inner", &self.inner)
            .field("options", &self.options)
            .field("entries", &self.entries.len())
            .field("stats", &self.stats())
            .finish()
    }
}

impl fmt::Display for MemoryCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "memory({})", self.inner)
    }
}
