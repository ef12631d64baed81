//! `file+kms://`: KMS envelopes as files under a root directory (EFS mounted at `/mnt/...` in
//! Lambda; any directory elsewhere).
//!
//! Id `prod/db` is the file `<root>/prod/db`: each `/`-separated segment of the id is a
//! directory, the last one the file. Ids that are no safe relative path (`..`, `.`, empty
//! segments, absolute ids: names Secrets Manager takes) are refused here
//! ([`SecretId::path_segments`]), before anything is touched. Every read, write and delete walks from a handle on the root and refuses any
//! symlink under it (`openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`, or `O_NOFOLLOW`
//! per segment): nothing outside the root is read, written or removed, even while another
//! writer under the root swaps a directory for a symlink. Writes go to a temporary file with a
//! random name in the same directory (mode 0600, `O_EXCL`), are synced, then renamed over the
//! old file and the directory synced, so a reader sees the old or the new envelope, never half
//! of one; new directories are created 0700.

use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;

use aws_config::SdkConfig;

use crate::aws::AwsOptions;
use crate::beneath::{Beneath, Dir};
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
    /// KMS's endpoint, the region, profile and principal (built from configuration), else
    /// `endpoint=unknown`: see [`crate::aws`]'s `scope`.
    scope: String,
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

impl From<Beneath> for FileError {
    fn from(err: Beneath) -> Self {
        match err {
            Beneath::Escapes => Self::Escapes,
            Beneath::Io(err) => Self::Io(err),
        }
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
            scope: "endpoint=unknown".into(),
        })
    }

    /// Builds the backend `config` describes, with a KMS client from `sdk`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] (no KMS key, a missing root, an unknown key).
    pub async fn from_config(sdk: &SdkConfig, config: &FileConfig) -> Result<Self> {
        let key = required_kms_key(BACKEND, config.kms_key_id.as_deref())?;
        let envelope = Envelope::kms(aws_sdk_kms::Client::new(sdk), key, config.suite).await?;
        let mut source = Self::new(&config.root, Arc::new(envelope))?;
        source.scope = crate::aws::scope(
            sdk,
            config.aws.profile.as_deref(),
            &[crate::aws::service::KMS],
        )
        .await;
        Ok(source)
    }

    /// The resolved root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The segments of `id`'s path under the root: directories, then the file.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for ARN ids; [`Error::InvalidId`] for an id that is no safe
    /// relative path.
    fn segments_for(&self, id: &SecretId) -> Result<Vec<String>> {
        if id.is_arn() {
            return Err(Error::Unsupported {
                backend: BACKEND,
                operation: "ARN ids (use the secret name)".into(),
            });
        }
        Ok(id.path_segments()?.into_iter().map(str::to_owned).collect())
    }

    fn error(&self, id: &SecretId, err: FileError) -> Error {
        let id = id.to_string();
        match err {
            FileError::Escapes => Error::InvalidId {
                id,
                reason: "passes through a symlink under the backend's root directory (refused: it could lead outside)",
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

    /// Runs `work` on a blocking thread with the root opened and the id's directories and
    /// file name (`work(parent directory, file name)`), creating missing directories when
    /// `create`.
    async fn blocking<T: Send + 'static>(
        &self,
        id: &SecretId,
        create: bool,
        work: impl FnOnce(&Dir, &str) -> Result<T, FileError> + Send + 'static,
    ) -> Result<T> {
        let segments = self.segments_for(id)?;
        let root = self.root.clone();
        let run = move || {
            let (name, parents) = segments.split_last().ok_or(FileError::Escapes)?;
            let parents: Vec<&str> = parents.iter().map(String::as_str).collect();
            let parent = Dir::open(&root)?.descend(&parents, create)?;
            work(&parent, name)
        };
        match tokio::task::spawn_blocking(run).await {
            Ok(result) => result.map_err(|err| self.error(id, err)),
            Err(join) => Err(Error::Other {
                backend: BACKEND,
                id: id.to_string(),
                source: Some(std::sync::Arc::new(join)),
            }),
        }
    }
}

fn read_envelope(dir: &Dir, name: &str) -> Result<Vec<u8>, FileError> {
    let file = dir.open_file(name)?;
    let meta = file.metadata()?;
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

fn write_envelope(dir: &Dir, name: &str, bytes: &[u8]) -> Result<bool, FileError> {
    let created = dir.file_type(name)?.is_none();
    dir.replace(name, bytes, true)?;
    Ok(created)
}

#[async_trait]
impl SecretSource for FileKmsSource {
    fn identity(&self) -> String {
        format!(
            "{BACKEND}:{};root={};key={}",
            self.scope,
            self.root.display(),
            self.envelope.key_label()
        )
    }

    async fn get(&self, id: &SecretId, version: &VersionSelector) -> Result<Secret> {
        if *version != VersionSelector::Current {
            return Err(Error::Unsupported {
                backend: BACKEND,
                operation: format!("reading {version} (files keep only the current value)"),
            });
        }
        let bytes = self.blocking(id, false, read_envelope).await?;
        let value = self.envelope.open(BACKEND, id, bytes).await?;
        tracing::debug!(backend = BACKEND, id = %id, "read secret");
        Ok(Secret::new(id.clone(), BACKEND, value))
    }
}

#[async_trait]
impl SecretStore for FileKmsSource {
    async fn put(&self, id: &SecretId, value: &SecretValue) -> Result<PutOutcome> {
        // An id that is no safe path is refused before KMS is asked for a data key.
        self.segments_for(id)?;
        let sealed = self.envelope.seal(BACKEND, id, value).await?;
        if sealed.len() as u64 > MAX_FILE_BYTES {
            let what = "the sealed envelope";
            return Err(Error::too_large(
                BACKEND,
                id.as_str(),
                what,
                sealed.len(),
                MAX_FILE_BYTES,
            ));
        }
        let created = self
            .blocking(id, true, move |dir, name| {
                write_envelope(dir, name, &sealed)
            })
            .await?;
        Ok(PutOutcome::new(None, created))
    }

    async fn delete(&self, id: &SecretId) -> Result<()> {
        self.blocking(id, false, |dir, name| Ok(dir.remove_file(name)?))
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
