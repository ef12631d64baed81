//! `file+kms://`: KMS envelopes as files under a root directory (EFS mounted at `/mnt/...` in
//! Lambda; any directory elsewhere).
//!
//! Id `prod/db` is the file `<root>/prod/db`: each `/`-separated segment of the id is a
//! directory, the last one the file. [`SecretId`] already refuses `..`, `.`, empty segments and
//! absolute ids; on top of that every path is resolved and must stay under the (resolved)
//! root, so a symlink pointing out of it is refused, for reads and for writes. Writes go to a
//! temporary file in the same directory (mode 0600, `O_EXCL`), are synced, then renamed over
//! the old file, so a reader sees the old or the new envelope, never half of one; new
//! directories are created 0700.

use std::fmt;
use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;

use aws_config::SdkConfig;

use crate::atomic::write_atomically;
use crate::aws::AwsOptions;
use crate::envelope::{AlgorithmSuite, Envelope, required_kms_key};
use crate::error::{Error, ErrorKind, Result};
use crate::id::SecretId;
use crate::options::Options;
use crate::source::{PutOutcome, SecretSource, SecretStore};
use crate::value::{Secret, SecretValue, VersionSelector};

/// The backend name.
pub const BACKEND: &str = "file+kms";
/// Files larger than this are refused unread (secrets are small).
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

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

impl FileConfig {
    /// The option keys of `file+kms://` besides [`AwsOptions::KEYS`].
    pub(crate) const KEYS: &'static [&'static str] = &["kms_key_id", "suite"];

    /// The options of `file+kms:///DIR`, taken out of `options`. `text` is the whole URL and
    /// `path` its percent-decoded path.
    pub(crate) fn from_url(
        text: &str,
        url: &url::Url,
        path: &str,
        options: &mut Options,
    ) -> Result<Self> {
        if url.host_str().is_some_and(|h| !h.is_empty()) || !path.starts_with('/') || path == "/" {
            return Err(Error::invalid_config(format!(
                "`{text}`: file+kms:// needs an absolute directory and no host \
                 (file+kms:///mnt/efs/secrets)"
            )));
        }
        let suite = options.take_with("suite", |_, text| text.parse())?;
        Ok(Self {
            aws: AwsOptions::from_options(options)?,
            root: PathBuf::from(path),
            kms_key_id: options.take("kms_key_id"),
            suite: suite.unwrap_or_default(),
        })
    }
}

/// KMS envelopes in files under a root directory. See the [module docs](self) for the layout.
pub struct FileKmsSource {
    root: PathBuf,
    envelope: Arc<Envelope>,
}

/// What went wrong under the root, before it becomes an [`Error`] with backend and id.
#[derive(Debug)]
enum FileError {
    Io(io::Error),
    /// The path resolves outside the root (through a symlink).
    Escapes,
    TooLarge,
}

impl From<io::Error> for FileError {
    fn from(err: io::Error) -> Self {
        Self::Io(err)
    }
}

impl FileKmsSource {
    /// Envelopes sealed with `envelope` under `root`, which must be an existing directory.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when `root` is missing or not a directory.
    pub fn new(root: impl AsRef<Path>, envelope: Arc<Envelope>) -> Result<Self> {
        let root = root.as_ref();
        let canonical = fs::canonicalize(root)
            .ok()
            .filter(|path| path.is_dir())
            .ok_or_else(|| {
                Error::invalid_config(format!(
                    "file+kms root {} is not an existing directory",
                    root.display()
                ))
            })?;
        Ok(Self {
            root: canonical,
            envelope,
        })
    }

    /// Builds the backend `config` describes, with a KMS client from `sdk`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] (no KMS key, a missing root, an unknown key).
    pub async fn from_config(sdk: &SdkConfig, config: &FileConfig) -> Result<Self> {
        let key = required_kms_key(BACKEND, config.kms_key_id.as_deref())?;
        let envelope = Envelope::kms(aws_sdk_kms::Client::new(sdk), key, config.suite).await?;
        Self::new(&config.root, Arc::new(envelope))
    }

    /// The resolved root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file of `id` (not yet resolved against symlinks).
    ///
    /// # Errors
    /// [`Error::Unsupported`] for ARN ids.
    pub(crate) fn path_for(&self, id: &SecretId) -> Result<PathBuf> {
        if id.is_arn() {
            return Err(Error::Unsupported {
                backend: BACKEND,
                operation: "ARN ids (use the secret name)".into(),
            });
        }
        Ok(id
            .segments()
            .fold(self.root.clone(), |path, segment| path.join(segment)))
    }

