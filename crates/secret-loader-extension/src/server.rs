//! The HTTP server on 127.0.0.1: AWS's routes, the checks before them, the answers.
//!
//! Checks run before any backend call, in the Secrets Manager Agent's order (its
//! `server.rs`): the connection bound (429), `X-Forwarded-For` (400), the token (403; not for
//! `/ping`), the method (405), then the route (404 for none). Every error body is AWS's
//! `{"__type": ..., "message": ...}`; [`status_of`] maps error kinds to statuses.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONNECTION, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use secret_loader::{ErrorKind, Secret, SecretId, VersionSelector};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::stacks::{Stack, Stacks};

/// The header a request must carry, equal to the token (AWS's and the agent's name).
pub const TOKEN_HEADER: &str = "X-Aws-Parameters-Secrets-Token";
/// The agent's other token header (its `ssrf_headers` default), accepted as well.
pub const VAULT_TOKEN_HEADER: &str = "X-Vault-Token";
/// The most bytes a request's head may take (request line and headers); more is answered
/// `431` and the connection closed. A request here is a GET of one id: a few hundred bytes.
pub const MAX_REQUEST_HEAD_BYTES: usize = 16 * 1024;
/// How long a connection over the bound gets to send its request head: long enough to say
/// `/ping` (answered) or anything else (answered 429); then it is closed.
const OVER_BOUND_HEAD_TIMEOUT: Duration = Duration::from_secs(1);

/// How connections are bounded in time.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// The time to send a request's headers, and the most a connection may stay idle
    /// between requests.
    pub idle_timeout: Duration,
    /// How long one connection is served; then it closes after its request in hand.
    pub lifetime: Duration,
}

/// What every connection shares.
#[derive(Debug)]
pub struct State {
    stacks: Stacks,
    token: String,
    clients: Arc<Semaphore>,
    max_clients: usize,
    limits: ConnectionLimits,
    /// How many connections are open: a shutdown waits for it to reach 0.
    open: watch::Sender<usize>,
    /// Whose answers the Secrets Manager routes' bodies copy.
    body_style: BodyStyle,
}

impl State {
    /// A server's state: the stacks, the token requests must carry, the connection bound and
    /// the connections' time limits.
    pub fn new(
        stacks: Stacks,
        token: String,
        max_clients: usize,
        limits: ConnectionLimits,
    ) -> Self {
        Self {
            stacks,
            token,
            clients: Arc::new(Semaphore::new(max_clients)),
            max_clients,
            limits,
            open: watch::Sender::new(0),
            body_style: BodyStyle::Agent,
        }
    }

    /// Answers the Secrets Manager routes in `style` (the agent's by default).
    pub fn with_body_style(mut self, style: BodyStyle) -> Self {
        self.body_style = style;
        self
    }

    /// Waits until every open connection has closed (after a shutdown, each finishes the
    /// request in hand first), or `budget` has passed; true when all closed in time.
    pub async fn drained(&self, budget: Duration) -> bool {
        let mut open = self.open.subscribe();
        tokio::time::timeout(budget, open.wait_for(|n| *n == 0))
            .await
            .is_ok()
    }

    /// The stacks served.
    pub fn stacks(&self) -> &Stacks {
        &self.stacks
    }
}

type Body = Full<Bytes>;

