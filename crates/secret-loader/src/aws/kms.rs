//! AWS KMS: its error codes, key-ARN resolution, and a probe that classifies the KMS calls
//! the AWS Encryption SDK makes on our behalf.

use std::sync::{Arc, Mutex};

use aws_sdk_kms::Client;
use aws_sdk_kms::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_kms::error::ProvideErrorMetadata;
use aws_sdk_kms::operation::decrypt::DecryptError;
use aws_sdk_kms::operation::generate_data_key::GenerateDataKeyError;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef;

use crate::aws::{classify_sdk_error, service_error_kind};
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
    if key_id.starts_with("arn:") && key_id.contains(":key/") {
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
        .ok_or_else(|| Error::invalid_config(format!("KMS DescribeKey gave no ARN for `{key_id}`")))
}

/// Records how the KMS calls of one envelope operation failed.
///
/// The AWS Encryption SDK makes the KMS calls itself and turns transport failures and
/// unmodelled errors (throttling, access denied, connection refused) into opaque text. This
/// interceptor, installed on a client used for one operation only, sees the SDK's own typed
/// result first and keeps its [`ErrorKind`], so envelope errors are classified by the same rules
/// as every other AWS call and not by parsing messages.
#[derive(Debug, Clone, Default)]
pub(crate) struct FailureProbe(Arc<Mutex<Option<ErrorKind>>>);

impl FailureProbe {
    /// The kind of the last failed KMS call, if any failed.
    pub(crate) fn kind(&self) -> Option<ErrorKind> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets what was recorded, before the next operation.
    pub(crate) fn reset(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// A copy of `client` that reports its failures to this probe.
    pub(crate) fn client(&self, client: &Client) -> Client {
        let config = client
            .config()
            .to_builder()
            .interceptor(self.clone())
            .build();
        Client::from_conf(config)
    }
}

impl Intercept for FailureProbe {
    fn name(&self) -> &'static str {
        "SecretLoaderKmsFailureProbe"
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(Err(err)) = context.output_or_error() else {
            return Ok(());
        };
        let kind = if err.is_timeout_error() || err.is_response_error() {
            ErrorKind::Transient
        } else if let Some(connector) = err.as_connector_error() {
            if connector.is_user() {
                ErrorKind::Other
            } else {
                ErrorKind::Transient
            }
        } else if let Some(operation) = err.as_operation_error() {
            // The interceptor API hands the operation error over type-erased; these are the
            // two operations envelopes use.
            let code = operation
                .downcast_ref::<DecryptError>()
                .and_then(|e| e.code())
                .or_else(|| {
                    operation
                        .downcast_ref::<GenerateDataKeyError>()
                        .and_then(|e| e.code())
                });
            let status = context.response().map_or(0, |r| r.status().as_u16());
            service_error_kind(code, status, error_code_kind)
        } else {
            ErrorKind::Other
        };
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(kind);
        Ok(())
    }
}
