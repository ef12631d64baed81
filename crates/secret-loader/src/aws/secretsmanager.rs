//! AWS Secrets Manager backend (`secretsmanager://`).

use std::fmt;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::primitives::Blob;

use crate::aws::{AwsOptions, classify_sdk_error};
use crate::error::{BoxError, Error, ErrorKind, Result};
use crate::id::SecretId;
use crate::options::Options;
use crate::source::{PutOutcome, SecretSource, SecretStore, get_each};
use crate::value::{Secret, SecretValue, VersionSelector};

/// The backend name used in errors and `Display`.
pub const BACKEND: &str = "secretsmanager";

/// The most ids one `BatchGetSecretValue` call takes.
pub const BATCH_LIMIT: usize = 20;

/// The largest secret value Secrets Manager keeps (`SecretString` or `SecretBinary`), bytes.
pub const MAX_SECRET_BYTES: u64 = 65_536;

/// The most `BatchGetSecretValue` calls one `get_many` keeps in flight.
pub const BATCHES_IN_FLIGHT: usize = 4;

/// Options of `secretsmanager://`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct SecretsManagerConfig {
    /// Shared AWS options.
    pub aws: AwsOptions,
    /// KMS key for secrets the CLI creates (`kms_key_id=`); default `aws/secretsmanager`.
    pub kms_key_id: Option<String>,
}

impl SecretsManagerConfig {
    /// The option keys of `secretsmanager://` besides [`AwsOptions::KEYS`].
    pub(crate) const KEYS: &'static [&'static str] = &["kms_key_id"];

    /// The options of `secretsmanager://` (which takes no host or path, only options),
    /// taken out of `options`. `text` is the whole URL, for messages.
    pub(crate) fn from_url(text: &str, url: &url::Url, options: &mut Options) -> Result<Self> {
        if url.host_str().is_some_and(|h| !h.is_empty()) || !matches!(url.path(), "" | "/") {
            return Err(Error::invalid_config(format!(
                "`{text}`: secretsmanager:// takes no host or path, only options \
                 (secretsmanager://?region=...)"
            )));
        }
        Ok(Self {
            aws: AwsOptions::from_options(options)?,
            kms_key_id: options.take("kms_key_id"),
        })
    }
}

/// Reads (and writes) secrets in AWS Secrets Manager.
///
/// A read is one `GetSecretValue` call (by name or ARN, optionally a `VersionStage` or
/// `VersionId`); `get_many` uses `BatchGetSecretValue`, 20 ids a call. Retries and
/// deadlines are the client's (see [`AwsOptions`]).
#[derive(Clone)]
pub struct SecretsManagerSource {
    client: Client,
    kms_key_id: Option<String>,
    /// Region, endpoint, profile and principal: see [`crate::aws`]'s `scope`.
    scope: String,
}

impl SecretsManagerSource {
    /// A source over an existing client. Its [identity](SecretSource::identity) knows only
    /// the client's region: build from an [`SdkConfig`] where the endpoint matters to a cache.
    pub fn new(client: Client) -> Self {
        let scope = crate::aws::client_scope(client.config().region());
        Self {
            client,
            kms_key_id: None,
            scope,
        }
    }

    /// A source with a client built from a loaded SDK configuration
    /// (share one [`SdkConfig`] between backends: loading it is the slow part).
    pub async fn from_sdk_config(config: &SdkConfig) -> Self {
        Self::scoped(config, None).await
    }

    /// The source `config` describes, with clients from `sdk`.
    pub async fn from_config(sdk: &SdkConfig, config: &SecretsManagerConfig) -> Self {
        Self::scoped(sdk, config.aws.profile.as_deref())
            .await
            .with_kms_key_id(config.kms_key_id.clone())
    }

    async fn scoped(sdk: &SdkConfig, profile: Option<&str>) -> Self {
        Self {
            client: Client::new(sdk),
            kms_key_id: None,
            scope: crate::aws::scope(sdk, profile, &[crate::aws::service::SECRETS_MANAGER]).await,
        }
    }

