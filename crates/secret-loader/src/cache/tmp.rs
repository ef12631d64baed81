//! The `/tmp` cache layer: entries in files that outlive the process.

use std::fmt;
use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::beneath::Dir;
use crate::cache::{Clock, TmpOptions};
use crate::envelope::Envelope;
use crate::error::{Error, Result};
use crate::id::SecretId;
use crate::source::SecretSource;
use crate::value::{Secret, SecretValue, VersionSelector};

/// The backend name of values served from `/tmp` entries (and the envelope context's).
pub(crate) const BACKEND: &str = "tmp-cache";
/// Format 2: written and expiry times, entry-bound checksums, the source's metadata.
const MAGIC: &[u8; 6] = b"SLTMP\x02";
const MODE_PLAINTEXT: u8 = b'P';
const MODE_ENCRYPTED: u8 = b'E';
/// Encryption-context key binding an encrypted entry's expiry.
const CONTEXT_EXPIRES: &str = "secret-loader:expires";
/// Encryption-context key binding when an encrypted entry was written.
const CONTEXT_WRITTEN: &str = "secret-loader:written";
/// `MAGIC | mode | written ms | expires ms` (big-endian milliseconds since the Unix epoch).
const HEADER_LEN: usize = MAGIC.len() + 1 + 8 + 8;
const MAX_ENTRY_BYTES: u64 = 1024 * 1024;

/// How entries are kept at rest.
#[derive(Clone)]
pub enum TmpAtRest {
    /// Sealed with this envelope (the default): a hit costs one KMS `Decrypt`.
    Encrypted(Arc<Envelope>),
    /// In the clear (explicit opt-in): anyone who can read the file as this user, or the disk,
    /// reads the secret. Entries are 0600 in a 0700 directory.
    Plaintext,
}

impl fmt::Debug for TmpAtRest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Encrypted(envelope) => f.debug_tuple("Encrypted").field(envelope).finish(),
            Self::Plaintext => f.write_str("Plaintext"),
        }
    }
}

/// What a [`TmpCache`] has done, counted in every build.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TmpStats {
    /// Answered from an entry.
    pub hits: u64,
    /// No entry: the backend was asked.
    pub misses: u64,
    /// The entry had expired: the backend was asked.
    pub expired: u64,
    /// The entry was corrupt, truncated, foreign (other owner, loose permissions, other mode)
    /// or failed to open: ignored, the backend was asked, the entry replaced.
    pub rejected: u64,
    /// Entries that could not be written (the value was still returned).
    pub write_errors: u64,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    expired: AtomicU64,
    rejected: AtomicU64,
    write_errors: AtomicU64,
}

/// A cache of entries in files over any [`SecretSource`], for reuse after a restart in the
/// same sandbox (a Lambda execution environment's `/tmp`) or by other processes of the same
/// user on the host.
///
/// * One file per entry, named by the SHA-256 of the source, id and version (no id appears
///   in a file name), written to a temporary file (0600, `O_EXCL`) and renamed into place, so
///   readers never see a torn entry. The directory is created 0700; one owned by another user,
///   writable by group or others, or a symlink, is refused.
/// * The source is named by its [identity](SecretSource::identity) (service, region, endpoint,
///   profile, bucket, root, key), not by how it prints, so two sources never share entries.
/// * When it was written and when it expires are in the entry; an entry is served until the
///   earlier of its expiry and its write time plus the TTL now configured. Expired, corrupt,
///   truncated or foreign entries, and entries moved to another entry's file, are ignored and
///   replaced, never trusted.
/// * Encrypted at rest by default (an envelope whose context binds the entry name, its write
///   time and its expiry); plaintext only by explicit opt-in (a checksum over the entry name
///   and contents binds it to its id).
/// * A hit carries what the miss did: the backend's name, the version id and the stages.
pub struct TmpCache {
    inner: Arc<dyn SecretSource>,
    dir: PathBuf,
    ttl: Duration,
    at_rest: TmpAtRest,
    clock: Clock,
    counters: Counters,
}