/// Serves `listener` until `shutdown` turns true, then stops accepting; connections already
/// open finish the request in hand.
pub async fn serve(listener: TcpListener, state: Arc<State>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stopped(&mut shutdown) => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors and the like: back off, keep serving.
                tracing::warn!(%err, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let mut stop = shutdown.clone();
        state.open.send_modify(|n| *n += 1);
        tokio::spawn(async move {
            let _open = OpenConnection(state.clone());
            let permit = state.clients.clone().try_acquire_owned().ok();
            let over = permit.is_none();
            let service = {
                let state = state.clone();
                hyper::service::service_fn(move |request| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(answer(&state, request, peer, over).await) }
                })
            };
            // A slow or half-open client is closed once the head timeout passes (hyper's
            // header read timeout also runs while a kept-alive connection waits for its next
            // request: it is the idle timeout too); a head over the cap gets 431.
            let head_timeout = if over {
                OVER_BOUND_HEAD_TIMEOUT
            } else {
                state.limits.idle_timeout
            };
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(head_timeout)
                .max_buf_size(MAX_REQUEST_HEAD_BYTES)
                .keep_alive(!over)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            let lifetime = tokio::time::sleep(state.limits.lifetime);
            tokio::pin!(lifetime);
            let ended = tokio::select! {
                result = connection.as_mut() => Some(result),
                () = stopped(&mut stop) => None,
                () = &mut lifetime => None,
            };
            match ended {
                Some(Err(err)) => tracing::debug!(%err, "connection ended"),
                Some(Ok(())) => {}
                // Shutdown or the end of its lifetime: the request in hand is answered, then
                // the connection closes.
                None => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
            drop(permit);
        });
    }
}

/// Counts a connection as open until it is dropped (however its task ends).
struct OpenConnection(Arc<State>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Resolves once a shutdown is asked for (or the sender is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// One request: the checks, then the route.
async fn answer(
    state: &State,
    request: Request<Incoming>,
    peer: SocketAddr,
    over: bool,
) -> Response<Body> {
    let path = request.uri().path().to_owned();
    // Health checks must work under load and behind any proxy: `/ping` needs no token, is
    // not refused for X-Forwarded-For, and is answered over the connection bound too.
    if path == "/ping" {
        return match *request.method() {
            Method::GET => text(StatusCode::OK, "healthy"),
            _ => error(
                StatusCode::METHOD_NOT_ALLOWED,
                "InvalidRequestException",
                "only GET is allowed",
            ),
        };
    }
    if over {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "ThrottlingException",
            &format!(
                "connection limit exceeded ({} open connections)",
                state.max_clients
            ),
        );
    }
    // A proxy in front of us would make every caller look local: refuse (the agent's check).
    if request.headers().contains_key("x-forwarded-for") {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestException",
            "requests through a proxy (X-Forwarded-For) are refused",
        );
    }
    if !token_matches(&request, &state.token) {
        tracing::warn!(%peer, %path, "refused: missing or wrong token");
        return error(
            StatusCode::FORBIDDEN,
            "UnrecognizedClientException",
            &format!("missing or wrong {TOKEN_HEADER} header"),
        );
    }
    if request.method() != Method::GET {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "InvalidRequestException",
            "only GET is allowed",
        );
    }
    let query = match parse_query(request.uri().query()) {
        Ok(query) => query,
        Err(message) => return error(StatusCode::BAD_REQUEST, "ValidationException", &message),
    };
    let result = match path.as_str() {
        "/secretsmanager/get" => secretsmanager(state, &query, None).await,
        "/systemsmanager/parameters/get" | "/systemsmanager/parameters/get/" => {
            parameter(state, &query).await
        }
        "/secret-loader/get" => generic(state, &query).await,
        path => match path.strip_prefix("/v1/") {
            Some(id) => match percent_encoding::percent_decode_str(id).decode_utf8() {
                Ok(id) if !id.is_empty() => secretsmanager(state, &query, Some(&id)).await,
                _ => Err(Failure::bad_request("missing secret ID")),
            },
            None => {
                return error(
                    StatusCode::NOT_FOUND,
                    "UnknownOperationException",
                    &format!("no route {path}"),
                );
            }
        },
    };
    match result {
        Ok(response) => response,
        Err(failure) => error(failure.status, failure.code, &failure.message),
    }
}

/// The token check, in constant time, on either of the agent's headers.
fn token_matches(request: &Request<Incoming>, token: &str) -> bool {
    let headers = request.headers();
    let Some(given) = headers
        .get(TOKEN_HEADER)
        .or_else(|| headers.get(VAULT_TOKEN_HEADER))
    else {
        return false;
    };
    let (given, want) = (given.as_bytes(), token.as_bytes());
    given.len() == want.len()
        && given
            .iter()
            .zip(want)
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

/// Query parameters, each at most once.
fn parse_query(query: Option<&str>) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if out.insert(key.to_string(), value.to_string()).is_some() {
            return Err(format!("parameter {key} given twice"));
        }
    }
    Ok(out)
}

