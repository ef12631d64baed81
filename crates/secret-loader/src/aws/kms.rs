//! AWS KMS: its error codes and key-ARN resolution.

use aws_sdk_kms::Client;

use crate::aws::classify_sdk_error;
use crate::error::{Error, ErrorKind, Result};

/// The one place KMS's own error codes are classified.
///
/// Key-state problems (disabled, pending deletion, wrong key, unusable ciphertext) are
/// [`ErrorKind::DecryptionFailed`]: the secret can't be opened until someone fixes the key.
pub(crate) fn error_code_kind(code: &str) -> Option<ErrorKind> {
    Some(match code {
        "DisabledException"
        | "KMSInvalidStateException"
        | "KmsInvalidStateException"
        | "InvalidCiphertextException"
        | "IncorrectKeyException"
        | "KeyUnavailableException"
        | "InvalidKeyUsageException"
        | "NotFoundException" => ErrorKind::DecryptionFailed,
        "KMSInternalException" | "KmsInternalException" | "DependencyTimeoutException" => {
            ErrorKind::Transient
        }
        _ => return None,
    })
}

/// The full ARN of `key_id` (an ARN, a key id, an alias name or an alias ARN).
/// Decrypting with a KMS keyring needs the key ARN; an ARN is returned as is, without a call,
/// anything else costs one `DescribeKey`.
///
/// # Errors
/// [`Error::InvalidConfig`] when the key does not exist; other KMS failures by kind
/// (throttled, transient, access denied).
pub(crate) async fn resolve_key_arn(client: &Client, key_id: &str) -> Result<String> {
    if crate::envelope::is_kms_key_arn(key_id) {
        return Ok(key_id.to_owned());
    }
    let output = client
        .describe_key()
        .key_id(key_id)
        .send()
        .await
        .map_err(|err| {
            let not_found = err
                .as_service_error()
                .is_some_and(|e| e.is_not_found_exception());
            if not_found {
                Error::invalid_config(format!("KMS key `{key_id}` does not exist"))
            } else {
                classify_sdk_error(err, "kms", key_id, error_code_kind)
            }
        })?;
    output
        .key_metadata
        .and_then(|meta| meta.arn)
        .filter(|arn| crate::envelope::is_kms_key_arn(arn))
        .ok_or_else(|| {
            Error::invalid_config(format!("KMS DescribeKey gave no key ARN for `{key_id}`"))
        })
}