impl TmpCache {
    /// A cache over `inner` in `options.dir`, creating the directory (0700) if needed, and
    /// removing, in the background, expired entries and temporary files that writers left
    /// behind.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when the directory can't be used (see [`TmpCache::check_dir`]),
    /// or when `options.plaintext` is off and `at_rest` is [`TmpAtRest::Plaintext`] (or the
    /// reverse). A configured stack turns the layer off with a warning instead.
    pub fn new(
        inner: Arc<dyn SecretSource>,
        options: &TmpOptions,
        at_rest: TmpAtRest,
    ) -> Result<Self> {
        if options.plaintext != matches!(at_rest, TmpAtRest::Plaintext) {
            return Err(Error::invalid_config(
                "tmp cache: `tmp_plaintext` and the at-rest mode disagree",
            ));
        }
        Self::check_dir(&options.dir)?;
        Ok(Self::in_checked_dir(inner, options, at_rest))
    }

    /// [`TmpCache::new`] in a directory [`TmpCache::check_dir`] has just accepted, with an
    /// at-rest mode that agrees with `options` (a stack built from configuration checks the
    /// directory before it asks KMS for the sealing key, and not twice).
    pub(crate) fn in_checked_dir(
        inner: Arc<dyn SecretSource>,
        options: &TmpOptions,
        at_rest: TmpAtRest,
    ) -> Self {
        let cache = Self {
            inner,
            dir: options.dir.clone(),
            ttl: options.ttl,
            at_rest,
            clock: Clock::system(),
            counters: Counters::default(),
        };
        cache.sweep_in_background();
        cache
    }