    /// The KMS key new secrets are created with (default: the account's `aws/secretsmanager` key).
    pub fn with_kms_key_id(mut self, kms_key_id: Option<String>) -> Self {
        self.kms_key_id = kms_key_id;
        self
    }

    /// One `BatchGetSecretValue` for `chunk`: a result per id, or `None` when the call itself
    /// is denied (the caller then reads those ids one by one).
    async fn batch_get(&self, chunk: &[SecretId]) -> Option<Vec<Result<Secret>>> {
        let request = self
            .client
            .batch_get_secret_value()
            .set_secret_id_list(Some(chunk.iter().map(|id| id.to_string()).collect()));
        let mut output = match request.send().await {
            Ok(output) => output,
            Err(err) => {
                let err = classify(err, "<batch>");
                return crate::aws::batch_failure(&err, BACKEND, "BatchGetSecretValue", chunk);
            }
        };

        let mut results: Vec<Option<Result<Secret>>> = chunk.iter().map(|_| None).collect();
        let slot_for = |results: &[Option<Result<Secret>>], candidates: [Option<&str>; 2]| {
            chunk
                .iter()
                .enumerate()
                .position(|(i, id)| results[i].is_none() && candidates.contains(&Some(id.as_str())))
        };
        for mut entry in output.secret_values.take().unwrap_or_default() {
            let Some(i) = slot_for(&results, [entry.name.as_deref(), entry.arn.as_deref()]) else {
                continue;
            };
            let value = take_value(entry.secret_string.take(), entry.secret_binary.take());
            results[i] = Some(
                value
                    .map(|value| {
                        Secret::new(chunk[i].clone(), BACKEND, value)
                            .with_version_id(entry.version_id.take())
                            .with_version_stages(entry.version_stages.take().unwrap_or_default())
                            .with_arn(entry.arn.take())
                            .with_name(entry.name.take())
                            .with_created(entry.created_date.and_then(to_system_time))
                    })
                    .map_err(|cause| other(&chunk[i], cause)),
            );
        }
        for api_error in output.errors.take().unwrap_or_default() {
            let Some(i) = slot_for(&results, [api_error.secret_id.as_deref(), None]) else {
                continue;
            };
            let code = api_error.error_code.unwrap_or_default();
            let kind = error_code_kind(&code)
                .or_else(|| crate::aws::common_code_kind(&code))
                .unwrap_or(ErrorKind::Other);
            let cause: BoxError =
                format!("{code}: {}", api_error.message.unwrap_or_default()).into();
            results[i] = Some(Err(Error::from_kind(
                kind,
                BACKEND,
                chunk[i].as_str(),
                Some(cause),
            )));
        }

        Some(crate::aws::complete_singly(self, chunk, results).await)
    }

    async fn put_version(&self, id: &SecretId, value: &SecretValue) -> Result<PutOutcome> {
        let request = self.client.put_secret_value().secret_id(id.as_str());
        let request = match text_of(value) {
            Some(text) => request.secret_string(text),
            None => request.secret_binary(Blob::new(value.expose_bytes())),
        };
        let output = request
            .send()
            .await
            .map_err(|err| classify(err, id.as_str()))?;
        Ok(PutOutcome::new(output.version_id, false))
    }

    /// Creates the secret; `None` when it already exists.
    async fn create(&self, id: &SecretId, value: &SecretValue) -> Result<Option<PutOutcome>> {
        let request = self
            .client
            .create_secret()
            .name(id.as_str())
            .set_kms_key_id(self.kms_key_id.clone());
        let request = match text_of(value) {
            Some(text) => request.secret_string(text),
            None => request.secret_binary(Blob::new(value.expose_bytes())),
        };
        match request.send().await {
            Ok(output) => Ok(Some(PutOutcome::new(output.version_id, true))),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_exists_exception()) =>
            {
                Ok(None)
            }
            Err(err) => Err(classify(err, id.as_str())),
        }
    }
}

