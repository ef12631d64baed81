//! KMS envelope encryption in the AWS Encryption SDK message format (version 2.0, committing
//! suites, framed), implemented here on `aws-lc-rs` ([`format`]) with plain async KMS calls
//! (`keyring`); used by `s3+kms://`, `file+kms://` and encrypted cache entries. The official
//! SDKs are test oracles only: messages they write open here, and ours open there.
//!
//! Each seal asks the keyring for a fresh data key (KMS `GenerateDataKey`, or a random key
//! wrapped by a local AES key), encrypts with a committing AES-256-GCM suite, and binds the
//! message to where it lives through the encryption context:
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

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use secrecy::{ExposeSecret, SecretSlice};

use crate::aws::kms::resolve_key_arn;
use crate::error::{Error, ErrorKind, Result};
use crate::id::SecretId;
use crate::value::SecretValue;

pub(crate) mod format;
pub(crate) mod keyring;

use format::{FRAME_LENGTH, FormatError, Limits, PUBLIC_KEY_CONTEXT, SigningKey, Suite};
use keyring::Keyring;
pub(crate) use keyring::is_kms_key_arn;

/// Encryption-context key holding the secret id.
pub const CONTEXT_ID: &str = "secret-loader:id";
/// Encryption-context key holding the backend name.
pub const CONTEXT_BACKEND: &str = "secret-loader:backend";
/// Encryption-context key holding `text` or `binary`.
pub const CONTEXT_KIND: &str = "secret-loader:kind";

/// Keys extra pairs may not set: ours, and the format's own (`aws-crypto-` prefix).
fn reserved(key: &str) -> bool {
    matches!(key, CONTEXT_ID | CONTEXT_BACKEND | CONTEXT_KIND) || key.starts_with("aws-crypto-")
}

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

/// Which suites a reader opens (`client-apis/decrypt.md` has the opposite switch: the
/// official SDKs' "decrypt unsigned only" streaming mode refuses *signed* messages; a secret
/// loader reads whole messages, and its reason to choose is the reverse: when secrets are
/// signed, a reader who can decrypt data keys must not be able to forge an unsigned one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignaturePolicy {
    /// Signed messages only (an envelope configured with `suite=committing-signed`).
    RequireSigned,
    /// Both committing suites (the default).
    AllowUnsigned,
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

