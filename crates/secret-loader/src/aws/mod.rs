//! What every AWS backend shares: loading the SDK configuration and classifying SDK errors.

use std::error::Error as StdError;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};
use crate::options::{Options, parse_duration};

#[cfg(feature = "kms")]
pub(crate) mod kms;
#[cfg(feature = "s3")]
pub mod s3;
#[cfg(feature = "secretsmanager")]
pub mod secretsmanager;
#[cfg(feature = "ssm")]
pub mod ssm;

/// Options shared by every AWS backend. Unset fields follow the SDK's own conventions
/// (`AWS_REGION`, `AWS_PROFILE`, `AWS_ENDPOINT_URL`, the default credential chain).
///
/// The retry and timeout bounds make every call finish in bounded time: at most
/// `max_attempts` attempts, each cut at `attempt_timeout`, all within `operation_timeout`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AwsOptions {
    /// Region (`region=`); default from the environment or profile.
    pub region: Option<String>,
    /// Endpoint URL (`endpoint_url=`), e.g. an emulator on loopback; default `AWS_ENDPOINT_URL`.
    pub endpoint_url: Option<String>,
    /// Shared-config profile (`profile=`); default `AWS_PROFILE` or `default`.
    pub profile: Option<String>,
    /// Attempts per call, first try included (`max_attempts=`, default 3).
    pub max_attempts: u32,
    /// TCP/TLS connect timeout (`connect_timeout=`, default 3.1 s, the SDK's).
    pub connect_timeout: Duration,
    /// Deadline of one attempt (`attempt_timeout=`, default 5 s).
    pub attempt_timeout: Duration,
    /// Deadline of a whole call, retries included (`timeout=`, default 15 s).
    pub operation_timeout: Duration,
}

impl Default for AwsOptions {
    fn default() -> Self {
        Self {
            region: None,
            endpoint_url: None,
            profile: None,
            max_attempts: 3,
            connect_timeout: Duration::from_millis(3100),
            attempt_timeout: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(15),
        }
    }
}

impl AwsOptions {
    /// The option keys every AWS backend takes.
    pub(crate) const KEYS: &'static [&'static str] = &[
        "region",
        "endpoint_url",
        "profile",
        "max_attempts",
        "connect_timeout",
        "attempt_timeout",
        "timeout",
    ];

    /// Takes the AWS options out of `options`; the defaults for those not given.
    #[cfg_attr(
        not(any(
            feature = "secretsmanager",
            feature = "ssm",
            feature = "s3",
            feature = "file",
            feature = "env"
        )),
        allow(dead_code)
    )]
    pub(crate) fn from_options(options: &mut Options) -> Result<Self> {
        let mut aws = Self {
            region: options.take("region"),
            profile: options.take("profile"),
            endpoint_url: options.take_with("endpoint_url", parse_http_url)?,
            ..Self::default()
        };
        if let Some(attempts) = options.take_with("max_attempts", |key, text| {
            text.parse()
                .ok()
                .filter(|n| (1..=10).contains(n))
                .ok_or_else(|| {
                    Error::invalid_config(format!("{key} `{text}` is not a number from 1 to 10"))
                })
        })? {
            aws.max_attempts = attempts;
        }
        for (key, field) in [
            ("connect_timeout", &mut aws.connect_timeout),
            ("attempt_timeout", &mut aws.attempt_timeout),
            ("timeout", &mut aws.operation_timeout),
        ] {
            if let Some(duration) = options.take_with(key, parse_duration)? {
                *field = duration;
            }
        }
        Ok(aws)
    }
}

/// An `http(s)` URL.
fn parse_http_url(key: &str, text: &str) -> Result<String> {
    match url::Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(text.to_owned()),
        _ => Err(Error::invalid_config(format!(
            "{key} `{text}` is not an http(s) URL"
        ))),
    }
}

/// Loads the SDK configuration the AWS way (default credential chain, region from the
/// environment or profile, `AWS_ENDPOINT_URL` for emulators), then applies `options` on top:
/// explicit region, endpoint, profile, and the retry and timeout bounds (see [`AwsOptions`]).
///
/// # Errors
/// [`Error::InvalidConfig`] when no region can be found: without one every call would fail
/// later with a less helpful "missing signing region".
pub async fn load_sdk_config(options: &AwsOptions) -> Result<SdkConfig> {
    load_sdk_config_with(options, None).await
}

/// As [`load_sdk_config`], sending every call through `http_client` when one is given.
///
/// # Errors
/// As [`load_sdk_config`].
pub(crate) async fn load_sdk_config_with(
    options: &AwsOptions,
    http_client: Option<SharedHttpClient>,
) -> Result<SdkConfig> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(options.max_attempts))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(options.connect_timeout)
                .operation_attempt_timeout(options.attempt_timeout)
                .operation_timeout(options.operation_timeout)
                .build(),
        );
    if let Some(region) = &options.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(endpoint) = &options.endpoint_url {
        loader = loader.endpoint_url(endpoint);
    }
    if let Some(profile) = &options.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(http_client) = http_client {
        loader = loader.http_client(http_client);
    }
    let config = loader.load().await;
    if config.region().is_none() {
        return Err(Error::invalid_config(
            "no AWS region: set AWS_REGION, a profile region, or `region=` in the source URL",
        ));
    }
    Ok(config)
}

