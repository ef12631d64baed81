//! KMS envelope encryption in the AWS Encryption SDK message format (through the official
//! `aws-esdk` crate), used by `s3+kms://`, `file+kms://` and encrypted cache entries.
//!
//! Each seal asks the key provider for a fresh data key (KMS `GenerateDataKey`), encrypts with
//! a committing AES-256-GCM suite, and binds the message to where it lives through the
//! encryption context:
//!
//! | key | value |
//! | --- | --- |
//! | `secret-loader:id` | the secret id, e.g. `prod/db` |
//! | `secret-loader:backend` | `s3+kms`, `file+kms` or `tmp-cache` |
//! | `secret-loader:kind` | `text` or `binary` (optional on read: absent means text if UTF-8) |
//!
//! Opening requires the `id` and `backend` pairs, so a message copied to another id or
//! another backend fails with [`Error::DecryptionFailed`]. Any tool that writes AWS Encryption
//! SDK messages with that context (e.g. `aws-encryption-cli`) writes envelopes we read.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use aws_esdk::material_providers::client::Client as MaterialProviders;
use aws_esdk::material_providers::types::keyring::KeyringRef;
use aws_esdk::material_providers::types::material_providers_config::MaterialProvidersConfig;
use aws_esdk::material_providers::types::{
    AesWrappingAlg, EsdkAlgorithmSuiteId, EsdkCommitmentPolicy,
};
use aws_esdk::{AwsEncryptionSdkConfig, Client as EncryptionSdk};
use aws_smithy_types::Blob;
use secrecy::{ExposeSecret, SecretSlice};

use std::str::FromStr;

use crate::aws::kms::{FailureProbe, resolve_key_arn};
use crate::error::{Error, ErrorKind, Result};
use crate::id::SecretId;
use crate::value::SecretValue;

/// Encryption-context key holding the secret id.
pub const CONTEXT_ID: &str = "secret-loader:id";
/// Encryption-context key holding the backend name.
pub const CONTEXT_BACKEND: &str = "secret-loader:backend";
/// Encryption-context key holding `text` or `binary`.
pub const CONTEXT_KIND: &str = "secret-loader:kind";

/// The algorithm suite used to seal. Both are committing (key commitment on); opening accepts
/// either, and refuses non-committing messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AlgorithmSuite {
    /// `AES-256-GCM, HKDF-SHA512, key commitment` (`committing`, the default).
    #[default]
    Committing,
    /// The same plus an ECDSA P-384 signature (`committing-signed`): readers who can decrypt
    /// still can't forge a message. Costs a signature per seal and a verification per open,
    /// and ~100 more bytes; see the benchmarks.
    CommittingSigned,
}

impl AlgorithmSuite {
    /// The name used in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Committing => "committing",
            Self::CommittingSigned => "committing-signed",
        }
    }
}

impl FromStr for AlgorithmSuite {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "committing" => Ok(Self::Committing),
            "committing-signed" => Ok(Self::CommittingSigned),
            _ => Err(Error::invalid_config(format!(
                "unknown algorithm suite `{s}`; valid: committing, committing-signed"
            ))),
        }
    }
}

/// The KMS key a backend that seals envelopes can't do without (`kms_key_id=` or `--kms-key`).
///
/// # Errors
/// [`Error::InvalidConfig`] naming `backend` when there is none.
#[cfg_attr(not(any(feature = "s3", feature = "file")), allow(dead_code))]
pub(crate) fn required_kms_key<'a>(backend: &str, key: Option<&'a str>) -> Result<&'a str> {
    key.ok_or_else(|| {
        Error::invalid_config(format!(
            "{backend}:// needs a KMS key: `kms_key_id=` in the URL (key ARN, id or alias), or --kms-key"
        ))
    })
}

/// Most encrypted data keys a message may carry before we refuse to try them (the AWS
/// Encryption SDK's advice against messages crafted to make decryption expensive).
const MAX_ENCRYPTED_DATA_KEYS: i64 = 4;
/// Longest error detail kept from the AWS Encryption SDK (its messages can be very long).
const MAX_DETAIL: usize = 300;

