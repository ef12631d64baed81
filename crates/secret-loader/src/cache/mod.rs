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

use std::hash::Hash;
use std::path::PathBuf;
use std::time::Duration;

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
    /// The directory (`tmp_dir=`, default `$TMPDIR/secret-loader`, i.e. `/tmp/secret-loader`).
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
            dir: std::env::temp_dir().join("secret-loader"),
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

/// A backend that can tell its current version id more cheaply than a full read
/// (Secrets Manager: `DescribeSecret`). Used by [`MemoryCache`]'s version check.
#[async_trait]
pub trait CurrentVersion: Send + Sync {
    /// The id of the current version of `id`, or `None` when unknown.
    async fn current_version(&self, id: &SecretId) -> Result<Option<String>>;
}

/// Time since boot on the kernel's coarse monotonic clock: a few nanoseconds to read (a full
/// `Instant::now()` costs several times that on a cache hit), resolution of a scheduler tick
/// (1 to 4 ms), so TTLs are honoured to within a few milliseconds.
pub(crate) fn coarse_now() -> Duration {
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