    /// Creates `dir` (0700, parents too) if needed and checks that only this user can change
    /// what is in it: every parent owned by root or by this user and, when others may write
    /// to it, sticky (as `/tmp` is); the directory itself a real directory (no symlink), owned
    /// by this user, writable, and 0700 (a looser mode on our own directory is tightened).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] saying which check failed.
    pub fn check_dir(dir: &Path) -> Result<()> {
        let invalid = |what: String| {
            Error::invalid_config(format!("tmp cache directory {}: {what}", dir.display()))
        };
        let me = rustix::process::geteuid().as_raw();
        let absolute = std::path::absolute(dir).map_err(|e| invalid(e.to_string()))?;
        for parent in absolute.ancestors().skip(1) {
            let Ok(meta) = fs::metadata(parent) else {
                continue; // created below, 0700 and ours
            };
            if meta.uid() != 0 && meta.uid() != me {
                return Err(invalid(format!(
                    "its parent {} is owned by uid {}, who could replace it",
                    parent.display(),
                    meta.uid()
                )));
            }
            if meta.mode() & 0o022 != 0 && meta.mode() & 0o1000 == 0 {
                return Err(invalid(format!(
                    "its parent {} is writable by others and not sticky (mode {:o})",
                    parent.display(),
                    meta.mode() & 0o7777
                )));
            }
        }
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| invalid(e.to_string()))?;
        let meta = fs::symlink_metadata(dir).map_err(|e| invalid(e.to_string()))?;
        if !meta.is_dir() {
            return Err(invalid("is not a directory (a symlink?)".into()));
        }
        if meta.uid() != me {
            return Err(invalid(format!(
                "is owned by uid {}, not by this user (uid {me})",
                meta.uid()
            )));
        }
        if meta.mode() & 0o077 != 0 {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|e| {
                invalid(format!(
                    "is open to group or others (mode {:o}) and can't be made 0700: {e}",
                    meta.mode() & 0o777
                ))
            })?;
        }
        rustix::fs::access(dir, rustix::fs::Access::WRITE_OK)
            .map_err(|e| invalid(format!("is not writable: {e}")))?;
        Ok(())
    }

    /// Removes expired entries and temporary files older than a minute (a writer that died
    /// between writing and renaming), on a blocking thread, once per cache.
    fn sweep_in_background(&self) {
        let (dir, now) = (self.dir.clone(), self.clock.wall_ms());
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn_blocking(move || {
            let removed = sweep(&dir, now);
            if removed > 0 {
                tracing::debug!(dir = %dir.display(), removed, "removed expired tmp cache files");
            }
        });
    }

    /// Uses `clock` for write and expiry times instead of the system's (tests move a manual
    /// one).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The counters so far.
    pub fn stats(&self) -> TmpStats {
        let c = &self.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        TmpStats {
            hits: load(&c.hits),
            misses: load(&c.misses),
            expired: load(&c.expired),
            rejected: load(&c.rejected),
            write_errors: load(&c.write_errors),
        }
    }

    /// The file holding the entry of `id` at `version` (for tests that tamper with it).
    #[cfg(any(test, feature = "testing"))]
    pub fn entry_path(&self, id: &SecretId, version: &VersionSelector) -> PathBuf {
        self.dir.join(self.entry_name(id, version))
    }

    /// The entry's file name: a hash of everything that selects its value (the source's
    /// identity, the id, the version) and of how it is kept (plaintext, or the key that seals
    /// it), so two processes that keep entries differently don't replace each other's.
    fn entry_name(&self, id: &SecretId, version: &VersionSelector) -> String {
        let at_rest = match &self.at_rest {
            TmpAtRest::Plaintext => "plaintext".to_owned(),
            TmpAtRest::Encrypted(envelope) => format!("sealed:{}", envelope.key_label()),
        };
        let mut hash = Sha256::new();
        for part in [
            self.inner.identity_of(id),
            id.to_string(),
            version.to_string(),
            at_rest,
        ] {
            hash.update(part.as_bytes());
            hash.update([0]);
        }
        hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The cached secret, if a valid unexpired entry holds it.
    async fn read_entry(&self, id: &SecretId, version: &VersionSelector) -> Option<Secret> {
        let name = self.entry_name(id, version);
        let path = self.dir.join(&name);
        let bytes = match tokio::task::spawn_blocking(move || read_own_file(&path)).await {
            Ok(Ok(Some(bytes))) => bytes,
            Ok(Ok(None)) => {
                bump(&self.counters.misses);
                return None;
            }
            Ok(Err(reason)) => return self.reject(id, reason),
            Err(_) => return self.reject(id, "the read task failed"),
        };
        let Some((mode, written_ms, expires_ms)) = parse_header(&bytes) else {
            return self.reject(id, "not an entry of this format");
        };
        // The earlier of the expiry written with the entry and the TTL configured now; an
        // entry written "after" now (the wall clock went back) has no known age: expired.
        let now = self.clock.wall_ms();
        if now < written_ms || now >= expires_ms.min(written_ms.saturating_add(millis(self.ttl))) {
            bump(&self.counters.expired);
            return None;
        }
        let body = &bytes[HEADER_LEN..];
        let payload = match (&self.at_rest, mode) {
            (TmpAtRest::Plaintext, MODE_PLAINTEXT) => {
                let Some(split) = body.len().checked_sub(32) else {
                    return self.reject(id, "truncated");
                };
                let (payload, digest) = body.split_at(split);
                if plaintext_digest(&name, &bytes[..HEADER_LEN + split]).as_slice() != digest {
                    return self.reject(id, "checksum mismatch (corrupt, or another entry's)");
                }
                Zeroizing::new(payload.to_vec())
            }
            (TmpAtRest::Encrypted(envelope), MODE_ENCRYPTED) => {
                let (written, expires) = (written_ms.to_string(), expires_ms.to_string());
                let entry_id = SecretId::new(name).ok()?;
                match envelope
                    .open_with_context(
                        BACKEND,
                        &entry_id,
                        body.to_vec(),
                        &[(CONTEXT_WRITTEN, &written), (CONTEXT_EXPIRES, &expires)],
                    )
                    .await
                {
                    Ok(value) => Zeroizing::new(value.expose_bytes().to_vec()),
                    Err(err) if err.is_retryable() => {
                        tracing::debug!(id = %id, error = %err.display_chain(), "tmp entry not opened now");
                        bump(&self.counters.misses);
                        return None;
                    }
                    Err(_) => return self.reject(id, "the envelope does not open"),
                }
            }
            _ => return self.reject(id, "written in the other at-rest mode"),
        };
        match decode_payload(&payload) {
            Some(decoded) => {
                bump(&self.counters.hits);
                Some(
                    Secret::new(id.clone(), decoded.backend, decoded.value)
                        .with_version_id(decoded.version_id)
                        .with_version_stages(decoded.stages),
                )
            }
            None => self.reject(id, "malformed payload"),
        }
    }

    fn reject(&self, id: &SecretId, reason: &str) -> Option<Secret> {
        bump(&self.counters.rejected);
        tracing::warn!(id = %id, reason, "ignoring a tmp cache entry");
        None
    }

    async fn write_entry(&self, id: &SecretId, version: &VersionSelector, secret: &Secret) {
        let name = self.entry_name(id, version);
        let written_ms = self.clock.wall_ms();
        let expires_ms = written_ms.saturating_add(millis(self.ttl));
        let payload = encode_payload(secret);
        let mut bytes = Zeroizing::new(Vec::with_capacity(HEADER_LEN + payload.len() + 64));
        bytes.extend_from_slice(MAGIC);
        match &self.at_rest {
            TmpAtRest::Plaintext => {
                bytes.push(MODE_PLAINTEXT);
                bytes.extend_from_slice(&written_ms.to_be_bytes());
                bytes.extend_from_slice(&expires_ms.to_be_bytes());
                bytes.extend_from_slice(&payload);
                let digest = plaintext_digest(&name, &bytes);
                bytes.extend_from_slice(&digest);
            }
            TmpAtRest::Encrypted(envelope) => {
                bytes.push(MODE_ENCRYPTED);
                bytes.extend_from_slice(&written_ms.to_be_bytes());
                bytes.extend_from_slice(&expires_ms.to_be_bytes());
                let (written, expires) = (written_ms.to_string(), expires_ms.to_string());
                let Ok(entry_id) = SecretId::new(name.clone()) else {
                    return;
                };
                let sealed = envelope
                    .seal_with_context(
                        BACKEND,
                        &entry_id,
                        &SecretValue::binary(payload.to_vec()),
                        &[(CONTEXT_WRITTEN, &written), (CONTEXT_EXPIRES, &expires)],
                    )
                    .await;
                match sealed {
                    Ok(sealed) => bytes.extend_from_slice(&sealed),
                    Err(err) => return self.write_failed(id, &err.display_chain().to_string()),
                }
            }
        }
        if bytes.len() as u64 > MAX_ENTRY_BYTES {
            // The reader would refuse it: don't write what can only be a miss.
            return self.write_failed(id, "the entry is over the size a reader accepts");
        }
        let dir = self.dir.clone();
        // No fsync: after a crash a lost or torn entry is only a miss.
        let write = move || Dir::open(&dir)?.replace(&name, &bytes, false);
        match tokio::task::spawn_blocking(write).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => self.write_failed(id, &err.to_string()),
            Err(err) => self.write_failed(id, &err.to_string()),
        }
    }

    /// Writes what the backend answered; a secret the backend no longer has loses its entry.
    async fn keep(
        &self,
        id: &SecretId,
        version: &VersionSelector,
        fetched: Result<Secret>,
    ) -> Result<Secret> {
        match fetched {
            Ok(secret) => {
                self.write_entry(id, version, &secret).await;
                Ok(secret)
            }
            Err(err) => {
                if err.kind() == crate::ErrorKind::NotFound {
                    let (dir, name) = (self.dir.clone(), self.entry_name(id, version));
                    let remove = move || Dir::open(&dir)?.remove_file(&name);
                    let _ = tokio::task::spawn_blocking(remove).await;
                }
                Err(err)
            }
        }
    }

    fn write_failed(&self, id: &SecretId, error: &str) {
        bump(&self.counters.write_errors);
        tracing::warn!(id = %id, error, "could not write a tmp cache entry");
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// A duration in whole milliseconds, saturating (a TTL of a thousand years does not wrap).
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The checksum of a plaintext entry: over its file name (so an entry copied to another id's
/// file is refused) and its header and payload.
fn plaintext_digest(name: &str, contents: &[u8]) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(name.as_bytes());
    hash.update([0]);
    hash.update(contents);
    hash.finalize().into()
}

/// What a hit returns besides the id: as the backend gave it on the miss.
struct Decoded {
    value: SecretValue,
    backend: &'static str,
    version_id: Option<String>,
    stages: Vec<String>,
}

/// The backend names this crate's sources give, as the `&'static str` a [`Secret`] holds;
/// a name it doesn't know reads back as this layer's own.
fn known_backend(name: &str) -> &'static str {
    match name {
        "secretsmanager" => "secretsmanager",
        "s3+kms" => "s3+kms",
        "s3+sse-kms" => "s3+sse-kms",
        "file+kms" => "file+kms",
        "memory" => "memory",
        _ => BACKEND,
    }
}