/// The text to send as `SecretString`, or `None` to send the value as `SecretBinary`.
fn text_of(value: &SecretValue) -> Option<&str> {
    value.expose_str().filter(|_| value.is_text())
}

/// The one place Secrets Manager's own error codes are classified.
fn error_code_kind(code: &str) -> Option<ErrorKind> {
    Some(match code {
        "ResourceNotFoundException" => ErrorKind::NotFound,
        "AccessDeniedException" => ErrorKind::AccessDenied,
        "DecryptionFailure" => ErrorKind::DecryptionFailed,
        "InternalServiceError" => ErrorKind::Transient,
        _ => return None,
    })
}

fn classify<E>(err: aws_sdk_secretsmanager::error::SdkError<E>, id: &str) -> Error
where
    E: aws_sdk_secretsmanager::error::ProvideErrorMetadata
        + std::error::Error
        + Send
        + Sync
        + 'static,
{
    classify_sdk_error(err, BACKEND, id, error_code_kind)
}

fn take_value(text: Option<String>, binary: Option<Blob>) -> Result<SecretValue, &'static str> {
    match (text, binary) {
        (Some(text), _) => Ok(SecretValue::text(text)),
        (None, Some(binary)) => Ok(SecretValue::binary(binary.into_inner())),
        (None, None) => Err("response holds neither SecretString nor SecretBinary"),
    }
}

/// An SDK timestamp as a `SystemTime` (`None` before the epoch or out of range).
pub(crate) fn to_system_time(time: aws_smithy_types::DateTime) -> Option<std::time::SystemTime> {
    std::time::SystemTime::try_from(time).ok()
}

/// `id` as a `SecretId`: a name, or a secret's ARN. A parameter's ARN is refused before any
/// call.
fn secret_id(id: &SecretId) -> Result<&str> {
    if id.arn_service() == Some(crate::ArnService::ParameterStore) {
        return Err(Error::InvalidId {
            id: id.to_string(),
            reason: "is a Parameter Store ARN; Secrets Manager takes secret names and ARNs",
        });
    }
    Ok(id.as_str())
}

fn other(id: &SecretId, cause: &'static str) -> Error {
    Error::Other {
        backend: BACKEND,
        id: id.to_string(),
        source: Some(std::sync::Arc::from(BoxError::from(cause))),
    }
}

#[async_trait]
impl SecretSource for SecretsManagerSource {
    fn identity(&self) -> String {
        format!("{BACKEND}:{}", self.scope)
    }

    async fn get(&self, id: &SecretId, version: &VersionSelector) -> Result<Secret> {
        let request = self.client.get_secret_value().secret_id(secret_id(id)?);
        let request = match version {
            VersionSelector::Current => request,
            VersionSelector::Stage(stage) => request.version_stage(stage),
            VersionSelector::Id(version_id) => request.version_id(version_id),
        };
        let mut output = request
            .send()
            .await
            .map_err(|err| classify(err, id.as_str()))?;
        let value = take_value(output.secret_string.take(), output.secret_binary.take())
            .map_err(|cause| other(id, cause))?;
        tracing::debug!(backend = BACKEND, id = %id, version = ?output.version_id, "read secret");
        Ok(Secret::new(id.clone(), BACKEND, value)
            .with_version_id(output.version_id.take())
            .with_version_stages(output.version_stages.take().unwrap_or_default())
            .with_arn(output.arn.take())
            .with_name(output.name.take())
            .with_created(output.created_date.and_then(to_system_time)))
    }