fn esdk_suite(suite: AlgorithmSuite) -> EsdkAlgorithmSuiteId {
    match suite {
        AlgorithmSuite::Committing => EsdkAlgorithmSuiteId::AlgAes256GcmHkdfSha512CommitKey,
        AlgorithmSuite::CommittingSigned => {
            EsdkAlgorithmSuiteId::AlgAes256GcmHkdfSha512CommitKeyEcdsaP384
        }
    }
}

/// Where data keys come from.
enum Keys {
    /// One AWS KMS key; a keyring is made per operation so its failures can be classified.
    Kms {
        client: aws_sdk_kms::Client,
        key_arn: String,
        /// Keyrings (each with the probe on its client) not in use; see [`Lease`].
        idle: IdleKeyrings,
    },
    /// A local wrapping key (raw AES keyring), for tests and offline use.
    Local { keyring: KeyringRef, label: String },
}

/// Seals and opens secret values as AWS Encryption SDK messages.
pub struct Envelope {
    esdk: EncryptionSdk,
    materials: MaterialProviders,
    keys: Keys,
    suite: AlgorithmSuite,
}

impl Envelope {
    /// Envelopes under one AWS KMS key. `key_id` may be a key ARN (no call), a key id or an
    /// alias (one `DescribeKey` call to find the ARN, which decryption needs).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a key that does not exist; KMS failures by kind.
    pub async fn kms(
        client: aws_sdk_kms::Client,
        key_id: &str,
        suite: AlgorithmSuite,
    ) -> Result<Self> {
        let key_arn = resolve_key_arn(&client, key_id).await?;
        let (esdk, materials) = clients()?;
        Ok(Self {
            esdk,
            materials,
            keys: Keys::Kms {
                client,
                key_arn,
                idle: Arc::default(),
            },
            suite,
        })
    }

    /// Envelopes under a local 256-bit AES wrapping key (the AWS Encryption SDK's raw AES
    /// keyring), named by `namespace` and `name` as that keyring requires. For tests and
    /// offline use: whoever holds the key can open every envelope.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when the key is not 32 bytes.
    pub async fn raw_aes(
        namespace: &str,
        name: &str,
        key: &SecretSlice<u8>,
        suite: AlgorithmSuite,
    ) -> Result<Self> {
        if key.expose_secret().len() != 32 {
            return Err(Error::invalid_config(
                "a raw AES wrapping key must be 32 bytes",
            ));
        }
        let (esdk, materials) = clients()?;
        let keyring = materials
            .create_raw_aes_keyring()
            .key_namespace(namespace)
            .key_name(name)
            .wrapping_key(Blob::new(key.expose_secret()))
            .wrapping_alg(AesWrappingAlg::AlgAes256GcmIv12Tag16)
            .send()
            .await
            .map_err(|err| Error::invalid_config(format!("raw AES keyring: {}", detail(&err))))?;
        Ok(Self {
            esdk,
            materials,
            keys: Keys::Local {
                keyring,
                label: format!("{namespace}/{name}"),
            },
            suite,
        })
    }

    /// The key that wraps data keys: a KMS key ARN, or `namespace/name` of a local key.
    pub fn key_label(&self) -> &str {
        match &self.keys {
            Keys::Kms { key_arn, .. } => key_arn,
            Keys::Local { label, .. } => label,
        }
    }

    /// The suite used to seal.
    pub fn suite(&self) -> AlgorithmSuite {
        self.suite
    }

    /// Seals `value` for secret `id` in `backend`.
    ///
    /// # Errors
    /// KMS failures by kind (throttled, transient, access denied); [`Error::Other`] otherwise.
    pub async fn seal(
        &self,
        backend: &'static str,
        id: &SecretId,
        value: &SecretValue,
    ) -> Result<Vec<u8>> {
        self.seal_with_context(backend, id, value, &[]).await
    }