/// Why a route failed: status, AWS error code, message (never a value).
#[derive(Debug)]
struct Failure {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl Failure {
    fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "ValidationException",
            message: message.into(),
        }
    }
}

/// The status and AWS error code of each error kind; `not_found` is the route's own code
/// (`ResourceNotFoundException` or `ParameterNotFound`).
pub fn status_of(kind: ErrorKind, not_found: &'static str) -> (StatusCode, &'static str) {
    match kind {
        ErrorKind::NotFound => (StatusCode::NOT_FOUND, not_found),
        ErrorKind::AccessDenied => (StatusCode::FORBIDDEN, "AccessDeniedException"),
        ErrorKind::DecryptionFailed => (StatusCode::FORBIDDEN, "DecryptionFailure"),
        ErrorKind::Throttled => (StatusCode::TOO_MANY_REQUESTS, "ThrottlingException"),
        ErrorKind::Transient => (StatusCode::BAD_GATEWAY, "ServiceUnavailableException"),
        ErrorKind::InvalidId | ErrorKind::Unsupported | ErrorKind::InvalidConfig => {
            (StatusCode::BAD_REQUEST, "ValidationException")
        }
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "InternalFailure"),
    }
}

/// Reads through `stack` within its deadline.
async fn read(
    stack: &Stack,
    id: &SecretId,
    version: &VersionSelector,
    refresh: bool,
    not_found: &'static str,
) -> Result<Secret, Failure> {
    match tokio::time::timeout(stack.timeout(), stack.get(id, version, refresh)).await {
        Ok(Ok(secret)) => Ok(secret),
        Ok(Err(err)) => {
            let (status, code) = status_of(err.kind(), not_found);
            tracing::info!(stack = stack.name(), %id, kind = ?err.kind(), "read failed");
            Err(Failure {
                status,
                code,
                message: err.display_chain().to_string(),
            })
        }
        Err(_) => Err(Failure {
            status: StatusCode::GATEWAY_TIMEOUT,
            code: "TimeoutError",
            message: format!(
                "no answer from {} within {} ms",
                stack.name(),
                stack.timeout().as_millis()
            ),
        }),
    }
}

fn take_only(query: &BTreeMap<String, String>, allowed: &[&str]) -> Result<(), Failure> {
    match query.keys().find(|key| !allowed.contains(&key.as_str())) {
        Some(key) => Err(Failure::bad_request(format!(
            "unknown parameter {key}; valid: {}",
            allowed.join(", ")
        ))),
        None => Ok(()),
    }
}

fn flag(query: &BTreeMap<String, String>, name: &str) -> Result<bool, Failure> {
    match query.get(name).map(|v| v.to_ascii_lowercase()).as_deref() {
        None | Some("false" | "0") => Ok(false),
        Some("true" | "1") => Ok(true),
        Some(_) => Err(Failure::bad_request(format!("invalid {name} value"))),
    }
}

/// The version a Secrets Manager route asks for, and a stage the answer must carry when
/// both `versionId` and `versionStage` are given (as `GetSecretValue` takes both: they must
/// name the same version).
fn secret_version(
    query: &BTreeMap<String, String>,
) -> Result<(VersionSelector, Option<String>), Failure> {
    Ok(match (query.get("versionId"), query.get("versionStage")) {
        (Some(id), stage) => (VersionSelector::Id(id.clone()), stage.cloned()),
        (None, Some(stage)) => (VersionSelector::Stage(stage.clone()), None),
        (None, None) => (VersionSelector::Current, None),
    })
}

