//! The Lambda Extensions API, as an external extension uses it: register for `INVOKE` and
//! `SHUTDOWN`, then wait for events (`event/next`) until `SHUTDOWN`.
//! Paths, headers and fields as Lambda's "Extensions API" reference names them.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::TcpStream;

/// The API version in every path.
const API: &str = "/2020-01-01/extension";
/// The header naming the extension at registration.
pub const NAME_HEADER: &str = "Lambda-Extension-Name";
/// The header carrying the identifier Lambda gave at registration.
pub const IDENTIFIER_HEADER: &str = "Lambda-Extension-Identifier";

/// What `event/next` answered.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(tag = "eventType", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Event {
    /// The function is being invoked.
    Invoke {
        /// The invocation's request id.
        #[serde(rename = "requestId")]
        request_id: String,
        /// When the invocation times out, Unix milliseconds.
        #[serde(rename = "deadlineMs")]
        deadline_ms: u64,
    },
    /// The environment is shutting down: finish within the deadline.
    Shutdown {
        /// `SPINDOWN`, `TIMEOUT` or `FAILURE`.
        #[serde(rename = "shutdownReason")]
        reason: String,
        /// When Lambda kills the process, Unix milliseconds.
        #[serde(rename = "deadlineMs")]
        deadline_ms: u64,
    },
}

/// A registered extension.
#[derive(Debug, Clone)]
pub struct Extension {
    api: String,
    identifier: String,
}

impl Extension {
    /// Registers `name` (the extension's file name, as Lambda requires) for `INVOKE` and
    /// `SHUTDOWN` with the API at `api` (`AWS_LAMBDA_RUNTIME_API`, `host:port`).
    ///
    /// # Errors
    /// The API unreachable or refusing.
    pub async fn register(api: &str, name: &str) -> Result<Self, String> {
        let request = Request::post(format!("http://{api}{API}/register"))
            .header("host", api)
            .header(NAME_HEADER, name)
            .body(Full::new(Bytes::from_static(
                br#"{"events":["INVOKE","SHUTDOWN"]}"#,
            )))
            .map_err(|e| e.to_string())?;
        let (status, headers, body) = send(api, request).await?;
        if !status.is_success() {
            return Err(format!(
                "register: {status}: {}",
                String::from_utf8_lossy(&body)
            ));
        }
        let identifier = headers
            .get(IDENTIFIER_HEADER)
            .and_then(|v| v.to_str().ok())
            .ok_or("register: no Lambda-Extension-Identifier in the answer")?
            .to_owned();
        Ok(Self {
            api: api.to_owned(),
            identifier,
        })
    }

    /// Waits for the next event (no timeout: Lambda freezes the process in between).
    ///
    /// # Errors
    /// The API unreachable or answering something else than an event.
    pub async fn next(&self) -> Result<Event, String> {
        let request = Request::get(format!("http://{}{API}/event/next", self.api))
            .header("host", &self.api)
            .header(IDENTIFIER_HEADER, &self.identifier)
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let (status, _, body) = send(&self.api, request).await?;
        if !status.is_success() {
            return Err(format!(
                "event/next: {status}: {}",
                String::from_utf8_lossy(&body)
            ));
        }
        serde_json::from_slice(&body).map_err(|e| format!("event/next: not an event: {e}"))
    }

    /// Reports a failed initialisation (`init/error`); Lambda then stops the environment.
    pub async fn init_error(&self, error_type: &str, message: &str) {
        let body = serde_json::json!({"errorMessage": message, "errorType": error_type});
        let request = Request::post(format!("http://{}{API}/init/error", self.api))
            .header("host", &self.api)
            .header(IDENTIFIER_HEADER, &self.identifier)
            .header("Lambda-Extension-Function-Error-Type", error_type)
            .body(Full::new(Bytes::from(body.to_string())));
        if let Ok(request) = request {
            let _ = send(&self.api, request).await;
        }
    }
}

/// One request on a connection of its own (the API is on loopback).
async fn send(
    api: &str,
    request: Request<Full<Bytes>>,
) -> Result<(hyper::StatusCode, hyper::HeaderMap, Bytes), String> {
    let stream = TcpStream::connect(api)
        .await
        .map_err(|e| format!("cannot reach the Extensions API at {api}: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("Extensions API: {e}"))?;
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| format!("Extensions API: {e}"))?
        .to_bytes();
    Ok((parts.status, parts.headers, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_parse_as_lambda_sends_them() {
        let invoke = r#"{"eventType":"INVOKE","deadlineMs":1676051770000,"requestId":"3da1f2dc","invokedFunctionArn":"arn:aws:lambda:us-east-1:1:function:f","tracing":{"type":"X-Amzn-Trace-Id","value":"Root=1"}}"#;
        assert_eq!(
            serde_json::from_str::<Event>(invoke).unwrap(),
            Event::Invoke {
                request_id: "3da1f2dc".into(),
                deadline_ms: 1_676_051_770_000
            }
        );
        let shutdown =
            r#"{"eventType":"SHUTDOWN","shutdownReason":"SPINDOWN","deadlineMs":1676051772000}"#;
        assert_eq!(
            serde_json::from_str::<Event>(shutdown).unwrap(),
            Event::Shutdown {
                reason: "SPINDOWN".into(),
                deadline_ms: 1_676_051_772_000
            }
        );
    }
}