    /// [`Envelope::seal`] with more encryption-context pairs (authenticated, not secret, stored
    /// in the clear in the message header), which [`Envelope::open_with_context`] must be given
    /// back.
    ///
    /// # Errors
    /// As [`Envelope::seal`].
    pub async fn seal_with_context(
        &self,
        backend: &'static str,
        id: &SecretId,
        value: &SecretValue,
        extra: &[(&str, &str)],
    ) -> Result<Vec<u8>> {
        let lease = self.lease(backend, id).await?;
        let mut context = context(backend, id, extra);
        let kind = if value.is_text() { "text" } else { "binary" };
        context.insert(CONTEXT_KIND.to_owned(), kind.to_owned());
        let request = self
            .esdk
            .encrypt()
            .plaintext(Blob::new(value.expose_bytes()))
            .keyring(lease.keyring.clone())
            .encryption_context(context)
            .algorithm_suite_id(esdk_suite(self.suite));
        let (result, kms_kind) = off_caller_task(backend, id, async move {
            let result = request.send().await;
            (result, lease.kms_failure())
        })
        .await?;
        let sealed = result.map_err(|err| {
            let kind = match kms_kind {
                // A key that can't be used is not a decryption failure when writing.
                Some(ErrorKind::DecryptionFailed) | None => ErrorKind::Other,
                Some(kind) => kind,
            };
            failure(kind, backend, id, "sealing failed", &err)
        })?;
        sealed
            .ciphertext
            .map(Blob::into_inner)
            .ok_or_else(|| Error::Other {
                backend,
                id: id.to_string(),
                source: Some(Arc::from(crate::BoxError::from(
                    "the encryption SDK returned no ciphertext",
                ))),
            })
    }

    /// Opens an envelope read for secret `id` in `backend`.
    ///
    /// # Errors
    /// [`Error::InvalidFormat`] when `message` is not an AWS Encryption SDK message at all
    /// (empty, plain text); [`Error::DecryptionFailed`] when it can't be opened (tampered,
    /// truncated, another key, another id or backend, a disabled key); KMS throttling,
    /// transient and access-denied failures by kind.
    pub async fn open(
        &self,
        backend: &'static str,
        id: &SecretId,
        message: Vec<u8>,
    ) -> Result<SecretValue> {
        self.open_with_context(backend, id, message, &[]).await
    }

    /// [`Envelope::open`] requiring more encryption-context pairs (those given to
    /// [`Envelope::seal_with_context`]).
    ///
    /// # Errors
    /// As [`Envelope::open`].
    pub async fn open_with_context(
        &self,
        backend: &'static str,
        id: &SecretId,
        message: Vec<u8>,
        extra: &[(&str, &str)],
    ) -> Result<SecretValue> {
        // Version 1 and 2 messages start with their version byte; anything else was never
        // an envelope (a plain-text file, an empty object).
        match message.first() {
            Some(1 | 2) => {}
            Some(_) => {
                return Err(not_an_envelope(
                    backend,
                    id,
                    "is not an AWS Encryption SDK message",
                ));
            }
            None => return Err(not_an_envelope(backend, id, "is empty, not an envelope")),
        }
        let lease = self.lease(backend, id).await?;
        let request = self
            .esdk
            .decrypt()
            .ciphertext(Blob::new(message))
            .keyring(lease.keyring.clone())
            .encryption_context(context(backend, id, extra));
        let (result, kms_kind) = off_caller_task(backend, id, async move {
            let result = request.send().await;
            (result, lease.kms_failure())
        })
        .await?;
        let opened = result.map_err(|err| {
            let kind = kms_kind.unwrap_or(ErrorKind::DecryptionFailed);
            failure(kind, backend, id, "opening failed", &err)
        })?;
        let plaintext = opened.plaintext.map(Blob::into_inner).unwrap_or_default();
        let kind = opened
            .encryption_context
            .as_ref()
            .and_then(|c| c.get(CONTEXT_KIND))
            .map(String::as_str);
        match kind {
            Some("binary") => Ok(SecretValue::binary(plaintext)),
            _ => match String::from_utf8(plaintext) {
                Ok(text) => Ok(SecretValue::text(text)),
                Err(err) if kind.is_none() => Ok(SecretValue::binary(err.into_bytes())),
                Err(err) => {
                    // Sealed as text but not UTF-8: only a foreign writer can do that.
                    drop(zeroize::Zeroizing::new(err.into_bytes()));
                    Err(not_an_envelope(
                        backend,
                        id,
                        "is marked text but is not UTF-8",
                    ))
                }
            },
        }
    }