/// `kind (0 text, 1 binary) | version id (u16 length, bytes) | backend (u8 length, bytes) |
/// stage count (u8) | each stage (u8 length, bytes) | value`.
fn encode_payload(secret: &Secret) -> Zeroizing<Vec<u8>> {
    fn short(text: &str) -> &[u8] {
        &text.as_bytes()[..text.len().min(u8::MAX as usize)]
    }
    let value = secret.value();
    let version = secret.version_id().unwrap_or_default().as_bytes();
    let version = &version[..version.len().min(u16::MAX as usize)];
    let mut out = Zeroizing::new(Vec::with_capacity(64 + version.len() + value.len()));
    out.push(u8::from(!value.is_text()));
    out.extend_from_slice(&(version.len() as u16).to_be_bytes());
    out.extend_from_slice(version);
    let backend = short(secret.backend());
    out.push(backend.len() as u8);
    out.extend_from_slice(backend);
    let stages = secret.version_stages();
    let stages = &stages[..stages.len().min(u8::MAX as usize)];
    out.push(stages.len() as u8);
    for stage in stages {
        let stage = short(stage);
        out.push(stage.len() as u8);
        out.extend_from_slice(stage);
    }
    out.extend_from_slice(value.expose_bytes());
    out
}

fn decode_payload(payload: &[u8]) -> Option<Decoded> {
    fn text(bytes: &[u8]) -> Option<&str> {
        std::str::from_utf8(bytes).ok()
    }
    fn short(rest: &[u8]) -> Option<(&str, &[u8])> {
        let (&len, rest) = rest.split_first()?;
        let (bytes, rest) = rest.split_at_checked(len as usize)?;
        Some((text(bytes)?, rest))
    }
    let (&kind, rest) = payload.split_first()?;
    let (len, rest) = rest.split_first_chunk::<2>()?;
    let (version, rest) = rest.split_at_checked(u16::from_be_bytes(*len) as usize)?;
    let version = text(version)?;
    let (backend, rest) = short(rest)?;
    let (&count, mut rest) = rest.split_first()?;
    let mut stages = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let (stage, after) = short(rest)?;
        stages.push(stage.to_owned());
        rest = after;
    }
    let value = match kind {
        0 => SecretValue::text(text(rest)?),
        1 => SecretValue::binary(rest),
        _ => return None,
    };
    Some(Decoded {
        value,
        backend: known_backend(backend),
        version_id: (!version.is_empty()).then(|| version.to_owned()),
        stages,
    })
}

