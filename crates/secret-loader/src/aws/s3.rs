//! S3 backends: `s3+kms://` (client-side KMS envelopes) and `s3+sse-kms://` (server-side
//! encryption with KMS).

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;

use aws_config::SdkConfig;

use crate::aws::{AwsOptions, classify_sdk_error};
use crate::envelope::{AlgorithmSuite, Envelope, required_kms_key};
use crate::error::{Error, ErrorKind, Result};
use crate::id::SecretId;
use crate::options::{Options, parse_bool};
use crate::source::{PutOutcome, SecretSource, SecretStore};
use crate::value::{Secret, SecretValue, VersionSelector};

/// Backend name of client-side envelopes in S3.
pub const BACKEND_ENVELOPE: &str = "s3+kms";
/// Backend name of server-side-encrypted objects in S3.
pub const BACKEND_SSE_KMS: &str = "s3+sse-kms";
/// Content type of envelope objects.
pub const ENVELOPE_CONTENT_TYPE: &str = "application/vnd.aws-encryption-sdk-message";
/// User-metadata key (`x-amz-meta-secret-loader-format`) marking an object as ours.
pub const METADATA_FORMAT: &str = "secret-loader-format";
/// User-metadata key (`x-amz-meta-secret-loader-kind`) with `text` or `binary`
/// (server-side mode; envelopes carry the kind in their encryption context).
pub const METADATA_KIND: &str = "secret-loader-kind";
/// Objects larger than this are refused unread: secrets are small (Secrets Manager's limit
/// is 64 KiB), and a wrong key must not make us buffer a video.
pub const MAX_OBJECT_BYTES: i64 = 1024 * 1024;

/// Options of `s3+kms://bucket/prefix` and `s3+sse-kms://bucket/prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct S3Config {
    /// Shared AWS options.
    pub aws: AwsOptions,
    /// The bucket (the URL's host).
    pub bucket: String,
    /// The key prefix (the URL's path, without surrounding `/`).
    pub prefix: String,
    /// KMS key (`kms_key_id=`): required for `s3+kms`; for `s3+sse-kms` the bucket's default
    /// KMS key when unset.
    pub kms_key_id: Option<String>,
    /// Envelope algorithm suite (`suite=committing|committing-signed`, `s3+kms` only).
    pub suite: AlgorithmSuite,
    /// Path-style addressing (`force_path_style=true`), for emulators on `localhost`.
    pub force_path_style: bool,
}

impl S3Config {
    /// The option keys of `s3+kms://` besides [`AwsOptions::KEYS`].
    pub(crate) const ENVELOPE_KEYS: &'static [&'static str] =
        &["kms_key_id", "suite", "force_path_style"];
    /// The option keys of `s3+sse-kms://` besides [`AwsOptions::KEYS`].
    pub(crate) const SSE_KMS_KEYS: &'static [&'static str] = &["kms_key_id", "force_path_style"];

    /// The options of `s3+kms://BUCKET/PREFIX` (`server_side` false) or
    /// `s3+sse-kms://BUCKET/PREFIX`, taken out of `options`. `text` is the whole URL and
    /// `path` its percent-decoded path, for messages and the prefix.
    pub(crate) fn from_url(
        text: &str,
        url: &url::Url,
        path: &str,
        server_side: bool,
        options: &mut Options,
    ) -> Result<Self> {
        let scheme = if server_side {
            BACKEND_SSE_KMS
        } else {
            BACKEND_ENVELOPE
        };
        let bucket = url.host_str().filter(|h| !h.is_empty()).ok_or_else(|| {
            Error::invalid_config(format!(
                "`{text}`: {scheme}:// needs a bucket ({scheme}://BUCKET/PREFIX)"
            ))
        })?;
        let suite = if server_side {
            None
        } else {
            options.take_with("suite", |_, text| text.parse())?
        };
        Ok(Self {
            aws: AwsOptions::from_options(options)?,
            bucket: bucket.to_owned(),
            prefix: path.trim_matches('/').to_owned(),
            kms_key_id: options.take("kms_key_id"),
            suite: suite.unwrap_or_default(),
            force_path_style: options
                .take_with("force_path_style", parse_bool)?
                .unwrap_or(false),
        })
    }
}

/// How the objects are protected.
enum Protection {
    /// The object body is an AWS Encryption SDK message; S3 never sees the plaintext.
    Envelope(Arc<Envelope>),
    /// The body is the plaintext, encrypted at rest by S3 with a KMS key (SSE-KMS): anyone
    /// allowed `s3:GetObject` and `kms:Decrypt` through S3 reads it; S3 sees the plaintext.
    ServerSide { kms_key_id: Option<String> },
}

