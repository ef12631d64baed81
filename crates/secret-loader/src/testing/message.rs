//! A test-only writer and reader of AWS Encryption SDK messages at the level of their parts,
//! for messages whose tags all check but that break a rule (a suite without its verification
//! key, an unsigned suite carrying one, a reserved provider id, a limit crossed), and for the
//! forgery an attacker who may `kms:Decrypt` would try. The library's own `Envelope` never
//! writes such messages; these functions exist so tests can prove the reader refuses them.

use std::collections::BTreeMap;

use crate::envelope::format::{self, EncryptedDataKey, Limits, SigningKey, Suite};

/// The encryption-context key of the signed suite's verification key.
pub const PUBLIC_KEY_CONTEXT: &str = format::PUBLIC_KEY_CONTEXT;

/// One encrypted data key as the header carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataKeyEntry {
    /// The key provider id (`aws-kms`, or a raw keyring's namespace).
    pub provider_id: String,
    /// The key provider info (a KMS key ARN, or a raw keyring's name, tag length, IV).
    pub provider_info: Vec<u8>,
    /// The wrapped data key.
    pub ciphertext: Vec<u8>,
}

/// What a header says, parsed without any key.
#[derive(Debug, Clone)]
pub struct HeaderParts {
    /// The algorithm suite id (0x0478 or 0x0578).
    pub suite: u16,
    /// The encryption context.
    pub context: BTreeMap<String, String>,
    /// The encrypted data keys.
    pub data_keys: Vec<DataKeyEntry>,
}

/// Parses the header of `message` (structure only; nothing is authenticated).
///
/// # Errors
/// The reader's reason, as text.
pub fn parse_header(message: &[u8]) -> Result<HeaderParts, String> {
    let limits = Limits {
        max_encrypted_data_keys: usize::from(u16::MAX),
        max_frame_length: u32::MAX,
        max_message_bytes: usize::MAX,
    };
    let (header, _) = format::parse_header(message, &limits).map_err(|e| e.to_string())?;
    Ok(HeaderParts {
        suite: header.suite.id(),
        context: header.context,
        data_keys: header
            .encrypted_data_keys
            .into_iter()
            .map(|edk| DataKeyEntry {
                provider_id: edk.provider_id,
                provider_info: edk.provider_info,
                ciphertext: edk.ciphertext,
            })
            .collect(),
    })
}

/// Writes a framed message of `suite` (0x0478 or 0x0578) around `plaintext` with `data_key`,
/// exactly the `context` and `data_keys` given: nothing is added (in particular no
/// verification key for the signed suite, which is signed with a fresh key when `sign`).
///
/// # Errors
/// An unknown suite, or what the writer refuses, as text.
pub fn write(
    suite: u16,
    context: &BTreeMap<String, String>,
    data_keys: &[DataKeyEntry],
    data_key: &[u8],
    plaintext: &[u8],
    frame_length: u32,
) -> Result<Vec<u8>, String> {
    let suite = match suite {
        0x0478 => Suite::Committing,
        0x0578 => Suite::CommittingSigned,
        other => return Err(format!("suite {other:#06x} is not written")),
    };
    let signing = match suite {
        Suite::CommittingSigned => Some(SigningKey::generate().map_err(|e| e.to_string())?),
        Suite::Committing => None,
    };
    let edks: Vec<EncryptedDataKey> = data_keys
        .iter()
        .map(|entry| EncryptedDataKey {
            provider_id: entry.provider_id.clone(),
            provider_info: entry.provider_info.clone(),
            ciphertext: entry.ciphertext.clone(),
        })
        .collect();
    format::encrypt(
        suite,
        context,
        &edks,
        data_key,
        signing.as_ref(),
        plaintext,
        frame_length,
    )
    .map_err(|e| e.to_string())
}

/// A fresh P-384 verification key as a context value (base64 of the compressed point).
///
/// # Errors
/// When no key can be made.
pub fn verification_key() -> Result<String, String> {
    SigningKey::generate()
        .and_then(|key| key.public_key_base64())
        .map_err(|e| e.to_string())
}

/// A fresh data key wrapped by a raw AES keyring (`namespace`, `name`, `key`) for `context`,
/// as that keyring writes it: the plaintext data key and its header entry.
///
/// # Errors
/// A key of the wrong size or a reserved namespace, as text.
pub async fn raw_aes_data_key(
    namespace: &str,
    name: &str,
    key: &[u8],
    context: &BTreeMap<String, String>,
) -> Result<(Vec<u8>, DataKeyEntry), String> {
    let keyring = crate::envelope::keyring::Keyring::raw_aes(namespace, name, key)
        .map_err(|e| e.to_string())?;
    let data_key = keyring
        .generate(context, "file+kms", "test")
        .await
        .map_err(|e| e.to_string())?;
    Ok((
        data_key.plaintext.to_vec(),
        DataKeyEntry {
            provider_id: data_key.encrypted.provider_id,
            provider_info: data_key.encrypted.provider_info,
            ciphertext: data_key.encrypted.ciphertext,
        },
    ))
}
