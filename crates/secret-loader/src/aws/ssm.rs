//! AWS Systems Manager Parameter Store backend (`ssm://`).
//!
//! # Ids and parameter names
//!
//! A parameter name in a hierarchy starts with `/`. The URL's path says how an id becomes a
//! name, and the rule runs both ways:
//!
//! | URL                 | id `api_key`        | id `prod/db`          | id `/api_key` |
//! |---------------------|---------------------|-----------------------|---------------|
//! | `ssm://`            | `api_key` (plain)   | `/prod/db`            | `/api_key`    |
//! | `ssm:///`           | `/api_key`          | `/prod/db`            | refused       |
//! | `ssm:///team/app`   | `/team/app/api_key` | `/team/app/prod/db`   | refused       |
//!
//! Under `ssm://` an id that starts with `/` is the parameter's whole name, so every name
//! Parameter Store holds has an id there: `/api_key` (one level, the most common form) as
//! well as `/prod/db` (whose canonical id is `prod/db`). Parameter Store names take fewer
//! characters than secret ids (`A-Z a-z 0-9 _ . - /`), no empty hierarchy level, and new ones
//! may not begin with `aws` or `ssm` (reading AWS's public `/aws/service/...` parameters is
//! fine): ids outside those rules are [`Error::InvalidId`] before any call.
//!
//! A parameter's ARN (`arn:aws:ssm:REGION:ACCOUNT:parameter/NAME`) is an id under `ssm://`
//! too, read as `GetParameter` takes it (a parameter shared from another account is read only
//! by its ARN); under a hierarchy it is refused, since it names the whole parameter, and
//! parameters are written by name only.
//!
//! # Versions
//!
//! [`VersionSelector::Id`] is a version number (`name:3`); a stage is a label (`name:prod`),
//! except the two Secrets Manager stages, which mean the same thing here: `AWSCURRENT` is the
//! latest version, `AWSPREVIOUS` the one before it (a second call), so rotation-aware code
//! reads either store alike.

use std::fmt;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_ssm::Client;
use aws_sdk_ssm::types::{Parameter, ParameterTier, ParameterType};

use crate::aws::{AwsOptions, classify_sdk_error};
use crate::error::{BoxError, Error, ErrorKind, Result};
use crate::id::SecretId;
use crate::options::Options;
use crate::source::{PutOutcome, SecretSource, SecretStore, get_each};
use crate::value::{STAGE_CURRENT, STAGE_PREVIOUS, Secret, SecretValue, VersionSelector};

/// The backend name used in errors and `Display`.
pub const BACKEND: &str = "ssm";

/// The most names one `GetParameters` call takes.
pub const BATCH_LIMIT: usize = 10;

/// The most `GetParameters` calls one `get_many` keeps in flight.
pub const BATCHES_IN_FLIGHT: usize = 4;

/// The largest value of a standard-tier parameter, bytes.
pub const MAX_STANDARD_BYTES: u64 = 4096;

/// The largest value of an advanced-tier parameter, bytes (Parameter Store's own limit).
pub const MAX_SECRET_BYTES: u64 = 8192;

/// Options of `ssm://`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct SsmConfig {
    /// Shared AWS options.
    pub aws: AwsOptions,
    /// The URL's path: `""` (plain names, `/` for ids with a `/`), `"/"` (every name in the
    /// root hierarchy) or a hierarchy such as `/team/app`. See the [module docs](self).
    pub prefix: String,
    /// KMS key `put` encrypts `SecureString`s with (`kms_key_id=`); default `alias/aws/ssm`.
    pub kms_key_id: Option<String>,
}

impl SsmConfig {
    /// The option keys of `ssm://` besides [`AwsOptions::KEYS`].
    pub(crate) const KEYS: &'static [&'static str] = &["kms_key_id"];

    /// The options of `ssm://[/prefix]`, taken out of `options`; `path` is the decoded URL
    /// path. `text` is the whole URL, for messages.
    pub(crate) fn from_url(
        text: &str,
        url: &url::Url,
        path: &str,
        options: &mut Options,
    ) -> Result<Self> {
        if url.host_str().is_some_and(|h| !h.is_empty()) {
            return Err(Error::invalid_config(format!(
                "`{text}`: ssm:// takes no host; a hierarchy goes in the path \
                 (ssm:///team/app), options after `?`"
            )));
        }
        Ok(Self {
            aws: AwsOptions::from_options(options)?,
            prefix: normalize_prefix(text, path)?,
            kms_key_id: options.take("kms_key_id"),
        })
    }
}