/// A read of a Secrets Manager route: the version, then the stage check of [`secret_version`].
async fn read_secret(
    stack: &Stack,
    id: &SecretId,
    query: &BTreeMap<String, String>,
) -> Result<Secret, Failure> {
    let (version, stage) = secret_version(query)?;
    let refresh = flag(query, "refreshNow")?;
    let secret = read(stack, id, &version, refresh, "ResourceNotFoundException").await?;
    match stage {
        Some(stage) if !secret.version_stages().contains(&stage) => Err(Failure {
            // What the agent answers (the service's error, its status) on the emulator.
            status: StatusCode::NOT_FOUND,
            code: "InvalidRequestException",
            message: "You provided a VersionStage that is not associated to the provided \
                      VersionId."
                .into(),
        }),
        _ => Ok(secret),
    }
}

fn parse_id(text: &str) -> Result<SecretId, Failure> {
    SecretId::new(text).map_err(|err| Failure::bad_request(err.to_string()))
}

/// `GET /secretsmanager/get?secretId=...` and `GET /v1/<id>`: `GetSecretValue`'s answer.
async fn secretsmanager(
    state: &State,
    query: &BTreeMap<String, String>,
    path_id: Option<&str>,
) -> Result<Response<Body>, Failure> {
    let mut allowed = vec!["versionId", "versionStage", "refreshNow"];
    if path_id.is_none() {
        allowed.push("secretId");
    }
    take_only(query, &allowed)?;
    let id = match path_id {
        Some(id) => id.to_owned(),
        None => query
            .get("secretId")
            .filter(|id| !id.is_empty())
            .cloned()
            .ok_or_else(|| Failure::bad_request("missing parameter secretId"))?,
    };
    let stack = state.stacks.secretsmanager().ok_or_else(|| {
        Failure::bad_request(format!(
            "no stack serves the Secrets Manager route; stacks: {} (use /secret-loader/get?source=NAME)",
            state.stacks.names().join(", ")
        ))
    })?;
    let id = parse_id(&id)?;
    let secret = read_secret(stack, &id, query).await?;
    Ok(json_bytes_response(get_secret_value_body(
        &secret,
        state.body_style,
    )))
}

/// `GET /secret-loader/get?id=...&source=NAME`: any stack, in `GetSecretValue`'s shape.
async fn generic(
    state: &State,
    query: &BTreeMap<String, String>,
) -> Result<Response<Body>, Failure> {
    take_only(
        query,
        &["id", "source", "versionId", "versionStage", "refreshNow"],
    )?;
    let id = query
        .get("id")
        .filter(|id| !id.is_empty())
        .ok_or_else(|| Failure::bad_request("missing parameter id"))?;
    let stack = match query.get("source") {
        Some(name) => state.stacks.named(name),
        None => state.stacks.only(),
    }
    .ok_or_else(|| {
        Failure::bad_request(format!(
            "source: one of {} (required when there is more than one stack)",
            state.stacks.names().join(", ")
        ))
    })?;
    let id = parse_id(id)?;
    let secret = read_secret(stack, &id, query).await?;
    Ok(json_bytes_response(get_secret_value_body(
        &secret,
        state.body_style,
    )))
}