    /// A keyring for one operation. KMS keyrings are reused (building one, with the client
    /// its probe sits on, costs more than the AES work of a small envelope), but each is used
    /// by one operation at a time, so its probe reports that operation's KMS failures only.
    async fn lease(&self, backend: &'static str, id: &SecretId) -> Result<Lease> {
        let (client, key_arn, idle) = match &self.keys {
            Keys::Local { keyring, .. } => {
                return Ok(Lease {
                    keyring: keyring.clone(),
                    probe: None,
                    idle: None,
                });
            }
            Keys::Kms {
                client,
                key_arn,
                idle,
            } => (client, key_arn, idle),
        };
        let reused = idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let (keyring, probe) = match reused {
            Some(pair) => pair,
            None => {
                let probe = FailureProbe::default();
                let keyring = self
                    .materials
                    .create_aws_kms_keyring()
                    .kms_key_id(key_arn)
                    .kms_client(probe.client(client))
                    .send()
                    .await
                    .map_err(|err| Error::Other {
                        backend,
                        id: id.to_string(),
                        source: Some(Arc::from(crate::BoxError::from(format!(
                            "KMS keyring: {}",
                            detail(&err)
                        )))),
                    })?;
                (keyring, probe)
            }
        };
        probe.reset();
        Ok(Lease {
            keyring,
            probe: Some(probe),
            idle: Some(idle.clone()),
        })
    }
}

/// KMS keyrings (each with the probe on its client) not in use.
type IdleKeyrings = Arc<Mutex<Vec<(KeyringRef, FailureProbe)>>>;

/// Most idle KMS keyrings kept for reuse (about the concurrency of one process).
const MAX_IDLE_KEYRINGS: usize = 32;

/// A keyring in use by one operation; back to the idle list when dropped.
struct Lease {
    keyring: KeyringRef,
    probe: Option<FailureProbe>,
    idle: Option<IdleKeyrings>,
}

impl Lease {
    /// How this operation's KMS calls failed, if they did.
    fn kms_failure(&self) -> Option<ErrorKind> {
        self.probe.as_ref().and_then(FailureProbe::kind)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let (Some(idle), Some(probe)) = (&self.idle, self.probe.take()) {
            let mut idle = idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < MAX_IDLE_KEYRINGS {
                idle.push((self.keyring.clone(), probe));
            }
        }
    }
}

/// Runs an Encryption SDK operation in a task of its own and waits for it.
///
/// The Encryption SDK is synchronous inside and makes its KMS calls with `block_in_place` +
/// `Handle::block_on`. On the thread of a `Runtime::block_on` that inner `block_on` shares the
/// thread's parker with the outer one and can swallow a wake-up meant for the caller's other
/// futures (seen as a hang with a few concurrent reads in one task). A spawned task is alone on
/// its thread when it blocks, so no wake-up is lost, and the caller's task is not blocked.
async fn off_caller_task<T: Send + 'static>(
    backend: &'static str,
    id: &SecretId,
    operation: impl std::future::Future<Output = T> + Send + 'static,
) -> Result<T> {
    tokio::spawn(operation).await.map_err(|join| Error::Other {
        backend,
        id: id.to_string(),
        source: Some(std::sync::Arc::new(join)),
    })
}

fn clients() -> Result<(EncryptionSdk, MaterialProviders)> {
    let config = AwsEncryptionSdkConfig::builder()
        .commitment_policy(EsdkCommitmentPolicy::RequireEncryptRequireDecrypt)
        .max_encrypted_data_keys(MAX_ENCRYPTED_DATA_KEYS)
        .build()
        .map_err(|err| Error::invalid_config(format!("encryption SDK: {}", detail(&err))))?;
    let esdk = EncryptionSdk::from_conf(config)
        .map_err(|err| Error::invalid_config(format!("encryption SDK: {}", detail(&err))))?;
    let materials = MaterialProvidersConfig::builder()
        .build()
        .map_err(|err| Error::invalid_config(format!("material providers: {}", detail(&err))))
        .and_then(|config| {
            MaterialProviders::from_conf(config).map_err(|err| {
                Error::invalid_config(format!("material providers: {}", detail(&err)))
            })
        })?;
    Ok((esdk, materials))
}