/// `""`, `"/"` or `/a/b` (no trailing `/`), each segment a valid name segment.
fn normalize_prefix(text: &str, path: &str) -> Result<String> {
    if path.is_empty() || path == "/" {
        return Ok(path.to_owned());
    }
    let trimmed = path.trim_end_matches('/');
    let bad = trimmed[1..]
        .split('/')
        .find(|segment| segment.is_empty() || !segment.chars().all(is_name_char));
    if let Some(segment) = bad {
        return Err(Error::invalid_config(format!(
            "`{text}`: hierarchy segment `{segment}` is not a Parameter Store name \
             (non-empty, only A-Z a-z 0-9 _ . -)"
        )));
    }
    Ok(trimmed.to_owned())
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// The parameter name of `id` under `prefix` (see the [module docs](self)).
///
/// # Errors
/// [`Error::InvalidId`] for an id Parameter Store can't name.
pub fn parameter_name(prefix: &str, id: &SecretId) -> Result<String> {
    let invalid = |reason| Error::InvalidId {
        id: id.to_string(),
        reason,
    };
    let name = id.name();
    match id.arn_service() {
        None => {}
        Some(crate::ArnService::SecretsManager) => {
            return Err(invalid(
                "is a Secrets Manager ARN; Parameter Store takes parameter names and ARNs \
                 (or /aws/reference/secretsmanager/NAME)",
            ));
        }
        // `GetParameter` takes the ARN as the name (a parameter shared from another account
        // is read only that way); the ARN names the whole parameter, so no hierarchy applies.
        Some(crate::ArnService::ParameterStore) => {
            if !prefix.is_empty() {
                return Err(invalid(
                    "is a parameter ARN, which names the whole parameter: the source's \
                     hierarchy can't apply to it",
                ));
            }
            if !name.chars().all(|c| c == '/' || is_name_char(c))
                || name.split('/').any(str::is_empty)
            {
                return Err(invalid(
                    "is a parameter ARN whose name Parameter Store can't have",
                ));
            }
            return Ok(id.as_str().to_owned());
        }
    }
    if !name.chars().all(|c| c == '/' || is_name_char(c)) {
        return Err(invalid(
            "contains a character Parameter Store names don't allow (only A-Z a-z 0-9 _ . - /)",
        ));
    }
    let full = match prefix {
        // A whole name already (`/api_key`, `/prod/db`).
        "" if name.starts_with('/') => name.to_owned(),
        "" if !name.contains('/') => name.to_owned(),
        _ if name.starts_with('/') => {
            return Err(invalid(
                "starts with `/` under a hierarchy: give the name below the URL's path",
            ));
        }
        "" | "/" => format!("/{name}"),
        prefix => format!("{prefix}/{name}"),
    };
    if full.contains('/') && full[1..].split('/').any(str::is_empty) {
        return Err(invalid(
            "has an empty hierarchy level (`//` or a trailing `/`), which Parameter Store names can't",
        ));
    }
    Ok(full)
}

/// [`parameter_name`] for a new parameter: not beginning with `aws` or `ssm`, which Parameter
/// Store reserves for its own (reading AWS's public parameters is fine).
///
/// # Errors
/// As [`parameter_name`], and [`Error::InvalidId`] for a reserved name.
fn writable_parameter_name(prefix: &str, id: &SecretId) -> Result<String> {
    if id.is_arn() {
        return Err(Error::InvalidId {
            id: id.to_string(),
            reason: "is an ARN: a parameter is written by its name",
        });
    }
    let full = parameter_name(prefix, id)?;
    let first = full.trim_start_matches('/');
    let reserved = first
        .get(..3)
        .is_some_and(|head| head.eq_ignore_ascii_case("aws") || head.eq_ignore_ascii_case("ssm"));
    if reserved {
        return Err(Error::InvalidId {
            id: id.to_string(),
            reason: "would make a parameter name beginning with `aws` or `ssm`, which Parameter Store reserves",
        });
    }
    Ok(full)
}

/// The id whose parameter name under `prefix` is `name`: the inverse of the mapping in the
/// [module docs](self), `None` for names the prefix does not reach.
pub fn id_for_name(prefix: &str, name: &str) -> Option<SecretId> {
    let id = match prefix {
        "" => match name.strip_prefix('/') {
            Some(rest) if rest.contains('/') => rest,
            // One level below the root: the id is the whole name.
            Some(_) => name,
            None => name,
        },
        "/" => name.strip_prefix('/')?,
        prefix => name.strip_prefix(prefix)?.strip_prefix('/')?,
    };
    let id = SecretId::new(id).ok()?;
    (parameter_name(prefix, &id).ok()? == name).then_some(id)
}

/// Reads (and writes) parameters in AWS Systems Manager Parameter Store.
///
/// A read is one `GetParameter` with decryption (`SecureString`, `String` and `StringList`
/// all come back as text); `get_many` uses `GetParameters`, 10 names a call. `put` writes a
/// `SecureString` with the configured key, overwriting, in the advanced tier only when the
/// value needs it (over 4 KB; the [`PutOutcome::notice`] says so).
#[derive(Clone)]
pub struct SsmSource {
    client: Client,
    prefix: String,
    kms_key_id: Option<String>,
    /// Region, endpoint, profile and principal: see [`crate::aws`]'s `scope`.
    scope: String,
}

impl SsmSource {
    /// A source over an existing client, plain names (`ssm://`). Its
    /// [identity](SecretSource::identity) knows only the client's region.
    pub fn new(client: Client) -> Self {
        let scope = crate::aws::client_scope(client.config().region());
        Self {
            client,
            prefix: String::new(),
            kms_key_id: None,
            scope,
        }
    }

    /// The source `config` describes, with a client from `sdk`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a prefix that is not a hierarchy.
    pub async fn from_config(sdk: &SdkConfig, config: &SsmConfig) -> Result<Self> {
        let prefix = normalize_prefix(&config.prefix, &config.prefix)?;
        Ok(Self {
            client: Client::new(sdk),
            prefix,
            kms_key_id: config.kms_key_id.clone(),
            scope: crate::aws::scope(
                sdk,
                config.aws.profile.as_deref(),
                &[crate::aws::service::SSM],
            )
            .await,
        })
    }

    /// The parameter name `id` reads (see the [module docs](self)); for IAM policies and
    /// for seeding with other tools.
    ///
    /// # Errors
    /// [`Error::InvalidId`] for an id Parameter Store can't name.
    pub fn parameter_name(&self, id: &SecretId) -> Result<String> {
        parameter_name(&self.prefix, id)
    }

    /// The id whose parameter is `name`; `None` for a name this source's prefix does not
    /// reach. The inverse of [`SsmSource::parameter_name`].
    pub fn id_for_name(&self, name: &str) -> Option<SecretId> {
        id_for_name(&self.prefix, name)
    }

    /// `id` at `version` as Parameter Store holds it, without decryption: a `SecureString`'s
    /// value is its ciphertext (base64), as `GetParameter` with `WithDecryption=false`
    /// answers (what AWS's extension serves for `withDecryption=false`); other types are the
    /// same as [`SecretSource::get`]. No cache layer keeps these answers.
    ///
    /// # Errors
    /// As [`SecretSource::get`].
    pub async fn get_without_decryption(
        &self,
        id: &SecretId,
        version: &VersionSelector,
    ) -> Result<Secret> {
        self.read(id, version, false).await
    }

    /// One `GetParameter` of `selector` (a name, `name:N` or `name:label`).
    async fn get_parameter(&self, id: &SecretId, selector: &str) -> Result<Parameter> {
        self.get_parameter_as(id, selector, true).await
    }

    /// [`SsmSource::get_parameter`], decrypting or not.
    async fn get_parameter_as(
        &self,
        id: &SecretId,
        selector: &str,
        decrypt: bool,
    ) -> Result<Parameter> {
        let output = self
            .client
            .get_parameter()
            .name(selector)
            .with_decryption(decrypt)
            .send()
            .await
            .map_err(|err| classify(err, id.as_str()))?;
        output
            .parameter
            .ok_or_else(|| other(id, "GetParameter answered without a parameter"))
    }

    /// A read of `id` at `version`, decrypting or not.
    async fn read(
        &self,
        id: &SecretId,
        version: &VersionSelector,
        decrypt: bool,
    ) -> Result<Secret> {
        let name = parameter_name(&self.prefix, id)?;
        let (selector, stages) = match version {
            VersionSelector::Current => (name, vec![STAGE_CURRENT.to_owned()]),
            VersionSelector::Stage(stage) if stage == STAGE_CURRENT => {
                (name, vec![STAGE_CURRENT.to_owned()])
            }
            VersionSelector::Stage(stage) if stage == STAGE_PREVIOUS => {
                let current = self.get_parameter(id, &name).await?;
                let previous = current.version - 1;
                if previous < 1 {
                    return Err(Error::NotFound {
                        backend: BACKEND,
                        id: id.to_string(),
                        source: Some(std::sync::Arc::from(BoxError::from(
                            "AWSPREVIOUS: the parameter has only one version",
                        ))),
                    });
                }
                (
                    format!("{name}:{previous}"),
                    vec![STAGE_PREVIOUS.to_owned()],
                )
            }
            VersionSelector::Stage(label) => (format!("{name}:{label}"), vec![label.clone()]),
            VersionSelector::Id(number) => {
                if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(Error::Unsupported {
                        backend: BACKEND,
                        operation: format!(
                            "version id `{number}` (Parameter Store versions are numbers)"
                        ),
                    });
                }
                (format!("{name}:{number}"), Vec::new())
            }
        };
        let parameter = self.get_parameter_as(id, &selector, decrypt).await?;
        tracing::debug!(backend = BACKEND, id = %id, version = parameter.version, "read parameter");
        to_secret(id, parameter, stages)
    }

    /// One `GetParameters` for `chunk` (already mapped to `names`): a result per id, or
    /// `None` when the call itself is denied (the caller then reads those ids one by one).
    async fn batch_get(&self, chunk: &[SecretId], names: &[String]) -> Option<Vec<Result<Secret>>> {
        let output = match self
            .client
            .get_parameters()
            .set_names(Some(names.to_vec()))
            .with_decryption(true)
            .send()
            .await
        {
            Ok(output) => output,
            Err(err) => {
                let err = classify(err, "<batch>");
                return crate::aws::batch_failure(&err, BACKEND, "GetParameters", chunk);
            }
        };
        let mut results: Vec<Option<Result<Secret>>> = chunk.iter().map(|_| None).collect();
        for parameter in output.parameters.unwrap_or_default() {
            // Asked by name or by ARN; the answer carries both.
            let slot = names.iter().enumerate().position(|(i, name)| {
                results[i].is_none()
                    && (parameter.name.as_deref() == Some(name.as_str())
                        || parameter.arn.as_deref() == Some(name.as_str()))
            });
            if let Some(i) = slot {
                results[i] = Some(to_secret(
                    &chunk[i],
                    parameter,
                    vec![STAGE_CURRENT.to_owned()],
                ));
            }
        }
        for invalid in output.invalid_parameters.unwrap_or_default() {
            let slot = names
                .iter()
                .enumerate()
                .position(|(i, name)| results[i].is_none() && *name == invalid);
            if let Some(i) = slot {
                results[i] = Some(Err(Error::NotFound {
                    backend: BACKEND,
                    id: chunk[i].to_string(),
                    source: Some(std::sync::Arc::from(BoxError::from(
                        "GetParameters: listed in InvalidParameters",
                    ))),
                }));
            }
        }
        Some(crate::aws::complete_singly(self, chunk, results).await)
    }
}