/// `GET /systemsmanager/parameters/get?name=...`: `GetParameter`'s answer.
async fn parameter(
    state: &State,
    query: &BTreeMap<String, String>,
) -> Result<Response<Body>, Failure> {
    take_only(query, &["name", "version", "label", "withDecryption"])?;
    let given = query
        .get("name")
        .filter(|name| !name.is_empty())
        .ok_or_else(|| Failure::bad_request("missing parameter name"))?;
    let (name, in_name) = split_selector(given);
    let selector = match (query.get("version"), query.get("label"), in_name) {
        (None, None, selector) => selector,
        (Some(number), None, None) => Some(number.as_str()),
        (None, Some(label), None) => Some(label.as_str()),
        _ => {
            return Err(Failure::bad_request(
                "give one selector: version, label, or name:selector",
            ));
        }
    };
    let version = match selector {
        None => VersionSelector::Current,
        Some(number) if number.bytes().all(|b| b.is_ascii_digit()) => {
            VersionSelector::Id(number.to_owned())
        }
        Some(label) => VersionSelector::Stage(label.to_owned()),
    };
    let selector = selector.map(|s| format!(":{s}"));
    let decrypt = flag(query, "withDecryption")?;
    // Parameter Store's way to read a secret: answered from the Secrets Manager route's
    // stack, in `GetParameter`'s shape, as AWS answers it.
    if let Some(secret_id) = name.strip_prefix(SECRETS_MANAGER_REFERENCE) {
        let stack = state.stacks.secretsmanager().ok_or_else(|| {
            Failure::bad_request(
                "no stack serves the Secrets Manager route, which \
                                  /aws/reference/secretsmanager/ names read from",
            )
        })?;
        let id = parse_id(secret_id)?;
        let secret = read(stack, &id, &version, false, "ParameterNotFound").await?;
        return Ok(json_response(&reference_parameter(name, selector, &secret)));
    }
    let stack = state.stacks.ssm().ok_or_else(|| {
        Failure::bad_request(format!(
            "no stack serves the Parameter Store route; stacks: {}",
            state.stacks.names().join(", ")
        ))
    })?;
    let id = stack.id_for_parameter(name).ok_or_else(|| {
        Failure::bad_request(format!(
            "`{name}` is not a parameter name stack {} reaches",
            stack.name()
        ))
    })?;
    if !decrypt {
        // As AWS's extension answers it: `GetParameter` without decryption, a
        // `SecureString`'s value its ciphertext (never the plaintext unasked).
        return match stack.get_without_decryption(&id, &version).await {
            Some(Ok(secret)) => Ok(json_response(&get_parameter(name, selector, &secret))),
            Some(Err(err)) => {
                let (status, code) = status_of(err.kind(), "ParameterNotFound");
                Err(Failure {
                    status,
                    code,
                    message: err.display_chain().to_string(),
                })
            }
            None => Err(Failure::bad_request(format!(
                "stack {} is not Parameter Store: ask with withDecryption=true",
                stack.name()
            ))),
        };
    }
    let secret = read(stack, &id, &version, false, "ParameterNotFound").await?;
    Ok(json_response(&get_parameter(name, selector, &secret)))
}

/// `name:3` and `name:label` select in the name itself, as `GetParameter` takes them; in an
/// ARN (`arn:aws:ssm:REGION:ACCOUNT:parameter/NAME:3`) only after `parameter/`.
fn split_selector(given: &str) -> (&str, Option<&str>) {
    let start = if given.starts_with("arn:") {
        given
            .find(":parameter/")
            .map_or(given.len(), |i| i + ":parameter/".len())
    } else {
        0
    };
    match given[start..].rsplit_once(':') {
        Some((name, selector)) if !name.is_empty() && !selector.is_empty() => {
            (&given[..start + name.len()], Some(selector))
        }
        _ => (given, None),
    }
}

/// Parameter Store names that read a Secrets Manager secret
/// (`GetParameter` of `/aws/reference/secretsmanager/ID`).
const SECRETS_MANAGER_REFERENCE: &str = "/aws/reference/secretsmanager/";

/// `GetParameter`'s answer for a `/aws/reference/secretsmanager/` name: the secret as a
/// `SecureString` whose value is the secret string, the secret's ARN, version 0, as
/// Parameter Store answers such a name.
fn reference_parameter(name: &str, selector: Option<String>, secret: &Secret) -> Value {
    let mut answer = get_parameter(name, selector, secret);
    let parameter = &mut answer["Parameter"];
    parameter["Name"] = json!(name);
    parameter["Type"] = json!("SecureString");
    parameter["Version"] = json!(0);
    parameter["DataType"] = Value::Null;
    answer
}

/// Whose answers the bodies copy: AWS's Parameters and Secrets extension (in Lambda) or the
/// Secrets Manager Agent (outside it), so code written for either reads ours unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyStyle {
    /// AWS's extension: every field present (`null` when absent), dates as ISO-8601 with
    /// milliseconds, and `ResultMetadata` (its recorded responses).
    Extension,
    /// The agent: `ARN`, `Name`, `VersionId` always (`null` when absent), `SecretString` or
    /// `SecretBinary`, `VersionStages` when there are some, `CreatedDate` as a string of epoch
    /// seconds (its `GetSecretValueOutputDef`).
    Agent,
}

