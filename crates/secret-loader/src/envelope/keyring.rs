//! Where data keys come from: an AWS KMS key (`framework/aws-kms/aws-kms-keyring.md`) or a
//! local AES-256 wrapping key (`framework/raw-aes-keyring.md`). KMS calls are plain async
//! calls on the source's own client, classified like every other AWS call.

use std::collections::{BTreeMap, HashMap};

use aws_lc_rs::aead::{AES_128_GCM, AES_192_GCM, AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_sdk_kms::primitives::Blob;
use zeroize::Zeroizing;

use super::format::{EncryptedDataKey, serialize_context};
use crate::aws::classify_sdk_error;
use crate::aws::kms::error_code_kind;
use crate::error::{Error, ErrorKind, Result};

/// Provider ID of AWS KMS encrypted data keys (`aws-kms-keyring.md`, OnEncrypt).
const KMS_PROVIDER_ID: &str = "aws-kms";
const DATA_KEY_LEN: usize = 32;
const GCM_IV_LEN: usize = 12;
const GCM_TAG_LEN: usize = 16;

/// A keyring: one KMS key, or one local AES-256 key named by `namespace` and `name`.
pub(crate) enum Keyring {
    Kms {
        client: aws_sdk_kms::Client,
        key_arn: String,
    },
    RawAes {
        namespace: String,
        name: String,
        key: LessSafeKey,
    },
}

/// A data key and how it travels in the message.
pub(crate) struct DataKey {
    pub(crate) plaintext: Zeroizing<Vec<u8>>,
    pub(crate) encrypted: EncryptedDataKey,
}

impl Keyring {
    /// A local keyring (`raw-aes-keyring.md`): a wrapping key of 128, 192 or 256 bits, and a
    /// namespace that is not and doesn't start with `aws-kms` (`keyring-interface.md`, key
    /// provider ID: reserved for the AWS KMS keyrings).
    pub(crate) fn raw_aes(namespace: &str, name: &str, key: &[u8]) -> Result<Self> {
        if namespace.starts_with(KMS_PROVIDER_ID) {
            return Err(Error::invalid_config(format!(
                "a raw AES keyring's namespace can't start with `{KMS_PROVIDER_ID}` (reserved for AWS KMS)"
            )));
        }
        let algorithm = match key.len() {
            16 => &AES_128_GCM,
            24 => &AES_192_GCM,
            32 => &AES_256_GCM,
            other => {
                return Err(Error::invalid_config(format!(
                    "a raw AES wrapping key is 128, 192 or 256 bits, not {} bits",
                    other * 8
                )));
            }
        };
        let key = UnboundKey::new(algorithm, key)
            .map_err(|_| Error::invalid_config("the raw AES wrapping key can't be used"))?;
        Ok(Self::RawAes {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            key: LessSafeKey::new(key),
        })
    }

    /// A fresh data key, encrypted under this keyring with `context` bound to it.
    ///
    /// # Errors
    /// KMS failures by kind (a key that can't be used to write is [`ErrorKind::Other`]).
    pub(crate) async fn generate(
        &self,
        context: &BTreeMap<String, String>,
        backend: &'static str,
        id: &str,
    ) -> Result<DataKey> {
        match self {
            // aws-kms-keyring.md, OnEncrypt: GenerateDataKey with the context; the provider
            // info is the key ARN KMS answers with.
            Self::Kms { client, key_arn } => {
                let output = client
                    .generate_data_key()
                    .key_id(key_arn)
                    .number_of_bytes(DATA_KEY_LEN as i32)
                    .set_encryption_context(Some(kms_context(context)))
                    .send()
                    .await
                    .map_err(|err| {
                        let err = classify_sdk_error(err, backend, id, error_code_kind);
                        match err.kind() {
                            // A key that can't be used is not a decryption failure when writing.
                            ErrorKind::DecryptionFailed => {
                                Error::from_kind(ErrorKind::Other, backend, id, Some(Box::new(err)))
                            }
                            _ => err,
                        }
                    })?;
                let plaintext =
                    Zeroizing::new(output.plaintext.map(Blob::into_inner).unwrap_or_default());
                let answered = output.key_id.unwrap_or_default();
                let ciphertext = output
                    .ciphertext_blob
                    .map(Blob::into_inner)
                    .unwrap_or_default();
                if plaintext.len() != DATA_KEY_LEN
                    || ciphertext.is_empty()
                    || !is_kms_key_arn(&answered)
                {
                    return Err(other(
                        backend,
                        id,
                        "KMS GenerateDataKey gave an unusable answer",
                    ));
                }
                Ok(DataKey {
                    plaintext,
                    encrypted: EncryptedDataKey {
                        provider_id: KMS_PROVIDER_ID.to_owned(),
                        provider_info: answered.into_bytes(),
                        ciphertext,
                    },
                })
            }
            // raw-aes-keyring.md, OnEncrypt: a random data key, AES-GCM under the wrapping key
            // with a random IV and the serialized context as AAD.
            Self::RawAes {
                namespace,
                name,
                key,
            } => {
                let mut plaintext = Zeroizing::new(vec![0u8; DATA_KEY_LEN]);
                let mut iv = [0u8; GCM_IV_LEN];
                crate::random::fill(&mut plaintext[..])
                    .and_then(|()| crate::random::fill(&mut iv))
                    .map_err(|_| other(backend, id, "no randomness"))?;
                let aad =
                    serialize_context(context).map_err(|e| other(backend, id, &e.to_string()))?;
                let mut ciphertext = plaintext.to_vec();
                let tag = key
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(iv),
                        Aad::from(&aad[..]),
                        &mut ciphertext,
                    )
                    .map_err(|_| other(backend, id, "wrapping the data key failed"))?;
                ciphertext.extend_from_slice(tag.as_ref());
                Ok(DataKey {
                    plaintext,
                    encrypted: EncryptedDataKey {
                        provider_id: namespace.clone(),
                        provider_info: raw_aes_provider_info(name, &iv),
                        ciphertext,
                    },
                })
            }
        }
    }

    /// The data key from the first of `encrypted` this keyring can decrypt with `context`.
    /// Only keys whose provider ID and info name this keyring are tried (for KMS: our key ARN).
    ///
    /// # Errors
    /// [`ErrorKind::DecryptionFailed`] when none is ours or none opens; KMS throttling,
    /// transient and access-denied failures by kind.
    pub(crate) async fn decrypt(
        &self,
        encrypted: &[EncryptedDataKey],
        context: &BTreeMap<String, String>,
        backend: &'static str,
        id: &str,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let mut last: Option<Error> = None;
        match self {
            // aws-kms-keyring.md, OnDecrypt: provider ID `aws-kms`, provider info our key ARN;
            // Decrypt with that key ID and the context; the answer's key ID must be ours.
            Self::Kms { client, key_arn } => {
                // An `aws-kms` key whose provider info is not a KMS key ARN: OnDecrypt MUST fail.
                if encrypted.iter().any(|edk| {
                    edk.provider_id == KMS_PROVIDER_ID
                        && !std::str::from_utf8(&edk.provider_info).is_ok_and(is_kms_key_arn)
                }) {
                    return Err(decryption_failed(
                        backend,
                        id,
                        "an aws-kms encrypted data key whose provider info is not a KMS key ARN",
                    ));
                }
                for edk in encrypted.iter().filter(|edk| {
                    edk.provider_id == KMS_PROVIDER_ID && edk.provider_info == key_arn.as_bytes()
                }) {
                    let answer = client
                        .decrypt()
                        .key_id(key_arn)
                        .ciphertext_blob(Blob::new(edk.ciphertext.clone()))
                        .set_encryption_context(Some(kms_context(context)))
                        .send()
                        .await;
                    match answer {
                        Ok(output)
                            if output.key_id.as_deref() == Some(key_arn.as_str())
                                && output
                                    .plaintext
                                    .as_ref()
                                    .is_some_and(|p| p.as_ref().len() == DATA_KEY_LEN) =>
                        {
                            return Ok(Zeroizing::new(
                                output.plaintext.map(Blob::into_inner).unwrap_or_default(),
                            ));
                        }
                        Ok(_) => {
                            last = Some(decryption_failed(
                                backend,
                                id,
                                "KMS answered with another key or a bad data key",
                            ))
                        }
                        Err(err) => {
                            let err = classify_sdk_error(err, backend, id, error_code_kind);
                            // A retryable or access failure won't be cured by the next key.
                            if err.kind() != ErrorKind::DecryptionFailed {
                                return Err(err);
                            }
                            last = Some(err);
                        }
                    }
                }
            }
            // raw-aes-keyring.md, OnDecrypt: provider ID our namespace, provider info our name
            // with tag length 128, IV length 12, then the IV.
            Self::RawAes {
                namespace,
                name,
                key,
            } => {
                let aad = serialize_context(context)
                    .map_err(|e| decryption_failed(backend, id, &e.to_string()))?;
                for edk in encrypted.iter().filter(|edk| edk.provider_id == *namespace) {
                    let Some(iv) = raw_aes_iv(&edk.provider_info, name) else {
                        continue;
                    };
                    if edk.ciphertext.len() != DATA_KEY_LEN + GCM_TAG_LEN {
                        continue;
                    }
                    let mut buffer = Zeroizing::new(edk.ciphertext.clone());
                    if key
                        .open_in_place(
                            Nonce::assume_unique_for_key(iv),
                            Aad::from(&aad[..]),
                            &mut buffer[..],
                        )
                        .is_ok()
                    {
                        buffer.truncate(DATA_KEY_LEN);
                        return Ok(buffer);
                    }
                    last = Some(decryption_failed(
                        backend,
                        id,
                        "the local key does not open the data key",
                    ));
                }
            }
        }
        Err(last.unwrap_or_else(|| {
            decryption_failed(
                backend,
                id,
                "no encrypted data key in the message is for this key",
            )
        }))
    }

    /// The key that wraps data keys: a KMS key ARN, or `namespace/name` of a local key.
    pub(crate) fn label(&self) -> String {
        match self {
            Self::Kms { key_arn, .. } => key_arn.clone(),
            Self::RawAes {
                namespace, name, ..
            } => format!("{namespace}/{name}"),
        }
    }
}