/// The encryption context every envelope of `id` in `backend` must carry, plus `extra`.
fn context(
    backend: &'static str,
    id: &SecretId,
    extra: &[(&str, &str)],
) -> HashMap<String, String> {
    let mut context = HashMap::from([
        (CONTEXT_ID.to_owned(), id.to_string()),
        (CONTEXT_BACKEND.to_owned(), backend.to_owned()),
    ]);
    context.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    context
}

fn not_an_envelope(backend: &'static str, id: &SecretId, reason: &str) -> Error {
    Error::InvalidFormat {
        backend,
        id: id.to_string(),
        reason: reason.to_owned(),
    }
}

fn failure(
    kind: ErrorKind,
    backend: &'static str,
    id: &SecretId,
    what: &str,
    err: &dyn fmt::Display,
) -> Error {
    Error::from_kind(
        kind,
        backend,
        id.as_str(),
        Some(format!("{what}: {}", detail(err)).into()),
    )
}

/// The first few hundred characters of an encryption SDK error. Its `Display` falls back to
/// `Debug` and can run to pages; it never contains plaintext.
fn detail(err: &dyn fmt::Display) -> String {
    let text = err.to_string();
    match text.char_indices().nth(MAX_DETAIL) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

impl fmt::Debug for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope")
            .field("key", &self.key_label())
            .field("suite", &self.suite)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn local(suite: AlgorithmSuite) -> Envelope {
        let key = SecretSlice::from(vec![7u8; 32]);
        Envelope::raw_aes("secret-loader-test", "unit", &key, suite)
            .await
            .unwrap()
    }

    fn id(name: &str) -> SecretId {
        SecretId::new(name).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn seal_then_open_round_trips_text_and_binary_in_both_suites() {
        for suite in [AlgorithmSuite::Committing, AlgorithmSuite::CommittingSigned] {
            let envelope = local(suite).await;
            for value in [
                SecretValue::text("hunter2"),
                SecretValue::binary(vec![0, 159, 146, 150]),
            ] {
                let sealed = envelope.seal("file+kms", &id("a/b"), &value).await.unwrap();
                assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
                let opened = envelope.open("file+kms", &id("a/b"), sealed).await.unwrap();
                assert_eq!(opened, value);
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn another_id_backend_or_key_fails_to_open() {
        let envelope = local(AlgorithmSuite::Committing).await;
        let sealed = envelope
            .seal("s3+kms", &id("a"), &SecretValue::text("v"))
            .await
            .unwrap();
        for (backend, name) in [("s3+kms", "b"), ("file+kms", "a")] {
            let err = envelope
                .open(backend, &id(name), sealed.clone())
                .await
                .unwrap_err();
            assert_eq!(
                err.kind(),
                ErrorKind::DecryptionFailed,
                "{backend} {name}: {err:?}"
            );
        }
        let other_key = SecretSlice::from(vec![8u8; 32]);
        let other = Envelope::raw_aes(
            "secret-loader-test",
            "unit",
            &other_key,
            AlgorithmSuite::Committing,
        )
        .await
        .unwrap();
        let err = other.open("s3+kms", &id("a"), sealed).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::DecryptionFailed, "{err:?}");
    }

    fn assert_refused(err: &Error, case: &str) {
        assert!(
            matches!(
                err.kind(),
                ErrorKind::DecryptionFailed | ErrorKind::InvalidFormat
            ),
            "{case}: {err:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_flipped_byte_and_every_truncation_is_refused() {
        let envelope = local(AlgorithmSuite::Committing).await;
        let sealed = envelope
            .seal("file+kms", &id("x"), &SecretValue::text("tamper-canary"))
            .await
            .unwrap();
        for i in 0..sealed.len() {
            let mut tampered = sealed.clone();
            tampered[i] ^= 0x01;
            let err = envelope
                .open("file+kms", &id("x"), tampered)
                .await
                .unwrap_err();
            assert_refused(&err, &format!("byte {i}"));
            assert!(!format!("{err:?}").contains("tamper-canary"));
        }
        for len in [0, 1, sealed.len() / 2, sealed.len() - 1] {
            let err = envelope
                .open("file+kms", &id("x"), sealed[..len].to_vec())
                .await
                .unwrap_err();
            assert_refused(&err, &format!("len {len}"));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn plain_text_and_empty_input_are_not_envelopes() {
        let envelope = local(AlgorithmSuite::Committing).await;
        for input in [&b"password=hunter2\n"[..], b""] {
            let err = envelope
                .open("file+kms", &id("x"), input.to_vec())
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidFormat, "{err:?}");
            assert!(!err.to_string().contains("hunter2"));
        }
    }

    /// KMS failures the emulator can't produce (a disabled key, a key pending deletion,
    /// throttling), answered by `aws-smithy-mocks` behind the real KMS client and keyring.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kms_failures_on_open_are_classified_by_kind() {
        use aws_sdk_kms::config::retry::RetryConfig;
        use aws_sdk_kms::operation::decrypt::DecryptOutput;
        use aws_sdk_kms::operation::generate_data_key::GenerateDataKeyOutput;
        use aws_smithy_mocks::{RuleMode, mock, mock_client};
        use aws_smithy_runtime_api::http::{Response, StatusCode};
        use aws_smithy_types::body::SdkBody;

        const ARN: &str =
            "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-4000-8000-000000000001";
        let data_key = || Blob::new(vec![42u8; 32]);
        let generate = mock!(aws_sdk_kms::Client::generate_data_key).then_output(move || {
            GenerateDataKeyOutput::builder()
                .key_id(ARN)
                .plaintext(data_key())
                .ciphertext_blob(Blob::new(b"wrapped data key".to_vec()))
                .build()
        });
        let ok = mock!(aws_sdk_kms::Client::decrypt).then_output(move || {
            DecryptOutput::builder()
                .key_id(ARN)
                .plaintext(data_key())
                .build()
        });
        let failing = |status: u16, code: &'static str| {
            mock!(aws_sdk_kms::Client::decrypt).then_http_response(move || {
                let body = format!(r#"{{"__type":"{code}","message":"mocked"}}"#);
                Response::new(StatusCode::try_from(status).unwrap(), SdkBody::from(body))
            })
        };
        let cases = [
            (
                failing(400, "DisabledException"),
                ErrorKind::DecryptionFailed,
            ),
            (
                failing(400, "KMSInvalidStateException"),
                ErrorKind::DecryptionFailed,
            ),
            (
                failing(400, "InvalidCiphertextException"),
                ErrorKind::DecryptionFailed,
            ),
            (failing(400, "ThrottlingException"), ErrorKind::Throttled),
            (failing(500, "KMSInternalException"), ErrorKind::Transient),
            (
                failing(400, "AccessDeniedException"),
                ErrorKind::AccessDenied,
            ),
        ];
        let envelope_with = |decrypt: &aws_smithy_mocks::Rule| {
            let client = mock_client!(aws_sdk_kms, RuleMode::MatchAny, [&generate, decrypt], |c| {
                c.retry_config(
                    RetryConfig::standard()
                        .with_max_attempts(2)
                        .with_initial_backoff(std::time::Duration::from_millis(1)),
                )
            });
            Envelope::kms(client, ARN, AlgorithmSuite::Committing)
        };

        let envelope = envelope_with(&ok).await.unwrap();
        let sealed = envelope
            .seal("s3+kms", &id("k"), &SecretValue::text("kms-canary"))
            .await
            .unwrap();
        let opened = envelope
            .open("s3+kms", &id("k"), sealed.clone())
            .await
            .unwrap();
        assert_eq!(opened.expose_str(), Some("kms-canary"));

        for (rule, kind) in cases {
            let envelope = envelope_with(&rule).await.unwrap();
            let err = envelope
                .open("s3+kms", &id("k"), sealed.clone())
                .await
                .unwrap_err();
            assert_eq!(err.kind(), kind, "{err:?}");
            assert!(rule.num_calls() >= 1);
            assert!(!format!("{err} {err:?}").contains("kms-canary"));
        }
    }

    #[test]
    fn suites_parse_by_name() {
        assert_eq!(
            "committing".parse::<AlgorithmSuite>().unwrap(),
            AlgorithmSuite::Committing
        );
        assert_eq!(
            "committing-signed".parse::<AlgorithmSuite>().unwrap(),
            AlgorithmSuite::CommittingSigned
        );
        assert!(
            "none"
                .parse::<AlgorithmSuite>()
                .unwrap_err()
                .to_string()
                .contains("valid: committing")
        );
    }
}