/// ISO-8601 in UTC with milliseconds (`2022-11-16T08:22:40.499Z`), as AWS's extension writes
/// dates.
fn iso_millis(time: SystemTime) -> Value {
    json!(iso_millis_text(time))
}

/// [`iso_millis`] as text.
fn iso_millis_text(time: SystemTime) -> String {
    // Rounded to the nearest millisecond (a time parsed from the service's epoch float can
    // fall a hair below the millisecond it names).
    let rounded = time + std::time::Duration::from_micros(500);
    humantime::format_rfc3339_millis(rounded).to_string()
}

/// Epoch seconds as a string, the fraction to the nanosecond without trailing zeros
/// (`1796183243`, `1796183243.5`), as the agent writes `CreatedDate` (serde_with's
/// `TimestampSecondsWithFrac<String>`).
fn epoch_seconds_text(time: SystemTime) -> Option<String> {
    let since = time.duration_since(UNIX_EPOCH).ok()?;
    let nanos = since.subsec_nanos();
    Some(if nanos == 0 {
        since.as_secs().to_string()
    } else {
        let fraction = format!("{nanos:09}");
        format!("{}.{}", since.as_secs(), fraction.trim_end_matches('0'))
    })
}

/// `GetSecretValue` as AWS's extension writes it (field names and order as its answers).
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct ExtensionSecretBody<'a> {
    #[serde(rename = "ARN")]
    arn: Option<&'a str>,
    created_date: Option<String>,
    name: &'a str,
    secret_binary: Option<String>,
    secret_string: Option<&'a str>,
    version_id: Option<&'a str>,
    version_stages: Option<&'a [String]>,
    result_metadata: Empty,
}

/// `{}`.
#[derive(serde::Serialize)]
struct Empty {}

/// `GetSecretValue` as the agent writes it (its `GetSecretValueOutputDef`).
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct AgentSecretBody<'a> {
    #[serde(rename = "ARN")]
    arn: Option<&'a str>,
    name: &'a str,
    version_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_string: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_binary: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version_stages: Option<&'a [String]>,
    created_date: Option<String>,
}

/// `GetSecretValue`'s answer, as `style` writes it, serialized straight from the secret (no
/// intermediate JSON tree: the value is copied once, into the body).
pub fn get_secret_value_body(secret: &Secret, style: BodyStyle) -> Vec<u8> {
    let value = secret.value();
    let (string, binary) = match value.expose_str().filter(|_| value.is_text()) {
        Some(text) => (Some(text), None),
        None => (
            None,
            Some(aws_smithy_types::base64::encode(value.expose_bytes())),
        ),
    };
    let name = secret.name().unwrap_or(secret.id().name());
    let stages = (!secret.version_stages().is_empty()).then(|| secret.version_stages());
    let written = match style {
        BodyStyle::Extension => serde_json::to_vec(&ExtensionSecretBody {
            arn: secret.arn(),
            created_date: secret.created().map(iso_millis_text),
            name,
            secret_binary: binary,
            secret_string: string,
            version_id: secret.version_id(),
            version_stages: stages,
            result_metadata: Empty {},
        }),
        BodyStyle::Agent => serde_json::to_vec(&AgentSecretBody {
            arn: secret.arn(),
            name,
            version_id: secret.version_id(),
            secret_string: string,
            secret_binary: binary,
            version_stages: stages,
            created_date: secret.created().and_then(epoch_seconds_text),
        }),
    };
    // Strings and slices of strings always serialize.
    written.unwrap_or_default()
}