/// A valid AWS KMS ARN with the resource type `key` (`framework/aws-kms/aws-kms-key-arn.md`):
/// `arn`, a partition, `kms`, a region, an account, then `key/` and a non-empty id.
pub(crate) fn is_kms_key_arn(text: &str) -> bool {
    let parts: Vec<&str> = text.splitn(6, ':').collect();
    let [arn, partition, service, region, account, resource] = parts[..] else {
        return false;
    };
    arn == "arn"
        && !partition.is_empty()
        && service == "kms"
        && !region.is_empty()
        && !account.is_empty()
        && resource
            .split_once('/')
            .is_some_and(|(kind, id)| kind == "key" && !id.is_empty())
}

fn kms_context(context: &BTreeMap<String, String>) -> HashMap<String, String> {
    context
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// `name | tag length in bits (u32) | IV length (u32) | IV` (raw-aes-keyring.md).
fn raw_aes_provider_info(name: &str, iv: &[u8; GCM_IV_LEN]) -> Vec<u8> {
    let mut info = Vec::with_capacity(name.len() + 8 + GCM_IV_LEN);
    info.extend_from_slice(name.as_bytes());
    info.extend_from_slice(&((GCM_TAG_LEN * 8) as u32).to_be_bytes());
    info.extend_from_slice(&(GCM_IV_LEN as u32).to_be_bytes());
    info.extend_from_slice(iv);
    info
}

/// The IV of provider info written for key `name`, if it is such info.
fn raw_aes_iv(info: &[u8], name: &str) -> Option<[u8; GCM_IV_LEN]> {
    let rest = info.strip_prefix(name.as_bytes())?;
    let (tag_bits, rest) = rest.split_first_chunk::<4>()?;
    let (iv_len, iv) = rest.split_first_chunk::<4>()?;
    if u32::from_be_bytes(*tag_bits) != (GCM_TAG_LEN * 8) as u32
        || u32::from_be_bytes(*iv_len) != GCM_IV_LEN as u32
    {
        return None;
    }
    iv.try_into().ok()
}

fn other(backend: &'static str, id: &str, what: &str) -> Error {
    Error::from_kind(ErrorKind::Other, backend, id, Some(what.into()))
}

fn decryption_failed(backend: &'static str, id: &str, what: &str) -> Error {
    Error::from_kind(ErrorKind::DecryptionFailed, backend, id, Some(what.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kms_key_arns_are_validated_as_the_specification_says() {
        for good in [
            "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "arn:aws-cn:kms:cn-north-1:123456789012:key/mrk-1",
            "arn:aws:kms:us-east-1:123456789012:key/a/b",
        ] {
            assert!(is_kms_key_arn(good), "{good}");
        }
        for bad in [
            "",
            "1234abcd-12ab-34cd-56ef-1234567890ab",
            "alias/app",
            "arn:aws:kms:us-east-1:123456789012:alias/app",
            "arn:aws:s3:us-east-1:123456789012:key/x",
            "arn::kms:us-east-1:123456789012:key/x",
            "arn:aws:kms::123456789012:key/x",
            "arn:aws:kms:us-east-1::key/x",
            "arn:aws:kms:us-east-1:123456789012:key/",
            "arn:aws:kms:us-east-1:123456789012:key",
            "urn:aws:kms:us-east-1:123456789012:key/x",
        ] {
            assert!(!is_kms_key_arn(bad), "{bad}");
        }
    }

    #[test]
    fn raw_aes_keys_are_128_192_or_256_bits_and_aws_kms_is_reserved() {
        for len in [16, 24, 32] {
            assert!(
                Keyring::raw_aes("ns", "k", &vec![1u8; len]).is_ok(),
                "{len}"
            );
        }
        for len in [0, 15, 31, 33, 64] {
            let err = Keyring::raw_aes("ns", "k", &vec![1u8; len]).err().unwrap();
            assert!(err.to_string().contains("128, 192 or 256 bits"), "{err}");
        }
        for namespace in ["aws-kms", "aws-kms-mrk", "aws-kmsx"] {
            let err = Keyring::raw_aes(namespace, "k", &[1u8; 32]).err().unwrap();
            assert!(err.to_string().contains("reserved"), "{err}");
        }
    }
}