    fn error(&self, id: &SecretId, err: FileError) -> Error {
        let id = id.to_string();
        match err {
            FileError::Escapes => Error::InvalidId {
                id,
                reason: "resolves outside the backend's root directory (symlink)",
            },
            FileError::TooLarge => Error::InvalidFormat {
                backend: BACKEND,
                id,
                reason: format!("is larger than {MAX_FILE_BYTES} bytes; not a secret"),
            },
            FileError::Io(err) => {
                let kind = match err.kind() {
                    io::ErrorKind::NotFound
                    | io::ErrorKind::NotADirectory
                    | io::ErrorKind::IsADirectory => ErrorKind::NotFound,
                    io::ErrorKind::PermissionDenied => ErrorKind::AccessDenied,
                    io::ErrorKind::TimedOut
                    | io::ErrorKind::Interrupted
                    | io::ErrorKind::WouldBlock => ErrorKind::Transient,
                    _ => ErrorKind::Other,
                };
                Error::from_kind(kind, BACKEND, id, Some(Box::new(err)))
            }
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        id: &SecretId,
        work: impl FnOnce(PathBuf, PathBuf) -> Result<T, FileError> + Send + 'static,
    ) -> Result<T> {
        let path = self.path_for(id)?;
        let root = self.root.clone();
        match tokio::task::spawn_blocking(move || work(root, path)).await {
            Ok(result) => result.map_err(|err| self.error(id, err)),
            Err(join) => Err(Error::Other {
                backend: BACKEND,
                id: id.to_string(),
                source: Some(Box::new(join)),
            }),
        }
    }
}

/// `path` resolved, if it stays under `root`.
fn resolve_inside(root: &Path, path: &Path) -> Result<PathBuf, FileError> {
    let resolved = fs::canonicalize(path)?;
    if resolved.starts_with(root) {
        Ok(resolved)
    } else {
        Err(FileError::Escapes)
    }
}

fn read_envelope(root: &Path, path: &Path) -> Result<Vec<u8>, FileError> {
    let resolved = resolve_inside(root, path)?;
    // The resolved path has no symlinks left; O_NOFOLLOW refuses one swapped in since.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&resolved)?;
    let meta = file.metadata()?;
    if meta.is_dir() {
        return Err(io::Error::from(io::ErrorKind::IsADirectory).into());
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(FileError::TooLarge);
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(FileError::TooLarge);
    }
    Ok(bytes)
}

/// Creates the directories from `root` down to `dir` (0700), following none that leads out
/// of `root`, and returns `dir` resolved.
fn make_dirs_inside(root: &Path, dir: &Path) -> Result<PathBuf, FileError> {
    let relative = dir.strip_prefix(root).map_err(|_| FileError::Escapes)?;
    let mut current = root.to_path_buf();
    for component in relative.components() {
        let Component::Normal(name) = component else {
            return Err(FileError::Escapes);
        };
        let next = current.join(name);
        match DirBuilder::new().mode(0o700).create(&next) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
            Err(err) => return Err(err.into()),
        }
        // An existing entry may be a symlink: resolve it and stay inside.
        current = resolve_inside(root, &next)?;
        if !current.is_dir() {
            return Err(io::Error::from(io::ErrorKind::NotADirectory).into());
        }
    }
    Ok(current)
}

fn write_envelope(root: &Path, path: &Path, bytes: &[u8]) -> Result<bool, FileError> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(FileError::Escapes);
    };
    let dir = make_dirs_inside(root, parent)?;
    let created = fs::symlink_metadata(dir.join(name)).is_err();
    write_atomically(&dir, name, bytes, true)?;
    Ok(created)
}

fn delete_file(root: &Path, path: &Path) -> Result<(), FileError> {
    let resolved = resolve_inside(root, path)?;
    if resolved.is_dir() {
        return Err(io::Error::from(io::ErrorKind::NotFound).into());
    }
    fs::remove_file(&resolved)?;
    Ok(())
}

#[async_trait]
impl SecretSource for FileKmsSource {
    async fn get(&self, id: &SecretId, version: &VersionSelector) -> Result<Secret> {
        if *version != VersionSelector::Current {
            return Err(Error::Unsupported {
                backend: BACKEND,
                operation: format!("reading {version} (files keep only the current value)"),
            });
        }
        let bytes = self
            .blocking(id, |root, path| read_envelope(&root, &path))
            .await?;
        let value = self.envelope.open(BACKEND, id, bytes).await?;
        tracing::debug!(backend = BACKEND, id = %id, "read secret");
        Ok(Secret::new(id.clone(), BACKEND, value))
    }
}

#[async_trait]
impl SecretStore for FileKmsSource {
    async fn put(&self, id: &SecretId, value: &SecretValue) -> Result<PutOutcome> {
        let sealed = self.envelope.seal(BACKEND, id, value).await?;
        let created = self
            .blocking(id, move |root, path| write_envelope(&root, &path, &sealed))
            .await?;
        Ok(PutOutcome {
            version_id: None,
            created,
        })
    }

    async fn delete(&self, id: &SecretId) -> Result<()> {
        self.blocking(id, |root, path| delete_file(&root, &path))
            .await
    }
}

impl fmt::Debug for FileKmsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileKmsSource")
            .field("root", &self.root)
            .field("envelope", &self.envelope)
            .finish()
    }
}

impl fmt::Display for FileKmsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{BACKEND}({})", self.root.display())
    }
}