/// Secrets as objects in an S3 bucket, one per id, under a prefix (`<prefix>/<id>`).
///
/// * `s3+kms://bucket/prefix`: the body is a KMS envelope (see [`crate::envelope`]); a read
///   is one `GetObject` and one KMS `Decrypt`.
/// * `s3+sse-kms://bucket/prefix`: the body is the value, stored with
///   `ServerSideEncryption=aws:kms`; a read is one `GetObject` (S3 calls KMS itself).
///
/// With bucket versioning on, each put is a new object version, readable with
/// [`VersionSelector::Id`]. Staging labels don't exist in S3. Ids are names, not ARNs.
pub struct S3Source {
    client: Client,
    bucket: String,
    prefix: String,
    protection: Protection,
    /// Region, endpoints, profile and principal: see [`crate::aws`]'s `scope`.
    scope: String,
}

impl S3Source {
    /// Envelopes sealed with `envelope` under `bucket`/`prefix`.
    pub fn envelope(
        client: Client,
        bucket: impl Into<String>,
        prefix: &str,
        envelope: Arc<Envelope>,
    ) -> Self {
        Self::new(
            client,
            bucket.into(),
            prefix,
            Protection::Envelope(envelope),
        )
    }

    /// Plain values under SSE-KMS with `kms_key_id` (the bucket's default key when `None`).
    pub fn server_side(
        client: Client,
        bucket: impl Into<String>,
        prefix: &str,
        kms_key_id: Option<String>,
    ) -> Self {
        Self::new(
            client,
            bucket.into(),
            prefix,
            Protection::ServerSide { kms_key_id },
        )
    }

    fn new(client: Client, bucket: String, prefix: &str, protection: Protection) -> Self {
        let scope = crate::aws::client_scope(client.config().region());
        Self {
            client,
            bucket,
            prefix: prefix.trim_matches('/').to_owned(),
            protection,
            scope,
        }
    }

    /// Builds the backend `config` describes, with clients from `sdk`; `server_side` picks
    /// `s3+sse-kms`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] (no KMS key for envelopes, an unknown key).
    pub async fn from_config(
        sdk: &SdkConfig,
        config: &S3Config,
        server_side: bool,
    ) -> Result<Self> {
        let s3 = Client::from_conf(
            aws_sdk_s3::config::Builder::from(sdk)
                .force_path_style(config.force_path_style)
                .build(),
        );
        let mut source = if server_side {
            Self::server_side(
                s3,
                &config.bucket,
                &config.prefix,
                config.kms_key_id.clone(),
            )
        } else {
            let key = required_kms_key(BACKEND_ENVELOPE, config.kms_key_id.as_deref())?;
            let envelope = Envelope::kms(aws_sdk_kms::Client::new(sdk), key, config.suite).await?;
            Self::envelope(s3, &config.bucket, &config.prefix, Arc::new(envelope))
        };
        let services: &[&str] = if server_side {
            &[crate::aws::service::S3]
        } else {
            &[crate::aws::service::S3, crate::aws::service::KMS]
        };
        source.scope = crate::aws::scope(sdk, config.aws.profile.as_deref(), services).await;
        Ok(source)
    }

    fn backend(&self) -> &'static str {
        match self.protection {
            Protection::Envelope(_) => BACKEND_ENVELOPE,
            Protection::ServerSide { .. } => BACKEND_SSE_KMS,
        }
    }

    /// The object key of `id`: `<prefix>/<id>`, or `<id>` without a prefix.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for ARN ids.
    pub(crate) fn object_key(&self, id: &SecretId) -> Result<String> {
        if id.is_arn() {
            return Err(Error::Unsupported {
                backend: self.backend(),
                operation: "ARN ids (use the secret name)".into(),
            });
        }
        Ok(if self.prefix.is_empty() {
            id.to_string()
        } else {
            format!("{}/{id}", self.prefix)
        })
    }

    fn classify<E>(&self, err: aws_sdk_s3::error::SdkError<E>, id: &SecretId) -> Error
    where
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        classify_sdk_error(err, self.backend(), id.as_str(), error_code_kind)
    }

    /// Whether the object exists (one `HeadObject`). A missing bucket also answers 404 here
    /// (HEAD responses have no body to tell them apart); the write that follows then fails
    /// with `NoSuchBucket`.
    async fn exists(&self, id: &SecretId, key: &str) -> Result<bool> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(err) => match self.classify(err, id) {
                err if err.kind() == ErrorKind::NotFound => Ok(false),
                err => Err(err),
            },
        }
    }
}

/// The one place S3's own error codes are classified.
fn error_code_kind(code: &str) -> Option<ErrorKind> {
    Some(match code {
        "NoSuchKey" | "NoSuchBucket" | "NoSuchVersion" | "NotFound" => ErrorKind::NotFound,
        _ => return None,
    })
}

#[async_trait]
impl SecretSource for S3Source {
    fn identity(&self) -> String {
        let key = match &self.protection {
            Protection::Envelope(envelope) => envelope.key_label(),
            Protection::ServerSide { kms_key_id } => {
                kms_key_id.as_deref().unwrap_or("bucket-default")
            }
        };
        format!(
            "{}:{};bucket={};prefix={};key={key}",
            self.backend(),
            self.scope,
            self.bucket,
            self.prefix
        )
    }