/// The secret in `parameter`, read for `id`.
fn to_secret(id: &SecretId, mut parameter: Parameter, stages: Vec<String>) -> Result<Secret> {
    let value = parameter
        .value
        .take()
        .ok_or_else(|| other(id, "the parameter has no value"))?;
    Ok(Secret::new(id.clone(), BACKEND, SecretValue::text(value))
        .with_version_id(Some(parameter.version.to_string()))
        .with_version_stages(stages)
        .with_arn(parameter.arn.take())
        .with_name(parameter.name.take())
        .with_created(
            parameter
                .last_modified_date
                .and_then(|time| std::time::SystemTime::try_from(time).ok()),
        )
        .with_value_type(parameter.r#type.take().map(|t| t.as_str().to_owned())))
}

/// The one place Parameter Store's own error codes are classified.
fn error_code_kind(code: &str) -> Option<ErrorKind> {
    Some(match code {
        "ParameterNotFound" | "ParameterVersionNotFound" => ErrorKind::NotFound,
        // The key named for a SecureString doesn't exist or can't be used.
        "InvalidKeyId" => ErrorKind::DecryptionFailed,
        // Concurrent PutParameter calls on one name: retryable by the SDK and by callers.
        "TooManyUpdates" => ErrorKind::Throttled,
        "InternalServerError" => ErrorKind::Transient,
        _ => return None,
    })
}

fn classify<E>(err: aws_sdk_ssm::error::SdkError<E>, id: &str) -> Error
where
    E: aws_sdk_ssm::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    classify_sdk_error(err, BACKEND, id, error_code_kind)
}

fn other(id: &SecretId, cause: &'static str) -> Error {
    Error::Other {
        backend: BACKEND,
        id: id.to_string(),
        source: Some(std::sync::Arc::from(BoxError::from(cause))),
    }
}

#[async_trait]
impl SecretSource for SsmSource {
    fn identity(&self) -> String {
        format!("{BACKEND}:{};prefix={}", self.scope, self.prefix)
    }

    async fn get(&self, id: &SecretId, version: &VersionSelector) -> Result<Secret> {
        self.read(id, version, true).await
    }

    /// Batches of [`BATCH_LIMIT`] names, at most [`BATCHES_IN_FLIGHT`] at once, answers in
    /// request order; an id Parameter Store lists as invalid is `NotFound` in its own slot.
    /// Where `GetParameters` is denied, those ids are read one by one.
    async fn get_many(&self, ids: &[SecretId]) -> Vec<Result<Secret>> {
        use futures_util::StreamExt;
        let mut out: Vec<Option<Result<Secret>>> = ids.iter().map(|_| None).collect();
        // Ids with no parameter name fail in their slot without a call.
        let mut valid = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            match parameter_name(&self.prefix, id) {
                Ok(name) => valid.push((i, id.clone(), name)),
                Err(err) => out[i] = Some(Err(err)),
            }
        }
        let chunks: Vec<&[(usize, SecretId, String)]> = valid.chunks(BATCH_LIMIT).collect();
        let requests: Vec<_> = chunks
            .iter()
            .map(|chunk| {
                let ids: Vec<SecretId> = chunk.iter().map(|(_, id, _)| id.clone()).collect();
                let names: Vec<String> = chunk.iter().map(|(_, _, name)| name.clone()).collect();
                async move { self.batch_get(&ids, &names).await }
            })
            .collect();
        let batches: Vec<Option<Vec<Result<Secret>>>> = futures_util::stream::iter(requests)
            .buffered(BATCHES_IN_FLIGHT)
            .collect()
            .await;
        let mut denied = Vec::new();
        for (chunk, batch) in chunks.iter().zip(batches) {
            match batch {
                Some(results) => {
                    for ((i, _, _), result) in chunk.iter().zip(results) {
                        out[*i] = Some(result);
                    }
                }
                None => denied.extend(chunk.iter().map(|(i, id, _)| (*i, id.clone()))),
            }
        }
        let denied_ids: Vec<SecretId> = denied.iter().map(|(_, id)| id.clone()).collect();
        for ((i, _), result) in denied.iter().zip(get_each(self, &denied_ids).await) {
            out[*i] = Some(result);
        }
        out.into_iter()
            .map(|slot| slot.expect("every slot is filled"))
            .collect()
    }
}