/// The AWS services a source calls, by the service id the SDK resolves their endpoints with
/// (`AWS_ENDPOINT_URL_<SERVICE_ID>`, a profile's `services` section).
pub(crate) mod service {
    #[cfg(feature = "secretsmanager")]
    pub(crate) const SECRETS_MANAGER: &str = "Secrets Manager";
    #[cfg(feature = "ssm")]
    pub(crate) const SSM: &str = "SSM";
    #[cfg(feature = "s3")]
    pub(crate) const S3: &str = "S3";
    #[cfg(any(feature = "s3", feature = "file", feature = "env"))]
    pub(crate) const KMS: &str = "KMS";
}

/// What selects an AWS backend's data besides its own names: the region, the endpoint each
/// of `services` really uses (resolved as the service clients resolve it: an explicit
/// endpoint, else `AWS_ENDPOINT_URL_<SERVICE>` or the profile's `services` section, else
/// `AWS_ENDPOINT_URL`), FIPS and dual-stack, the shared-config profile, and the credentials'
/// principal (the account when the credentials name it, and a hash of the access key id),
/// resolved once here, never per read. Part of every AWS source's
/// [`identity`](crate::SecretSource::identity): two processes with different credentials, or
/// a client sent elsewhere by a per-service setting, never share a `/tmp` entry.
#[cfg_attr(
    not(any(
        feature = "secretsmanager",
        feature = "ssm",
        feature = "s3",
        feature = "file",
        feature = "env"
    )),
    allow(dead_code)
)]
pub(crate) async fn scope(sdk: &SdkConfig, profile: Option<&str>, services: &[&str]) -> String {
    let profile = profile
        .map(str::to_owned)
        .or_else(|| std::env::var("AWS_PROFILE").ok())
        .unwrap_or_else(|| "default".into());
    let endpoints: Vec<String> = services
        .iter()
        .map(|service| format!("{service}={}", service_endpoint(sdk, service)))
        .collect();
    format!(
        "region={};endpoints={};fips={:?};dualstack={:?};profile={profile};principal={}",
        sdk.region().map_or("", |r| r.as_ref()),
        endpoints.join(","),
        sdk.use_fips(),
        sdk.use_dual_stack(),
        principal(sdk).await,
    )
}

/// The endpoint URL a client of `service_id` built from `sdk` uses, as the generated
/// `Config::from(&SdkConfig)` of every service crate decides it; `default` when the SDK
/// resolves it from the region.
fn service_endpoint(sdk: &SdkConfig, service_id: &str) -> String {
    use aws_types::service_config::ServiceConfigKey;
    if sdk.get_origin("endpoint_url").is_client_config() {
        return sdk.endpoint_url().unwrap_or("default").to_owned();
    }
    let key = ServiceConfigKey::builder()
        .service_id(service_id)
        .env("AWS_ENDPOINT_URL")
        .profile("endpoint_url")
        .build();
    key.ok()
        .and_then(|key| sdk.service_config()?.load_config(key))
        .or_else(|| sdk.endpoint_url().map(str::to_owned))
        .unwrap_or_else(|| "default".into())
}

/// Who the credentials are: `account:hash` (the account when the credentials carry it, and
/// the first 16 hex digits of the SHA-256 of the access key id, which is not itself logged
/// anywhere), `anonymous` without a provider, `unresolved` when they can't be had now.
async fn principal(sdk: &SdkConfig) -> String {
    use aws_credential_types::provider::ProvideCredentials;
    use sha2::{Digest, Sha256};
    let Some(provider) = sdk.credentials_provider() else {
        return "anonymous".into();
    };
    match provider.provide_credentials().await {
        Ok(credentials) => {
            let digest = Sha256::digest(credentials.access_key_id().as_bytes());
            let hash: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
            let account = credentials.account_id().map_or("", |a| a.as_str());
            format!("{account}:{hash}")
        }
        Err(_) => "unresolved".into(),
    }
}

/// The scope of a source built from a bare client: only its region is known.
#[cfg_attr(
    not(any(feature = "secretsmanager", feature = "ssm", feature = "s3")),
    allow(dead_code)
)]
pub(crate) fn client_scope(region: Option<&Region>) -> String {
    format!(
        "region={};endpoint=unknown",
        region.map_or("", |r| r.as_ref())
    )
}