/// How old a writer's temporary file must be before a sweep takes it for a leftover.
const LEFTOVER_AFTER: Duration = Duration::from_secs(60);

/// Removes, from `dir`, entries that expired before `now_ms` (by the expiry in their header,
/// which needs no key) and temporary files older than [`LEFTOVER_AFTER`]; only regular files
/// owned by this user. Returns how many it removed. A file replaced between the check and the
/// removal costs its next reader a miss, nothing more.
fn sweep(dir: &Path, now_ms: u64) -> usize {
    let Ok(listing) = fs::read_dir(dir) else {
        return 0;
    };
    let Ok(handle) = Dir::open(dir) else {
        return 0;
    };
    let me = rustix::process::geteuid().as_raw();
    let mut removed = 0;
    for item in listing.flatten() {
        let name = item.file_name();
        let Some(name) = name.to_str() else { continue };
        let Ok(meta) = item.metadata() else { continue };
        if !meta.is_file() || meta.uid() != me {
            continue;
        }
        let stale = if name.starts_with('.') && name.ends_with(".tmp") {
            meta.modified()
                .ok()
                .and_then(|modified| modified.elapsed().ok())
                .is_some_and(|age| age > LEFTOVER_AFTER)
        } else if name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
            expired_on_disk(&dir.join(name), now_ms)
        } else {
            false
        };
        if stale && handle.remove_file(name).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// True when the file at `path` is an entry whose stored expiry is before `now_ms`.
fn expired_on_disk(path: &Path, now_ms: u64) -> bool {
    let mut header = [0u8; HEADER_LEN];
    let read = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .and_then(|mut file| file.read_exact(&mut header));
    read.is_ok() && parse_header(&header).is_some_and(|(_, _, expires)| now_ms >= expires)
}

/// The header of an entry of this format: at-rest mode, written and expiry times (ms since
/// the Unix epoch); `None` for anything else.
fn parse_header(bytes: &[u8]) -> Option<(u8, u64, u64)> {
    let header = bytes.get(..HEADER_LEN)?.strip_prefix(MAGIC.as_slice())?;
    let (&mode, times) = header.split_first()?;
    let (written, expires) = times.split_first_chunk::<8>()?;
    let expires: [u8; 8] = expires.try_into().ok()?;
    Some((
        mode,
        u64::from_be_bytes(*written),
        u64::from_be_bytes(expires),
    ))
}

/// The file's bytes if it exists and is ours: a regular file (no symlink), owned by this user,
/// not readable or writable by anyone else, of a sane size. `Ok(None)` when there is none.
fn read_own_file(path: &Path) -> Result<Option<Zeroizing<Vec<u8>>>, &'static str> {
    let mut file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(_) => return Err("cannot be opened (a symlink?)"),
    };
    let meta = file.metadata().map_err(|_| "cannot be inspected")?;
    if !meta.is_file() {
        return Err("is not a regular file");
    }
    if meta.uid() != rustix::process::geteuid().as_raw() {
        return Err("is owned by another user");
    }
    if meta.mode() & 0o077 != 0 {
        return Err("is accessible to group or others");
    }
    if meta.len() > MAX_ENTRY_BYTES {
        return Err("is too large");
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(meta.len() as usize));
    file.read_to_end(&mut bytes).map_err(|_| "cannot be read")?;
    Ok(Some(bytes))
}

#[async_trait]
impl SecretSource for TmpCache {
    async fn get(&self, id: &SecretId, version: &VersionSelector) -> Result<Secret> {
        if let Some(secret) = self.read_entry(id, version).await {
            return Ok(secret);
        }
        let fetched = self.inner.get(id, version).await;
        self.keep(id, version, fetched).await
    }

    /// Past the entry: the layers below refresh, and the answer replaces the entry.
    async fn refresh(&self, id: &SecretId, version: &VersionSelector) -> Result<Secret> {
        let fetched = self.inner.refresh(id, version).await;
        self.keep(id, version, fetched).await
    }
}

impl fmt::Debug for TmpCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TmpCache")
            .field("inner", &self.inner)
            .field("dir", &self.dir)
            .field("ttl", &self.ttl)
            .field("at_rest", &self.at_rest)
            .field("stats", &self.stats())
            .finish()
    }
}

impl fmt::Display for TmpCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.at_rest {
            TmpAtRest::Encrypted(_) => "encrypted",
            TmpAtRest::Plaintext => "plaintext",
        };
        write!(f, "tmp[{mode}]({})", self.inner)
    }
}