#[async_trait]
impl SecretStore for SsmSource {
    /// `PutParameter` as a `SecureString`, overwriting; the advanced tier for values over
    /// [`MAX_STANDARD_BYTES`]. Parameter Store keeps text: a value that is not UTF-8 is
    /// [`Error::InvalidFormat`].
    async fn put(&self, id: &SecretId, value: &SecretValue) -> Result<PutOutcome> {
        let name = writable_parameter_name(&self.prefix, id)?;
        let Some(text) = value.expose_str() else {
            return Err(Error::InvalidFormat {
                backend: BACKEND,
                id: id.to_string(),
                reason: "is binary and not UTF-8; Parameter Store keeps text (encode it, \
                         e.g. base64, first)"
                    .into(),
            });
        };
        let size = value.len() as u64;
        if size > MAX_SECRET_BYTES {
            return Err(Error::too_large(
                BACKEND,
                id.as_str(),
                "the value",
                value.len(),
                MAX_SECRET_BYTES,
            ));
        }
        let advanced = size > MAX_STANDARD_BYTES;
        let output = self
            .client
            .put_parameter()
            .name(&name)
            .value(text)
            .r#type(ParameterType::SecureString)
            .set_key_id(self.kms_key_id.clone())
            .overwrite(true)
            .set_tier(advanced.then_some(ParameterTier::Advanced))
            .send()
            .await
            .map_err(|err| classify(err, id.as_str()))?;
        let mut outcome = PutOutcome::new(Some(output.version.to_string()), output.version == 1);
        if advanced {
            outcome.notice = Some(format!(
                "`{name}` is in the advanced tier: its value is {size} bytes, over the standard \
                 tier's {MAX_STANDARD_BYTES} (advanced parameters are charged per month and can't \
                 go back to standard)"
            ));
        }
        Ok(outcome)
    }

