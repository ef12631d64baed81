//! Cache layers over any [`SecretSource`](crate::SecretSource): [`MemoryCache`] (in-process)
//! and [`TmpCache`] (files under `/tmp` that outlive the process).
//!
//! They stack outermost first: `memory → tmp → backend`. A read asks the memory cache; a
//! miss there asks the `/tmp` cache; a miss there asks the backend, and each layer keeps what
//! it got on the way back.
//!
//! | layer | a hit costs | survives |
//! | --- | --- | --- |
//! | memory | a hash lookup | nothing: per process |
//! | /tmp, encrypted (default) | a file read + 1 KMS `Decrypt` | restarts in the same sandbox/host |
//! | /tmp, plaintext (opt-in) | a file read | restarts; the value sits unencrypted on disk |

use std::fmt;
use std::hash::Hash;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use crate::error::Result;
use crate::id::SecretId;
use crate::options::{Options, parse_bool, parse_duration};
use crate::value::VersionSelector;

mod memory;
#[cfg(feature = "kms")]
mod tmp;

pub use memory::{MemoryCache, MemoryOptions, MemoryStats};
#[cfg(feature = "kms")]
pub use tmp::{TmpAtRest, TmpCache, TmpStats};

/// Options of a `TmpCache`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TmpOptions {
    /// The directory (`tmp_dir=`); by default one per user: `$XDG_RUNTIME_DIR/secret-loader`
    /// where that is set, else `$TMPDIR/secret-loader-<uid>` (`/tmp/secret-loader-993` in
    /// Lambda), so one user's directory can't stop another user's program.
    pub dir: PathBuf,
    /// How long an entry is valid (`tmp_ttl=`); the expiry is stored in the entry.
    pub ttl: Duration,
    /// Keep entries in the clear (`tmp_plaintext=true`); otherwise they are envelopes.
    pub plaintext: bool,
    /// KMS key for encrypted entries (`tmp_kms_key_id=`; default the source's `kms_key_id`).
    pub kms_key_id: Option<String>,
}

impl TmpOptions {
    /// Options with this TTL, the default directory, encrypted at rest.
    pub fn new(ttl: Duration) -> Self {
        Self {
            dir: default_tmp_dir(),
            ttl,
            plaintext: false,
            kms_key_id: None,
        }
    }

    /// The option keys of the `/tmp` layer (`tmp_` in a URL, a `[tmp]` table in TOML).
    pub(crate) const KEYS: &'static [&'static str] = &["ttl", "dir", "plaintext", "kms_key_id"];

    /// The `/tmp` layer's options, from its keys (prefix removed); `None` when none is given.
    ///
    /// # Errors
    /// [`InvalidConfig`](crate::Error::InvalidConfig) for a bad or unknown key, or keys without
    /// `ttl`.
    pub(crate) fn from_options(mut options: Options) -> Result<Option<Self>> {
        let Some(ttl) = options.take_switch("ttl", parse_duration)? else {
            return Ok(None);
        };
        let mut tmp = Self::new(ttl);
        if let Some(dir) = options.take("dir") {
            tmp.dir = PathBuf::from(dir);
        }
        if let Some(plaintext) = options.take_with("plaintext", parse_bool)? {
            tmp.plaintext = plaintext;
        }
        tmp.kms_key_id = options.take("kms_key_id");
        let valid = options.names(Self::KEYS);
        options.finish("", &valid)?;
        Ok(Some(tmp))
    }
}

/// This user's default cache directory: see [`TmpOptions::dir`].
fn default_tmp_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        Some(runtime) if runtime.is_absolute() => runtime.join("secret-loader"),
        _ => std::env::temp_dir().join(format!(
            "secret-loader-{}",
            rustix::process::geteuid().as_raw()
        )),
    }
}

/// A backend that can tell its current version id more cheaply than a full read
/// (Secrets Manager: `DescribeSecret`). Used by [`MemoryCache`]'s version check.
#[async_trait]
pub trait CurrentVersion: Send + Sync {
    /// The id of the current version of `id`, or `None` when unknown.
    async fn current_version(&self, id: &SecretId) -> Result<Option<String>>;
}