    /// Batches of [`BATCH_LIMIT`] ids, at most [`BATCHES_IN_FLIGHT`] at once. Where the
    /// batch call is denied, those ids are read one by one, all of them through one
    /// [`get_each`], so at most [`DEFAULT_GET_MANY_CONCURRENCY`](crate::DEFAULT_GET_MANY_CONCURRENCY)
    /// single reads are in flight however many ids are asked for.
    async fn get_many(&self, ids: &[SecretId]) -> Vec<Result<Secret>> {
        use futures_util::StreamExt;
        if ids.iter().any(|id| secret_id(id).is_err()) {
            // Those fail in their slots without a call; the others are read as a batch.
            let valid: Vec<SecretId> = ids
                .iter()
                .filter(|id| secret_id(id).is_ok())
                .cloned()
                .collect();
            let mut read = self.get_many(&valid).await.into_iter();
            return ids
                .iter()
                .map(|id| match secret_id(id) {
                    Ok(_) => read.next().expect("one result per valid id"),
                    Err(err) => Err(err),
                })
                .collect();
        }
        let chunks: Vec<_> = ids.chunks(BATCH_LIMIT).collect();
        let batches: Vec<Option<Vec<Result<Secret>>>> = futures_util::stream::iter(
            chunks
                .iter()
                .map(|chunk| self.batch_get(chunk))
                .collect::<Vec<_>>(),
        )
        .buffered(BATCHES_IN_FLIGHT)
        .collect()
        .await;
        let denied: Vec<SecretId> = chunks
            .iter()
            .zip(&batches)
            .filter(|(_, batch)| batch.is_none())
            .flat_map(|(chunk, _)| chunk.iter().cloned())
            .collect();
        let mut singles = get_each(self, &denied).await.into_iter();
        let mut out = Vec::with_capacity(ids.len());
        for (chunk, batch) in chunks.iter().zip(batches) {
            match batch {
                Some(results) => out.extend(results),
                None => out.extend(singles.by_ref().take(chunk.len())),
            }
        }
        out
    }
}

/// One `DescribeSecret`: the version carrying `AWSCURRENT`. The memory cache's version check.
#[async_trait]
impl crate::cache::CurrentVersion for SecretsManagerSource {
    async fn current_version(&self, id: &SecretId) -> Result<Option<String>> {
        let output = self
            .client
            .describe_secret()
            .secret_id(secret_id(id)?)
            .send()
            .await
            .map_err(|err| classify(err, id.as_str()))?;
        Ok(output.version_ids_to_stages.and_then(|versions| {
            versions
                .into_iter()
                .find(|(_, stages)| stages.iter().any(|s| s == crate::STAGE_CURRENT))
                .map(|(version, _)| version)
        }))
    }
}

#[async_trait]
impl SecretStore for SecretsManagerSource {
    async fn put(&self, id: &SecretId, value: &SecretValue) -> Result<PutOutcome> {
        secret_id(id)?;
        if value.len() as u64 > MAX_SECRET_BYTES {
            return Err(Error::too_large(
                BACKEND,
                id.as_str(),
                "the value",
                value.len(),
                MAX_SECRET_BYTES,
            ));
        }
        match self.put_version(id, value).await {
            // A name that doesn't exist yet is created; an ARN names an existing secret.
            Err(Error::NotFound { .. }) if !id.is_arn() => match self.create(id, value).await? {
                Some(created) => Ok(created),
                // Someone created it in between: store ours as its new version.
                None => self.put_version(id, value).await,
            },
            result => result,
        }
    }

    async fn delete(&self, id: &SecretId) -> Result<()> {
        self.client
            .delete_secret()
            .secret_id(secret_id(id)?)
            .send()
            .await
            .map_err(|err| classify(err, id.as_str()))?;
        Ok(())
    }
}

impl fmt::Debug for SecretsManagerSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretsManagerSource")
            .field("region", &self.client.config().region())
            .field("kms_key_id", &self.kms_key_id)
            .finish()
    }
}

impl fmt::Display for SecretsManagerSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.client.config().region() {
            Some(region) => write!(f, "{BACKEND}({region})"),
            None => f.write_str(BACKEND),
        }
    }
}

/// Fault paths the emulator can't produce (throttling, 5xx, access denied, KMS failures),
/// through the real SDK client with `aws-smithy-mocks` answering instead of the network.
#[cfg(test)]
mod tests {
    use std::time::Duration;