    async fn delete(&self, id: &SecretId) -> Result<()> {
        let name = parameter_name(&self.prefix, id)?;
        self.client
            .delete_parameter()
            .name(name)
            .send()
            .await
            .map_err(|err| classify(err, id.as_str()))?;
        Ok(())
    }
}

impl fmt::Debug for SsmSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SsmSource")
            .field("region", &self.client.config().region())
            .field("prefix", &self.prefix)
            .field("kms_key_id", &self.kms_key_id)
            .finish()
    }
}

impl fmt::Display for SsmSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let region = self.client.config().region().map(|r| r.to_string());
        match (region, self.prefix.as_str()) {
            (Some(region), "") => write!(f, "{BACKEND}({region})"),
            (Some(region), prefix) => write!(f, "{BACKEND}({region}, {prefix})"),
            (None, "") => f.write_str(BACKEND),
            (None, prefix) => write!(f, "{BACKEND}({prefix})"),
        }
    }
}

/// Name mapping, and the fault paths the emulator can't produce, through the real SDK client
/// with `aws-smithy-mocks` answering instead of the network.
#[cfg(test)]
mod tests {
    use std::time::Duration;

    use aws_sdk_ssm::config::retry::RetryConfig;
    use aws_sdk_ssm::operation::get_parameter::GetParameterOutput;
    use aws_sdk_ssm::operation::get_parameters::GetParametersOutput;
    use aws_sdk_ssm::operation::put_parameter::PutParameterOutput;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use aws_smithy_runtime_api::http::{Response, StatusCode};
    use aws_smithy_types::body::SdkBody;