/// `GetParameter`'s output shape as AWS's extension answers it: every field present (`null`
/// when absent), `LastModifiedDate` in ISO-8601, and `ResultMetadata`.
pub fn get_parameter(name: &str, selector: Option<String>, secret: &Secret) -> Value {
    let value = secret.value();
    let text = value.expose_str().map_or_else(
        || aws_smithy_types::base64::encode(value.expose_bytes()),
        str::to_owned,
    );
    let parameter = json!({
        "ARN": secret.arn(),
        "DataType": "text",
        "LastModifiedDate": secret.created().map_or(Value::Null, iso_millis),
        "Name": secret.name().unwrap_or(name),
        "Selector": selector,
        "SourceResult": null,
        "Type": secret.value_type(),
        "Value": text,
        "Version": secret.version_id().and_then(|v| v.parse::<i64>().ok()),
    });
    json!({ "Parameter": parameter, "ResultMetadata": {} })
}

fn json_response(value: &Value) -> Response<Body> {
    json_bytes_response(value.to_string().into_bytes())
}

fn json_bytes_response(body: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    response
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
}

/// An error in AWS's form: `{"__type": code, "message": ...}`.
fn error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let mut response = json_response(&json!({ "__type": code, "message": message }));
    *response.status_mut() = status;
    if status == StatusCode::TOO_MANY_REQUESTS && message.starts_with("connection limit") {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

#[cfg(test)]
mod tests {
    use secret_loader::SecretValue;

    use super::*;

    fn get_secret_value(secret: &Secret, style: BodyStyle) -> Value {
        serde_json::from_slice(&get_secret_value_body(secret, style)).unwrap()
    }

    #[test]
    fn get_secret_value_has_aws_s_fields() {
        let id = SecretId::new("app/db").unwrap();
        let secret = Secret::new(id.clone(), "secretsmanager", SecretValue::text("v"))
            .with_version_id(Some("v1".into()))
            .with_version_stages(vec!["AWSCURRENT".into()])
            .with_arn(Some(
                "arn:aws:secretsmanager:us-east-1:1:secret:app/db-AbCdEf".into(),
            ))
            .with_created(Some(
                UNIX_EPOCH + std::time::Duration::from_millis(1_569_534_789_046),
            ));
        let body = get_secret_value(&secret, BodyStyle::Extension);
        assert_eq!(body["Name"], "app/db");
        assert_eq!(body["SecretString"], "v");
        assert_eq!(body["SecretBinary"], Value::Null, "present, null");
        assert_eq!(body["VersionStages"], json!(["AWSCURRENT"]));
        assert_eq!(body["CreatedDate"], "2019-09-26T21:53:09.046Z");
        assert_eq!(body["ResultMetadata"], json!({}));
        let agent = get_secret_value(&secret, BodyStyle::Agent);
        assert_eq!(agent["CreatedDate"], "1569534789.046");
        assert!(agent.get("SecretBinary").is_none() && agent.get("ResultMetadata").is_none());
        let binary = Secret::new(id, "s3+kms", SecretValue::binary(vec![0xff, 0]));
        let body = get_secret_value(&binary, BodyStyle::Agent);
        assert_eq!(body["SecretBinary"], "/wA=");
        assert!(body.get("SecretString").is_none());
        assert_eq!(
            (&body["ARN"], &body["CreatedDate"]),
            (&Value::Null, &Value::Null)
        );
    }

    #[test]
    fn every_kind_has_a_distinct_status_where_callers_act_differently() {
        let statuses: Vec<_> = [
            ErrorKind::NotFound,
            ErrorKind::AccessDenied,
            ErrorKind::Throttled,
            ErrorKind::Transient,
            ErrorKind::InvalidId,
        ]
        .into_iter()
        .map(|kind| status_of(kind, "ResourceNotFoundException").0)
        .collect();
        let mut unique = statuses.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), statuses.len(), "{statuses:?}");
    }

    #[test]
    fn query_parameters_are_decoded_once_and_not_repeated() {
        let query = parse_query(Some("secretId=a%2Fb&versionStage=AWSCURRENT")).unwrap();
        assert_eq!(query["secretId"], "a/b");
        assert!(parse_query(Some("a=1&a=2")).is_err());
    }
}