/// The time source of the cache layers: the system's clocks (the default), or a clock a test
/// moves by hand ([`Clock::manual`], [`Clock::advance`]), so TTL, stale and expiry behaviour
/// can be tested instantly and exactly.
#[derive(Clone, Default)]
pub struct Clock {
    manual: Option<Arc<ManualTime>>,
}

/// A hand-moved clock's offsets: nanoseconds past its start, on both clocks at once.
struct ManualTime {
    elapsed_nanos: AtomicU64,
    #[cfg_attr(not(feature = "kms"), allow(dead_code))]
    wall_start: SystemTime,
}

/// Where a manual clock's monotonic time starts: far enough from zero that nothing computed
/// as `now - age` underflows.
const MANUAL_MONOTONIC_START: Duration = Duration::from_secs(3600);

impl Clock {
    /// The system's clocks: the kernel's coarse monotonic clock for ages, the wall clock for
    /// expiry times written to disk.
    pub fn system() -> Self {
        Self::default()
    }

    /// A clock that stands still until [`Clock::advance`] moves it; its wall time starts at
    /// the system's current time.
    pub fn manual() -> Self {
        Self {
            manual: Some(Arc::new(ManualTime {
                elapsed_nanos: AtomicU64::new(0),
                wall_start: SystemTime::now(),
            })),
        }
    }

    /// Moves a manual clock (and every layer sharing it) forward by `by`. The system clock
    /// can't be moved: there it does nothing.
    pub fn advance(&self, by: Duration) {
        if let Some(manual) = &self.manual {
            let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
            manual.elapsed_nanos.fetch_add(nanos, Ordering::Relaxed);
        }
    }

    /// Monotonic time, for ages of entries in memory.
    pub(crate) fn monotonic(&self) -> Duration {
        match &self.manual {
            None => coarse_now(),
            Some(manual) => MANUAL_MONOTONIC_START.saturating_add(manual.elapsed()),
        }
    }

    /// Wall time in milliseconds since the Unix epoch, for expiry times written to disk.
    #[cfg_attr(not(feature = "kms"), allow(dead_code))]
    pub(crate) fn wall_ms(&self) -> u64 {
        let now = match &self.manual {
            None => SystemTime::now(),
            Some(manual) => manual.wall_start + manual.elapsed(),
        };
        now.duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

impl ManualTime {
    fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.elapsed_nanos.load(Ordering::Relaxed))
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.manual {
            None => f.write_str("Clock::System"),
            Some(manual) => write!(f, "Clock::Manual(+{:?})", manual.elapsed()),
        }
    }
}

/// Time since boot on the kernel's coarse monotonic clock: a few nanoseconds to read (a full
/// `Instant::now()` costs several times that on a cache hit), resolution of a scheduler tick
/// (1 to 4 ms), so TTLs are honoured to within a few milliseconds.
fn coarse_now() -> Duration {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let clock = rustix::time::ClockId::MonotonicCoarse;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let clock = rustix::time::ClockId::Monotonic;
    let now = rustix::time::clock_gettime(clock);
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// A cache key: id and version selector.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    id: SecretId,
    version: VersionSelector,
}

impl Key {
    pub(crate) fn new(id: &SecretId, version: &VersionSelector) -> Self {
        Self {
            id: id.clone(),
            version: version.clone(),
        }
    }
}

/// A borrowed [`Key`], for lookups without copying the id. Hashes exactly as `Key` does.
#[derive(Hash)]
pub(crate) struct KeyRef<'a> {
    id: &'a SecretId,
    version: &'a VersionSelector,
}

impl<'a> KeyRef<'a> {
    pub(crate) fn new(id: &'a SecretId, version: &'a VersionSelector) -> Self {
        Self { id, version }
    }
}

impl quick_cache::Equivalent<Key> for KeyRef<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        self.id == &key.id && self.version == &key.version
    }
}