    use aws_sdk_secretsmanager::config::retry::RetryConfig;
    use aws_sdk_secretsmanager::operation::batch_get_secret_value::BatchGetSecretValueOutput;
    use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueOutput;
    use aws_sdk_secretsmanager::types::{ApiErrorType, SecretValueEntry};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use aws_smithy_runtime_api::http::{Response, StatusCode};
    use aws_smithy_types::body::SdkBody;

    use super::*;

    fn error_response(status: u16, code: &str) -> Response<SdkBody> {
        let body = format!(r#"{{"__type":"{code}","Message":"mocked {code}"}}"#);
        Response::new(StatusCode::try_from(status).unwrap(), SdkBody::from(body))
    }

    fn source(rules: &[&aws_smithy_mocks::Rule]) -> SecretsManagerSource {
        let client = mock_client!(aws_sdk_secretsmanager, RuleMode::MatchAny, rules, |c| {
            c.retry_config(
                RetryConfig::standard()
                    .with_max_attempts(3)
                    .with_initial_backoff(Duration::from_millis(1)),
            )
        });
        SecretsManagerSource::new(client)
    }

    fn id(name: &str) -> SecretId {
        SecretId::new(name).unwrap()
    }

    async fn get_error(status: u16, code: &'static str) -> (Error, usize) {
        let rule = mock!(Client::get_secret_value)
            .then_http_response(move || error_response(status, code));
        let err = source(&[&rule])
            .get(&id("app/x"), &VersionSelector::Current)
            .await
            .unwrap_err();
        (err, rule.num_calls())
    }

    #[tokio::test]
    async fn each_service_error_maps_to_its_kind_and_only_transient_ones_are_retried() {
        let cases = [
            (400, "ThrottlingException", ErrorKind::Throttled, 3),
            (500, "InternalServiceError", ErrorKind::Transient, 3),
            (503, "ServiceUnavailable", ErrorKind::Transient, 3),
            (400, "AccessDeniedException", ErrorKind::AccessDenied, 1),
            (
                400,
                "UnrecognizedClientException",
                ErrorKind::AccessDenied,
                1,
            ),
            (400, "DecryptionFailure", ErrorKind::DecryptionFailed, 1),
            (400, "ResourceNotFoundException", ErrorKind::NotFound, 1),
            (400, "InvalidRequestException", ErrorKind::Other, 1),
        ];
        for (status, code, kind, calls) in cases {
            let (err, made) = get_error(status, code).await;
            assert_eq!(err.kind(), kind, "{code}: {err:?}");
            assert_eq!(made, calls, "{code}: attempts");
            let line = err.display_chain().to_string();
            assert!(line.starts_with("secretsmanager: "), "{line}");
            assert!(line.contains("`app/x`"), "{line}");
        }
    }

    #[tokio::test]
    async fn throttling_that_passes_is_absorbed_by_the_sdk_retries() {
        let rule = mock!(Client::get_secret_value)
            .sequence()
            .http_response(|| error_response(400, "ThrottlingException"))
            .times(2)
            .output(|| {
                GetSecretValueOutput::builder()
                    .secret_string("v")
                    .version_id("1")
                    .build()
            })
            .build();
        let secret = source(&[&rule])
            .get(&id("a"), &VersionSelector::Current)
            .await
            .unwrap();
        assert_eq!(secret.value().expose_str(), Some("v"));
        assert_eq!(rule.num_calls(), 3);
    }

    /// A parameter's ARN is a valid id, but not a secret: refused in its slot, no call.
    #[tokio::test]
    async fn a_parameter_arn_is_refused_before_any_call() {
        let parameter = id("arn:aws:ssm:us-east-1:123456789012:parameter/prod/db");
        let single = mock!(Client::get_secret_value).then_output(|| {
            GetSecretValueOutput::builder()
                .secret_string("never")
                .build()
        });
        let batch = mock!(Client::batch_get_secret_value).then_output(|| {
            BatchGetSecretValueOutput::builder()
                .secret_values(
                    SecretValueEntry::builder()
                        .name("a")
                        .secret_string("value-a")
                        .build(),
                )
                .build()
        });
        let source = source(&[&single, &batch]);
        let err = source
            .get(&parameter, &VersionSelector::Current)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidId);
        assert!(err.to_string().contains("Parameter Store ARN"), "{err}");
        let results = source.get_many(&[id("a"), parameter.clone()]).await;
        assert_eq!(
            results[0].as_ref().unwrap().value().expose_str(),
            Some("value-a")
        );
        assert_eq!(
            results[1].as_ref().unwrap_err().kind(),
            ErrorKind::InvalidId
        );
        let put = source
            .put(&parameter, &SecretValue::text("x"))
            .await
            .unwrap_err();
        assert_eq!(put.kind(), ErrorKind::InvalidId);
        assert_eq!((single.num_calls(), batch.num_calls()), (0, 1));
    }