    use super::*;

    fn id(name: &str) -> SecretId {
        SecretId::new(name).unwrap()
    }

    #[test]
    fn ids_map_to_names_and_back_under_every_prefix() {
        let cases = [
            ("", "api_key", "api_key"),
            ("", "prod/db", "/prod/db"),
            ("", "a/b/c.d-e_f", "/a/b/c.d-e_f"),
            ("/", "api_key", "/api_key"),
            ("/", "prod/db", "/prod/db"),
            ("/team/app", "api_key", "/team/app/api_key"),
            ("/team/app", "prod/db", "/team/app/prod/db"),
            // One level below the root, the most common form: the id is the whole name.
            ("", "/api_key", "/api_key"),
        ];
        for (prefix, id_text, name) in cases {
            let secret_id = id(id_text);
            assert_eq!(
                parameter_name(prefix, &secret_id).unwrap(),
                name,
                "{prefix:?}"
            );
            assert_eq!(
                id_for_name(prefix, name),
                Some(secret_id),
                "{prefix:?} {name}"
            );
        }
        // `/prod/db` is also the name of id `/prod/db`; its canonical id is `prod/db`.
        assert_eq!(parameter_name("", &id("/prod/db")).unwrap(), "/prod/db");
        // AWS's public parameters are read like any other.
        assert_eq!(
            id_for_name("", "/aws/service/global-infrastructure/regions"),
            Some(id("aws/service/global-infrastructure/regions"))
        );
        // Names a prefix does not reach have no id.
        assert_eq!(id_for_name("/team/app", "/team/other/x"), None);
        assert_eq!(id_for_name("/", "api_key"), None);
    }

