//! Counting AWS calls on the wire: an HTTP client for the SDK that counts every request it
//! sends, by operation (`kms:Decrypt`, `secretsmanager:GetSecretValue`, `s3:GET`), before
//! handing it to the SDK's own HTTPS client. Retries count (each
//! attempt is a request); calls a service makes on our behalf (S3 asking KMS for an SSE-KMS
//! object's key) are not visible here.
//!
//! New connections are counted too: the client resolves an endpoint's name once per new
//! connection (a kept-alive one is reused without it), so a resolver that counts before it
//! resolves counts connections, each one TLS handshake on an `https` endpoint. A literal IP
//! endpoint (`http://127.0.0.1:PORT`) is never resolved, so it is not counted: the counts
//! hold for AWS's endpoints and the harness's `https://localhost` ones.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::comparison::Calls;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_runtime::client::dns::TokioDnsResolver;
use aws_smithy_runtime_api::client::dns::{DnsFuture, ResolveDns};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::shared::IntoShared;

/// Counts the requests sent through [`CallCounter::http_client`].
#[derive(Debug, Clone, Default)]
pub struct CallCounter {
    counts: Arc<Mutex<Calls>>,
    connections: Arc<AtomicU64>,
}

impl CallCounter {
    /// A counter at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// The SDK's default HTTPS client (rustls on AWS-LC), counting what it sends and the
    /// connections it opens here.
    pub fn http_client(&self) -> SharedHttpClient {
        let inner = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
            .build_with_resolver(CountingResolver {
                inner: TokioDnsResolver::new(),
                connections: self.connections.clone(),
            });
        self.wrap(inner)
    }

    /// New connections opened so far (see the [module docs](self)).
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// `inner`, counting what it sends here.
    pub fn wrap(&self, inner: SharedHttpClient) -> SharedHttpClient {
        CountingClient {
            inner,
            counts: self.counts.clone(),
        }
        .into_shared()
    }

    /// The counts so far.
    pub fn snapshot(&self) -> Calls {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// `after - before`, keeping only services with calls.
pub fn difference(after: &Calls, before: &Calls) -> Calls {
    after
        .iter()
        .map(|(service, n)| {
            (
                service.clone(),
                n - before.get(service).copied().unwrap_or(0),
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}

#[derive(Debug)]
struct CountingClient {
    inner: SharedHttpClient,
    counts: Arc<Mutex<Calls>>,
}

impl HttpClient for CountingClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        CountingConnector {
            inner: self.inner.http_connector(settings, components),
            counts: self.counts.clone(),
        }
        .into_shared()
    }

    fn connector_metadata(
        &self,
    ) -> Option<aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata> {
        self.inner.connector_metadata()
    }
}

/// The SDK's own resolver, counting each name it is asked for: one per new connection.
#[derive(Debug, Clone)]
struct CountingResolver {
    inner: TokioDnsResolver,
    connections: Arc<AtomicU64>,
}

impl ResolveDns for CountingResolver {
    fn resolve_dns<'a>(&'a self, name: &'a str) -> DnsFuture<'a> {
        self.connections.fetch_add(1, Ordering::Relaxed);
        self.inner.resolve_dns(name)
    }
}

#[derive(Debug)]
struct CountingConnector {
    inner: SharedHttpConnector,
    counts: Arc<Mutex<Calls>>,
}

impl HttpConnector for CountingConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let service = operation_of(&request);
        *self
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(service)
            .or_default() += 1;
        self.inner.call(request)
    }
}

/// `service:Operation` of a request: the operation from the JSON protocols' `x-amz-target`
/// (`TrentService.Decrypt`) or the RPC v2 path (`/service/X/operation/Y`), else, for REST
/// services such as S3, the HTTP method; the service alone when neither says.
fn operation_of(request: &HttpRequest) -> String {
    let service = service_of(request);
    let target = request
        .headers()
        .get("x-amz-target")
        .and_then(|target| target.rsplit('.').next())
        .map(str::to_owned);
    let rpc = || {
        let path = request.uri().split("://").nth(1)?;
        let (_, operation) = path.split_once("/operation/")?;
        Some(operation.split(['/', '?']).next()?.to_owned())
    };
    let rest = || (service == "s3").then(|| request.method().to_owned());
    match target.or_else(rpc).or_else(rest) {
        Some(operation) if !operation.is_empty() => format!("{service}:{operation}"),
        _ => service,
    }
}

/// The service a signed request is for: the SigV4 credential scope
/// (`Credential=AKID/20261128/us-east-1/kms/aws4_request`), else the host's first label
/// (`kms.us-east-1.amazonaws.com`).
fn service_of(request: &HttpRequest) -> String {
    let scoped = request
        .headers()
        .get("authorization")
        .and_then(|auth| auth.split("Credential=").nth(1))
        .and_then(|credential| credential.split([',', ' ']).next())
        .and_then(|scope| scope.split('/').nth(3));
    if let Some(service) = scoped {
        return service.to_owned();
    }
    let uri = request.uri();
    uri.split("://")
        .nth(1)
        .and_then(|rest| rest.split(['.', '/', ':']).next())
        .filter(|label| label.starts_with(|c: char| c.is_ascii_alphabetic()))
        .unwrap_or("unknown")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str, auth: Option<&str>) -> HttpRequest {
        let mut request = HttpRequest::get(uri).unwrap();
        if let Some(auth) = auth {
            request
                .headers_mut()
                .insert("authorization", auth.to_owned());
        }
        request
    }