/// A batch read whose call itself failed (`err`, classified), for every id of `chunk`:
/// `None` when the call was denied, so the caller reads those ids one by one (least-privilege
/// roles often grant the single read but not the batch one), else `err` for each id.
#[cfg(any(feature = "secretsmanager", feature = "ssm"))]
pub(crate) fn batch_failure(
    err: &Error,
    backend: &'static str,
    operation: &str,
    chunk: &[crate::SecretId],
) -> Option<Vec<Result<crate::Secret>>> {
    if err.kind() == ErrorKind::AccessDenied {
        tracing::debug!(backend, operation, "batch read denied; reading one by one");
        return None;
    }
    let message = err.display_chain().to_string();
    Some(
        chunk
            .iter()
            .map(|id| {
                Err(Error::from_kind(
                    err.kind(),
                    backend,
                    id.as_str(),
                    Some(message.clone().into()),
                ))
            })
            .collect(),
    )
}

/// A batch read's answers in request order: the matched ones as they are, the ids the answer
/// could not be matched to (a partial ARN, say) read singly through `source`.
#[cfg(any(feature = "secretsmanager", feature = "ssm"))]
pub(crate) async fn complete_singly<S: crate::SecretSource + ?Sized>(
    source: &S,
    chunk: &[crate::SecretId],
    results: Vec<Option<Result<crate::Secret>>>,
) -> Vec<Result<crate::Secret>> {
    let mut out = Vec::with_capacity(chunk.len());
    for (id, result) in chunk.iter().zip(results) {
        out.push(match result {
            Some(result) => result,
            None => source.get(id, &crate::VersionSelector::Current).await,
        });
    }
    out
}

/// Error codes that mean "slow down", across AWS services (the SDK's own retry list).
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
];

/// Error codes of transient server-side failures, across AWS services.
const TRANSIENT_CODES: &[&str] = &[
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "InternalFailure",
    "InternalServiceError",
    "InternalServerError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
];

/// Error codes meaning the credentials themselves are refused.
const CREDENTIAL_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidClientTokenId",
    "MissingAuthenticationToken",
];

/// The kind of a service error code that every AWS service shares, if it is one.
pub(crate) fn common_code_kind(code: &str) -> Option<ErrorKind> {
    if THROTTLING_CODES.contains(&code) {
        Some(ErrorKind::Throttled)
    } else if TRANSIENT_CODES.contains(&code) {
        Some(ErrorKind::Transient)
    } else if CREDENTIAL_CODES.contains(&code) {
        Some(ErrorKind::AccessDenied)
    } else {
        None
    }
}

/// The kind of a service's error answer: its code as the service classifies it, else as all
/// AWS services do, else by HTTP status.
pub(crate) fn service_error_kind(
    code: Option<&str>,
    status: u16,
    service_kind: fn(&str) -> Option<ErrorKind>,
) -> ErrorKind {
    code.and_then(|code| service_kind(code).or_else(|| common_code_kind(code)))
        .unwrap_or(match status {
            429 => ErrorKind::Throttled,
            500..=599 => ErrorKind::Transient,
            403 => ErrorKind::AccessDenied,
            404 => ErrorKind::NotFound,
            _ => ErrorKind::Other,
        })
}

/// Turns any SDK error into our [`Error`]. `service_kind` maps the service's own error codes
/// (each backend module has one such function: the single place where that service's
/// transient-vs-permanent decision is made); codes it leaves alone fall back to the codes
/// all services share, then to the HTTP status.
#[cfg_attr(
    not(any(
        feature = "secretsmanager",
        feature = "ssm",
        feature = "s3",
        feature = "file",
        feature = "env"
    )),
    allow(dead_code)
)]
pub(crate) fn classify_sdk_error<E>(
    err: SdkError<E, HttpResponse>,
    backend: &'static str,
    id: &str,
    service_kind: fn(&str) -> Option<ErrorKind>,
) -> Error
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let kind = sdk_error_kind(&err, service_kind);
    Error::from_kind(kind, backend, id, Some(Box::new(err)))
}

/// The kind of any AWS SDK error, by the rules every backend uses: timeouts, unreadable
/// answers and connection failures are transient; a service's answer is classified by
/// `service_kind` (its own codes, `|_| None` for none), then by the codes all AWS services
/// share, then by HTTP status.
pub fn sdk_error_kind<E>(
    err: &SdkError<E, HttpResponse>,
    service_kind: fn(&str) -> Option<ErrorKind>,
) -> ErrorKind
where
    E: ProvideErrorMetadata,
{
    match err {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => ErrorKind::Transient,
        SdkError::DispatchFailure(failure) if failure.is_user() => ErrorKind::Other,
        SdkError::DispatchFailure(_) => ErrorKind::Transient,
        SdkError::ServiceError(service) => service_error_kind(
            service.err().code(),
            service.raw().status().as_u16(),
            service_kind,
        ),
        // Construction failures (bad input, no credentials) and anything new.
        _ => ErrorKind::Other,
    }
}