    #[tokio::test]
    async fn batch_results_come_back_in_request_order_with_per_secret_errors() {
        let batch = mock!(Client::batch_get_secret_value).then_output(|| {
            BatchGetSecretValueOutput::builder()
                .secret_values(
                    SecretValueEntry::builder()
                        .name("b")
                        .arn("arn:aws:secretsmanager:us-east-1:123456789012:secret:b-AAAAAA")
                        .secret_string("value-b")
                        .version_id("vb")
                        .build(),
                )
                .errors(
                    ApiErrorType::builder()
                        .secret_id("a")
                        .error_code("ResourceNotFoundException")
                        .message("not here")
                        .build(),
                )
                .build()
        });
        // `c` is in neither list (as a partial ARN would be): read singly.
        let single = mock!(Client::get_secret_value)
            .match_requests(|r| r.secret_id() == Some("c"))
            .then_output(|| {
                GetSecretValueOutput::builder()
                    .secret_string("value-c")
                    .build()
            });
        let results = source(&[&batch, &single])
            .get_many(&[id("a"), id("b"), id("c")])
            .await;
        assert_eq!(results.len(), 3);
        assert_eq!(results[0].as_ref().unwrap_err().kind(), ErrorKind::NotFound);
        let b = results[1].as_ref().unwrap();
        assert_eq!(
            (b.id().as_str(), b.value().expose_str(), b.version_id()),
            ("b", Some("value-b"), Some("vb"))
        );
        assert_eq!(
            results[2].as_ref().unwrap().value().expose_str(),
            Some("value-c")
        );
        assert_eq!((batch.num_calls(), single.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn batch_denied_falls_back_to_single_reads() {
        let batch = mock!(Client::batch_get_secret_value)
            .then_http_response(|| error_response(400, "AccessDeniedException"));
        let single = mock!(Client::get_secret_value).then_compute_output(|r| {
            GetSecretValueOutput::builder()
                .secret_string(format!("value-{}", r.secret_id().unwrap_or_default()))
                .build()
        });
        let results = source(&[&batch, &single])
            .get_many(&[id("a"), id("b")])
            .await;
        let values: Vec<_> = results
            .iter()
            .map(|r| r.as_ref().unwrap().value().expose_str().unwrap().to_owned())
            .collect();
        assert_eq!(values, ["value-a", "value-b"]);
        assert_eq!(single.num_calls(), 2);
    }

    #[tokio::test]
    async fn batch_throttled_reports_throttled_for_every_id() {
        let batch = mock!(Client::batch_get_secret_value)
            .then_http_response(|| error_response(400, "ThrottlingException"));
        let results = source(&[&batch]).get_many(&[id("a"), id("b")]).await;
        for (result, name) in results.iter().zip(["a", "b"]) {
            let err = result.as_ref().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Throttled);
            assert!(err.to_string().contains(&format!("`{name}`")), "{err}");
        }
    }
}