    #[test]
    fn the_service_comes_from_the_credential_scope_then_the_host() {
        let auth = "AWS4-HMAC-SHA256 Credential=test/20261128/us-east-1/kms/aws4_request, \
                    SignedHeaders=host;x-amz-date, Signature=abc";
        assert_eq!(
            service_of(&request("http://127.0.0.1:5000/", Some(auth))),
            "kms"
        );
        assert_eq!(
            service_of(&request(
                "https://secretsmanager.us-east-1.amazonaws.com/",
                None
            )),
            "secretsmanager"
        );
        assert_eq!(
            service_of(&request("http://127.0.0.1:5000/", Some("Bearer x"))),
            "unknown"
        );
    }

    #[test]
    fn operations_come_from_the_target_the_rpc_path_or_the_method() {
        let auth = |service: &str| {
            format!(
                "AWS4-HMAC-SHA256 Credential=test/20261128/us-east-1/{service}/aws4_request, \
                 SignedHeaders=host, Signature=abc"
            )
        };
        let mut kms = request("http://127.0.0.1:5000/", Some(&auth("kms")));
        kms.headers_mut()
            .insert("x-amz-target", "TrentService.Decrypt".to_owned());
        assert_eq!(operation_of(&kms), "kms:Decrypt");
        let mut ssm = request("http://127.0.0.1:5000/", Some(&auth("ssm")));
        ssm.headers_mut()
            .insert("x-amz-target", "AmazonSSM.GetParameter".to_owned());
        assert_eq!(operation_of(&ssm), "ssm:GetParameter");
        let cbor = request(
            "http://127.0.0.1:5000/service/Svc/operation/GetThing",
            Some(&auth("svc")),
        );
        assert_eq!(operation_of(&cbor), "svc:GetThing");
        let s3 = request("http://127.0.0.1:5000/bucket/key", Some(&auth("s3")));
        assert_eq!(operation_of(&s3), "s3:GET");
        let other = request("http://127.0.0.1:5000/", Some(&auth("sts")));
        assert_eq!(operation_of(&other), "sts");
    }

    #[test]
    fn differences_keep_services_with_calls() {
        let before = Calls::from([("kms".into(), 2), ("s3".into(), 1)]);
        let after = Calls::from([("kms".into(), 3), ("s3".into(), 1), ("sts".into(), 1)]);
        assert_eq!(
            difference(&after, &before),
            Calls::from([("kms".into(), 1), ("sts".into(), 1)])
        );
    }
}