    async fn get(&self, id: &SecretId, version: &VersionSelector) -> Result<Secret> {
        let backend = self.backend();
        let key = self.object_key(id)?;
        let request = self.client.get_object().bucket(&self.bucket).key(&key);
        let request = match version {
            VersionSelector::Current => request,
            VersionSelector::Id(version_id) => request.version_id(version_id),
            VersionSelector::Stage(_) => {
                return Err(Error::Unsupported {
                    backend,
                    operation: "staging labels (S3 has object version ids only)".into(),
                });
            }
        };
        let mut output = request.send().await.map_err(|err| self.classify(err, id))?;
        let too_large = || Error::InvalidFormat {
            backend,
            id: id.to_string(),
            reason: format!("is larger than {MAX_OBJECT_BYTES} bytes; not a secret"),
        };
        if output.content_length.unwrap_or(0) > MAX_OBJECT_BYTES {
            return Err(too_large());
        }
        let version_id = output.version_id;
        let binary_marked = output
            .metadata
            .as_ref()
            .and_then(|m| m.get(METADATA_KIND))
            .is_some_and(|kind| kind == "binary");
        // Content-Length may be absent (chunked) or wrong: stop reading at the cap either way.
        let mut body = Vec::with_capacity(output.content_length.unwrap_or(0).max(0) as usize);
        while let Some(chunk) = output.body.next().await {
            let chunk = chunk.map_err(|err| Error::Transient {
                backend,
                id: id.to_string(),
                source: Some(std::sync::Arc::new(err)),
            })?;
            if (body.len() + chunk.len()) as i64 > MAX_OBJECT_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        let value = match &self.protection {
            Protection::Envelope(envelope) => envelope.open(backend, id, body).await?,
            Protection::ServerSide { .. } if binary_marked => SecretValue::binary(body),
            Protection::ServerSide { .. } => match String::from_utf8(body) {
                Ok(text) => SecretValue::text(text),
                Err(err) => SecretValue::binary(err.into_bytes()),
            },
        };
        tracing::debug!(backend, id = %id, version = ?version_id, "read secret");
        Ok(Secret::new(id.clone(), backend, value).with_version_id(version_id))
    }
}

#[async_trait]
impl SecretStore for S3Source {
    async fn put(&self, id: &SecretId, value: &SecretValue) -> Result<PutOutcome> {
        let key = self.object_key(id)?;
        // What a get would refuse is refused here, before anything is written.
        let (body, what) = match &self.protection {
            Protection::Envelope(envelope) => (
                envelope.seal(self.backend(), id, value).await?,
                "the sealed envelope",
            ),
            Protection::ServerSide { .. } => (value.expose_bytes().to_vec(), "the value"),
        };
        if body.len() as i64 > MAX_OBJECT_BYTES {
            let limit = MAX_OBJECT_BYTES as u64;
            return Err(Error::too_large(
                self.backend(),
                id.as_str(),
                what,
                body.len(),
                limit,
            ));
        }
        let created = !self.exists(id, &key).await?;
        let request = self.client.put_object().bucket(&self.bucket).key(&key);
        let request = match &self.protection {
            Protection::Envelope(_) => request
                .body(ByteStream::from(body))
                .content_type(ENVELOPE_CONTENT_TYPE)
                .metadata(METADATA_FORMAT, "aws-encryption-sdk"),
            Protection::ServerSide { kms_key_id } => request
                .body(ByteStream::from(body))
                .content_type(if value.is_text() {
                    "text/plain; charset=utf-8"
                } else {
                    "application/octet-stream"
                })
                .metadata(
                    METADATA_KIND,
                    if value.is_text() { "text" } else { "binary" },
                )
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .set_ssekms_key_id(kms_key_id.clone()),
        };
        let output = request.send().await.map_err(|err| self.classify(err, id))?;
        Ok(PutOutcome::new(output.version_id, created))
    }

    async fn delete(&self, id: &SecretId) -> Result<()> {
        let key = self.object_key(id)?;
        // DeleteObject succeeds on a missing key; the contract says NotFound.
        if !self.exists(id, &key).await? {
            return Err(Error::NotFound {
                backend: self.backend(),
                id: id.to_string(),
                source: None,
            });
        }
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
            .map_err(|err| self.classify(err, id))?;
        Ok(())
    }
}

impl fmt::Debug for S3Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("S3Source");
        s.field("bucket", &self.bucket)
            .field("prefix", &self.prefix);
        match &self.protection {
            Protection::Envelope(envelope) => s.field("envelope", envelope),
            Protection::ServerSide { kms_key_id } => s.field("sse_kms_key_id", kms_key_id),
        };
        s.finish()
    }
}

impl fmt::Display for S3Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({}/{})", self.backend(), self.bucket, self.prefix)
    }
}