/// Seals and opens secret values as AWS Encryption SDK messages.
pub struct Envelope {
    keyring: Keyring,
    label: String,
    suite: AlgorithmSuite,
    limits: Limits,
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
        Ok(Self::with_keyring(Keyring::Kms { client, key_arn }, suite))
    }

    /// Envelopes under a local AES wrapping key of 128, 192 or 256 bits (the AWS Encryption
    /// SDK's raw AES keyring), named by `namespace` and `name` as that keyring requires. For
    /// tests and offline use: whoever holds the key can open every envelope.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when the key is not 16, 24 or 32 bytes, or the namespace is or
    /// starts with `aws-kms` (reserved for AWS KMS).
    pub async fn raw_aes(
        namespace: &str,
        name: &str,
        key: &SecretSlice<u8>,
        suite: AlgorithmSuite,
    ) -> Result<Self> {
        let keyring = Keyring::raw_aes(namespace, name, key.expose_secret())?;
        Ok(Self::with_keyring(keyring, suite))
    }

    fn with_keyring(keyring: Keyring, suite: AlgorithmSuite) -> Self {
        Self {
            label: keyring.label(),
            keyring,
            suite,
            limits: Limits::default(),
        }
    }

    /// The key that wraps data keys: a KMS key ARN, or `namespace/name` of a local key.
    pub fn key_label(&self) -> &str {
        &self.label
    }

    /// The suite used to seal.
    pub fn suite(&self) -> AlgorithmSuite {
        self.suite
    }

    /// What this envelope opens: an envelope that seals with the signed suite opens signed
    /// messages only (a reader who may decrypt data keys could otherwise write an unsigned
    /// message that it accepts); one that seals with the unsigned suite opens both.
    pub fn signature_policy(&self) -> SignaturePolicy {
        match self.suite {
            AlgorithmSuite::CommittingSigned => SignaturePolicy::RequireSigned,
            AlgorithmSuite::Committing => SignaturePolicy::AllowUnsigned,
        }
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
    /// back. Extra pairs can't set the reserved keys (`secret-loader:id`, `:backend`, `:kind`,
    /// and the format's `aws-crypto-*`).
    ///
    /// # Errors
    /// As [`Envelope::seal`]; [`Error::InvalidConfig`] for an extra pair with a reserved key.
    pub async fn seal_with_context(
        &self,
        backend: &'static str,
        id: &SecretId,
        value: &SecretValue,
        extra: &[(&str, &str)],
    ) -> Result<Vec<u8>> {
        let mut context = context(backend, id, extra)?;
        let kind = if value.is_text() { "text" } else { "binary" };
        context.insert(CONTEXT_KIND.to_owned(), kind.to_owned());
        let suite = self.suite.format_suite();
        // The signed suite's verification key travels in the context (structures.md).
        let signing = match suite {
            Suite::CommittingSigned => {
                let key = SigningKey::generate()
                    .map_err(|e| format_error(ErrorKind::Other, backend, id, e))?;
                let public = key
                    .public_key_base64()
                    .map_err(|e| format_error(ErrorKind::Other, backend, id, e))?;
                context.insert(PUBLIC_KEY_CONTEXT.to_owned(), public);
                Some(key)
            }
            Suite::Committing => None,
        };
        let data_key = self
            .keyring
            .generate(&context, backend, id.as_str())
            .await?;
        format::encrypt(
            suite,
            &context,
            std::slice::from_ref(&data_key.encrypted),
            &data_key.plaintext,
            signing.as_ref(),
            value.expose_bytes(),
            FRAME_LENGTH,
        )
        .map_err(|e| format_error(ErrorKind::Other, backend, id, e))
    }

    /// Opens an envelope read for secret `id` in `backend`.
    ///
    /// # Errors
    /// [`Error::InvalidFormat`] when `message` is not an AWS Encryption SDK message at all
    /// (empty, plain text); [`Error::DecryptionFailed`] when it can't be opened (tampered,
    /// truncated, another key, another id or backend, a disabled key, a version or suite this
    /// reader refuses); KMS throttling, transient and access-denied failures by kind.
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
        let refused = |e| format_error(ErrorKind::DecryptionFailed, backend, id, e);
        let (header, body_at) = format::parse_header(&message, &self.limits).map_err(refused)?;
        // Before any key is asked for: the suite and its verification key agree, and the
        // reader's signature policy admits the suite.
        format::check_signature_rules(&header, self.signature_policy()).map_err(refused)?;
        // decrypt.md: the context given by the caller must be in the message's.
        for (key, value) in context(backend, id, extra)? {
            if header.context.get(&key) != Some(&value) {
                return Err(Error::from_kind(
                    ErrorKind::DecryptionFailed,
                    backend,
                    id.as_str(),
                    Some(format!("the message is not bound to this `{key}`").into()),
                ));
            }
        }
        let data_key = self
            .keyring
            .decrypt(
                &header.encrypted_data_keys,
                &header.context,
                backend,
                id.as_str(),
            )
            .await?;
        let mut opened = format::decrypt(&header, &message, body_at, &data_key).map_err(refused)?;
        // Moved, not copied, into the value (which zeroizes it when dropped).
        let plaintext = std::mem::take(&mut *opened);
        let kind = header.context.get(CONTEXT_KIND).map(String::as_str);
        match kind {
            Some("binary") => Ok(SecretValue::binary(plaintext)),
            _ => match String::from_utf8(plaintext) {
                Ok(text) => Ok(SecretValue::text(text)),
                Err(err) if kind.is_none() => Ok(SecretValue::binary(err.into_bytes())),
                // Sealed as text but not UTF-8: only a foreign writer can do that.
                Err(err) => {
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
}

impl AlgorithmSuite {
    fn format_suite(self) -> Suite {
        match self {
            Self::Committing => Suite::Committing,
            Self::CommittingSigned => Suite::CommittingSigned,
        }
    }
}

/// The encryption context every envelope of `id` in `backend` must carry, plus `extra`.
fn context(
    backend: &'static str,
    id: &SecretId,
    extra: &[(&str, &str)],
) -> Result<BTreeMap<String, String>> {
    let mut context = BTreeMap::from([
        (CONTEXT_ID.to_owned(), id.to_string()),
        (CONTEXT_BACKEND.to_owned(), backend.to_owned()),
    ]);
    for (key, value) in extra {
        if reserved(key)
            || context
                .insert((*key).to_owned(), (*value).to_owned())
                .is_some()
        {
            return Err(Error::invalid_config(format!(
                "encryption context key `{key}` is reserved or given twice"
            )));
        }
    }
    Ok(context)
}

fn not_an_envelope(backend: &'static str, id: &SecretId, reason: &str) -> Error {
    Error::InvalidFormat {
        backend,
        id: id.to_string(),
        reason: reason.to_owned(),
    }
}

fn format_error(kind: ErrorKind, backend: &'static str, id: &SecretId, err: FormatError) -> Error {
    Error::from_kind(kind, backend, id.as_str(), Some(Box::new(err)))
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
        use aws_sdk_kms::primitives::Blob;
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