    #[test]
    fn ids_parameter_store_cannot_name_are_refused_before_any_call() {
        for (prefix, bad, reason) in [
            ("", "a+b", "character"),
            ("", "user@example", "character"),
            ("", "x=y", "character"),
            ("", "aws-key", "reserved"),
            ("", "SSM/thing", "reserved"),
            ("/", "awsome", "reserved"),
            (
                "",
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:x-AbCdEf",
                "ARN",
            ),
        ] {
            let err = writable_parameter_name(prefix, &id(bad)).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidId, "{bad}");
            let text = err.to_string();
            let expected = match reason {
                "character" => "character Parameter Store names don't allow",
                "reserved" => "beginning with `aws` or `ssm`",
                _ => "is an ARN",
            };
            assert!(text.contains(expected), "{bad}: {text}");
        }
        // A parameter's ARN is read as it is (GetParameter takes it), under `ssm://` only;
        // a secret's ARN is not a parameter; neither is written.
        let arn = "arn:aws:ssm:eu-west-1:123456789012:parameter/prod/db";
        assert_eq!(parameter_name("", &id(arn)).unwrap(), arn);
        let under = parameter_name("/team", &id(arn)).unwrap_err().to_string();
        assert!(under.contains("hierarchy can't apply"), "{under}");
        let odd = "arn:aws:ssm:eu-west-1:123456789012:parameter/a+b";
        assert!(
            parameter_name("", &id(odd))
                .unwrap_err()
                .to_string()
                .contains("can't have")
        );
        let secret = "arn:aws:secretsmanager:us-east-1:123456789012:secret:x-AbCdEf";
        let read = parameter_name("", &id(secret)).unwrap_err().to_string();
        assert!(read.contains("is a Secrets Manager ARN"), "{read}");
        assert!(
            writable_parameter_name("", &id(arn))
                .unwrap_err()
                .to_string()
                .contains("is an ARN")
        );
        assert_eq!(id_for_name("", arn), Some(id(arn)));
        assert_eq!(id_for_name("/team", arn), None);
        // Under a prefix the first segment is the prefix's, not the id's.
        assert_eq!(
            parameter_name("/team", &id("aws-key")).unwrap(),
            "/team/aws-key"
        );
    }

    #[test]
    fn url_prefixes_are_normalized_and_checked() {
        let parse = |text: &str| {
            let url = url::Url::parse(text).unwrap();
            let mut options = Options::new("");
            SsmConfig::from_url(text, &url, url.path(), &mut options)
        };
        assert_eq!(parse("ssm://").unwrap().prefix, "");
        assert_eq!(parse("ssm:///").unwrap().prefix, "/");
        assert_eq!(parse("ssm:///team/app/").unwrap().prefix, "/team/app");
        let err = parse("ssm:///team//app").unwrap_err().to_string();
        assert!(err.contains("hierarchy segment ``"), "{err}");
        let err = parse("ssm:///te+am").unwrap_err().to_string();
        assert!(err.contains("`te+am`"), "{err}");
        let err = parse("ssm://host/x").unwrap_err().to_string();
        assert!(err.contains("takes no host"), "{err}");
    }

    fn error_response(status: u16, code: &str) -> Response<SdkBody> {
        let body = format!(r#"{{"__type":"{code}","message":"mocked {code}"}}"#);
        Response::new(StatusCode::try_from(status).unwrap(), SdkBody::from(body))
    }

    fn source(rules: &[&aws_smithy_mocks::Rule]) -> SsmSource {
        let client = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, rules, |c| {
            c.retry_config(
                RetryConfig::standard()
                    .with_max_attempts(3)
                    .with_initial_backoff(Duration::from_millis(1)),
            )
        });
        SsmSource::new(client)
    }

    #[tokio::test]
    async fn each_service_error_maps_to_its_kind_and_only_transient_ones_are_retried() {
        let cases = [
            (400, "ThrottlingException", ErrorKind::Throttled, 3),
            (500, "InternalServerError", ErrorKind::Transient, 3),
            (400, "AccessDeniedException", ErrorKind::AccessDenied, 1),
            (400, "ParameterNotFound", ErrorKind::NotFound, 1),
            (400, "ParameterVersionNotFound", ErrorKind::NotFound, 1),
            (400, "InvalidKeyId", ErrorKind::DecryptionFailed, 1),
            (400, "ValidationException", ErrorKind::Other, 1),
        ];
        for (status, code, kind, calls) in cases {
            let rule = mock!(Client::get_parameter)
                .then_http_response(move || error_response(status, code));
            let err = source(&[&rule])
                .get(&id("app/x"), &VersionSelector::Current)
                .await
                .unwrap_err();
            assert_eq!(err.kind(), kind, "{code}: {err:?}");
            assert_eq!(rule.num_calls(), calls, "{code}: attempts");
            let line = err.display_chain().to_string();
            assert!(line.starts_with("ssm: "), "{line}");
            assert!(line.contains("`app/x`"), "{line}");
        }
    }

    #[tokio::test]
    async fn selectors_become_name_suffixes_and_previous_is_the_version_before() {
        let rule = mock!(Client::get_parameter).then_compute_output(|request| {
            let name = request.name().unwrap_or_default().to_owned();
            let version = match name.rsplit_once(':') {
                Some((_, n)) => n.parse().unwrap_or(7),
                None => 9,
            };
            GetParameterOutput::builder()
                .parameter(
                    Parameter::builder()
                        .name(name.clone())
                        .value(format!("value of {name}"))
                        .version(version)
                        .build(),
                )
                .build()
        });
        let source = source(&[&rule]);
        let read = |selector: VersionSelector| {
            let source = source.clone();
            async move { source.get(&id("app/x"), &selector).await.unwrap() }
        };
        let current = read(VersionSelector::Current).await;
        assert_eq!(current.value().expose_str(), Some("value of /app/x"));
        assert_eq!(current.version_id(), Some("9"));
        assert_eq!(current.version_stages(), [STAGE_CURRENT]);
        let by_number = read(VersionSelector::Id("3".into())).await;
        assert_eq!(by_number.value().expose_str(), Some("value of /app/x:3"));
        let labelled = read(VersionSelector::Stage("blue".into())).await;
        assert_eq!(labelled.value().expose_str(), Some("value of /app/x:blue"));
        assert_eq!(labelled.version_stages(), ["blue"]);
        let previous = read(VersionSelector::Stage(STAGE_PREVIOUS.into())).await;
        assert_eq!(previous.value().expose_str(), Some("value of /app/x:8"));
        assert_eq!(previous.version_stages(), [STAGE_PREVIOUS]);
        let calls = rule.num_calls();
        let err = source
            .get(&id("app/x"), &VersionSelector::Id("v2".into()))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported);
        assert_eq!(rule.num_calls(), calls, "refused before any call");
    }

    #[tokio::test]
    async fn previous_of_a_first_version_is_not_found() {
        let rule = mock!(Client::get_parameter).then_output(|| {
            GetParameterOutput::builder()
                .parameter(
                    Parameter::builder()
                        .name("/a/b")
                        .value("v")
                        .version(1)
                        .build(),
                )
                .build()
        });
        let err = source(&[&rule])
            .get(&id("a/b"), &VersionSelector::Stage(STAGE_PREVIOUS.into()))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err:?}");
    }

    #[tokio::test]
    async fn get_many_batches_by_ten_in_request_order_with_invalid_names_per_id() {
        let batch = mock!(Client::get_parameters).then_compute_output(|request| {
            let names = request.names().to_vec();
            assert!(names.len() <= BATCH_LIMIT, "{}", names.len());
            // Answer in reverse order, with every name ending in 3 missing.
            let (missing, found): (Vec<_>, Vec<_>) =
                names.iter().rev().cloned().partition(|n| n.ends_with('3'));
            GetParametersOutput::builder()
                .set_parameters(Some(
                    found
                        .into_iter()
                        .map(|n| {
                            Parameter::builder()
                                .value(format!("v{n}"))
                                .name(n)
                                .version(1)
                                .build()
                        })
                        .collect(),
                ))
                .set_invalid_parameters(Some(missing))
                .build()
        });
        let ids: Vec<SecretId> = (0..25).map(|i| id(&format!("k{i}"))).collect();
        let results = source(&[&batch]).get_many(&ids).await;
        assert_eq!(batch.num_calls(), 3);
        for (i, result) in results.iter().enumerate() {
            if i % 10 == 3 {
                assert_eq!(result.as_ref().unwrap_err().kind(), ErrorKind::NotFound);
            } else {
                let secret = result.as_ref().unwrap();
                assert_eq!(secret.id(), &ids[i]);
                assert_eq!(secret.value().expose_str(), Some(format!("vk{i}").as_str()));
            }
        }
    }

    #[tokio::test]
    async fn get_many_denied_falls_back_to_single_reads_and_bad_ids_fail_alone() {
        let batch = mock!(Client::get_parameters)
            .then_http_response(|| error_response(400, "AccessDeniedException"));
        let single = mock!(Client::get_parameter).then_compute_output(|r| {
            let name = r.name().unwrap_or_default();
            GetParameterOutput::builder()
                .parameter(
                    Parameter::builder()
                        .name(name)
                        .value(format!("v{name}"))
                        .version(2)
                        .build(),
                )
                .build()
        });
        let results = source(&[&batch, &single])
            .get_many(&[id("a"), id("no+plus"), id("b")])
            .await;
        assert_eq!(
            results[0].as_ref().unwrap().value().expose_str(),
            Some("va")
        );
        assert_eq!(
            results[1].as_ref().unwrap_err().kind(),
            ErrorKind::InvalidId
        );
        assert_eq!(
            results[2].as_ref().unwrap().value().expose_str(),
            Some("vb")
        );
        assert_eq!(single.num_calls(), 2);
    }

    #[tokio::test]
    async fn put_picks_the_advanced_tier_only_when_the_value_needs_it() {
        let put = mock!(Client::put_parameter).then_compute_output(|request| {
            assert_eq!(request.r#type(), Some(&ParameterType::SecureString));
            assert_eq!(request.overwrite(), Some(true));
            let expected = if request.value().unwrap().len() > 4096 {
                Some(&ParameterTier::Advanced)
            } else {
                None
            };
            assert_eq!(request.tier(), expected);
            PutParameterOutput::builder().version(1).build()
        });
        let source = source(&[&put]);
        let small = source
            .put(&id("a"), &SecretValue::text("x".repeat(4096)))
            .await
            .unwrap();
        assert!(small.created && small.notice.is_none());
        let large = source
            .put(&id("a"), &SecretValue::text("x".repeat(4097)))
            .await
            .unwrap();
        assert!(large.notice.unwrap().contains("advanced tier"));
        assert_eq!(put.num_calls(), 2);
        let err = source
            .put(&id("a"), &SecretValue::text("x".repeat(8193)))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidFormat);
        assert!(err.to_string().contains("8192"), "{err}");
        let err = source
            .put(&id("a"), &SecretValue::binary(vec![0xff, 0xfe]))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidFormat);
        assert_eq!(put.num_calls(), 2, "refused before any call");
    }
}
