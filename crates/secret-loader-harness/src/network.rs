//! AWS's shape of network on loopback, in front of the emulator: each AWS service behind its
//! own HTTPS endpoint (its own port; a certificate from a certificate authority made for the
//! run, which clients trust through their usual settings, never by turning verification off),
//! HTTP/1.1 kept alive toward the client as AWS keeps it, and a round-trip time added where
//! the real network would add one. Connections, TLS handshakes (full and resumed) and
//! requests are counted per endpoint.
//!
//! What each exchange costs, with `rtt` the configured round trip:
//!
//! * a new connection: 2 × `rtt` between the ClientHello's arrival and the server's first
//!   TLS flight (TCP's handshake, then TLS 1.3's one round trip), so the client sees connect +
//!   handshake take 2 × `rtt` on top of its own work;
//! * each request: 1 × `rtt` before it is forwarded.
//!
//! A cold read on a new connection so costs at least 3 × `rtt` more than at `rtt` zero; a
//! read on a kept-alive connection 1 × `rtt`. Bandwidth, loss and the server's own time on
//! AWS are not modelled: the emulator answers as fast as it does.
//!
//! Behind the endpoints each request goes to the emulator over plain HTTP (a pooled client),
//! unchanged but for the URL's scheme and authority.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::HandshakeKind;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde::{Deserialize, Serialize};

/// The services the network puts behind endpoints: the name the SDKs' service-specific
/// endpoint variables use (`AWS_ENDPOINT_URL_<ID>`) for each.
pub const SERVICES: &[(&str, &str)] = &[
    ("secretsmanager", "SECRETS_MANAGER"),
    ("ssm", "SSM"),
    ("kms", "KMS"),
    ("s3", "S3"),
    ("sts", "STS"),
];

/// What one endpoint saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointStats {
    /// TCP connections accepted.
    pub connections: u64,
    /// TLS handshakes completed in full.
    pub full_handshakes: u64,
    /// TLS handshakes that resumed an earlier session.
    pub resumed_handshakes: u64,
    /// TLS handshakes that failed (a client that did not trust the certificate, say).
    pub failed_handshakes: u64,
    /// HTTP requests forwarded.
    pub requests: u64,
}

impl EndpointStats {
    /// What was seen after `earlier` (a snapshot of the same endpoint).
    pub fn since(&self, earlier: &Self) -> Self {
        Self {
            connections: self.connections.saturating_sub(earlier.connections),
            full_handshakes: self.full_handshakes.saturating_sub(earlier.full_handshakes),
            resumed_handshakes: self
                .resumed_handshakes
                .saturating_sub(earlier.resumed_handshakes),
            failed_handshakes: self
                .failed_handshakes
                .saturating_sub(earlier.failed_handshakes),
            requests: self.requests.saturating_sub(earlier.requests),
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    connections: AtomicU64,
    full_handshakes: AtomicU64,
    resumed_handshakes: AtomicU64,
    failed_handshakes: AtomicU64,
    requests: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> EndpointStats {
        EndpointStats {
            connections: self.connections.load(Ordering::Relaxed),
            full_handshakes: self.full_handshakes.load(Ordering::Relaxed),
            resumed_handshakes: self.resumed_handshakes.load(Ordering::Relaxed),
            failed_handshakes: self.failed_handshakes.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
        }
    }
}

struct Endpoint {
    address: SocketAddr,
    counters: Arc<Counters>,
}

/// The endpoints, running on a runtime of their own until dropped.
pub struct AwsNetwork {
    runtime: Option<tokio::runtime::Runtime>,
    endpoints: BTreeMap<&'static str, Endpoint>,
    rtt: Duration,
    /// Holds `ca.pem`, the run's certificate authority.
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for AwsNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsNetwork")
            .field("endpoints", &self.endpoints.keys().collect::<Vec<_>>())
            .field("rtt", &self.rtt)
            .finish_non_exhaustive()
    }
}

impl AwsNetwork {
    /// Starts one HTTPS endpoint per service of [`SERVICES`] in front of `upstream` (the
    /// emulator's `http://127.0.0.1:PORT`), each adding `rtt` as the module docs say.
    ///
    /// # Errors
    /// A message when the certificates can't be made, a port can't be bound, or `upstream`
    /// is not a plain-HTTP URL.
    pub fn start(upstream: &str, rtt: Duration) -> Result<Self, String> {
        let upstream: hyper::Uri = upstream
            .parse()
            .map_err(|e| format!("{upstream}: not a URL: {e}"))?;
        if upstream.scheme_str() != Some("http") || upstream.authority().is_none() {
            return Err(format!(
                "{upstream}: the emulator's URL must be http://HOST:PORT"
            ));
        }
        let dir = tempfile::tempdir().map_err(|e| format!("no temporary directory: {e}"))?;
        let (ca_pem, tls) = certificates()?;
        std::fs::write(dir.path().join("ca.pem"), ca_pem)
            .map_err(|e| format!("cannot write the CA certificate: {e}"))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("aws-network")
            .enable_all()
            .build()
            .map_err(|e| format!("no runtime for the network: {e}"))?;
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        // No Nagle toward the emulator (nor toward the client, below): a request or answer
        // written in two pieces would otherwise wait for a delayed ACK, up to 40 ms on Linux,
        // a stall AWS's endpoints don't have (the SDK's own client sets TCP_NODELAY too).
        let mut upstream_connector = HttpConnector::new();
        upstream_connector.set_nodelay(true);
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build(upstream_connector);
        let mut endpoints = BTreeMap::new();
        for (service, _) in SERVICES {
            // Bound here (no `block_on`: the caller may itself be on a runtime), served there.
            let bound = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(|e| format!("cannot bind an endpoint for {service}: {e}"))?;
            let address = bound
                .local_addr()
                .map_err(|e| format!("no address for {service}'s endpoint: {e}"))?;
            let listener = {
                let _entered = runtime.enter();
                tokio::net::TcpListener::from_std(bound)
                    .map_err(|e| format!("cannot serve {service}'s endpoint: {e}"))?
            };
            let counters = Arc::new(Counters::default());
            runtime.spawn(serve(
                listener,
                acceptor.clone(),
                Forward {
                    client: client.clone(),
                    upstream: upstream.clone(),
                    rtt,
                    counters: counters.clone(),
                },
            ));
            endpoints.insert(*service, Endpoint { address, counters });
        }
        Ok(Self {
            runtime: Some(runtime),
            endpoints,
            rtt,
            dir,
        })
    }

    /// `https://localhost:PORT` for `service` (a name, so the client resolves it as it
    /// resolves AWS's endpoints); `None` for a service not in [`SERVICES`].
    pub fn endpoint_url(&self, service: &str) -> Option<String> {
        self.endpoints
            .get(service)
            .map(|e| format!("https://localhost:{}", e.address.port()))
    }

    /// The run's certificate authority (PEM), which clients must trust.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The round trip each exchange is given.
    pub fn rtt(&self) -> Duration {
        self.rtt
    }

    /// The variables that send a process's AWS calls here and make it trust the run's
    /// authority: `AWS_ENDPOINT_URL_<SERVICE>` per service, `SSL_CERT_FILE` (rustls'
    /// native roots, so the Rust SDK; OpenSSL) and `AWS_CA_BUNDLE` (botocore). An
    /// `AWS_ENDPOINT_URL` beside them doesn't matter: the service-specific ones win.
    pub fn environment(&self) -> Vec<(String, String)> {
        let ca = self.ca_file().display().to_string();
        let mut env: Vec<(String, String)> = SERVICES
            .iter()
            .filter_map(|(service, id)| {
                Some((
                    format!("AWS_ENDPOINT_URL_{id}"),
                    self.endpoint_url(service)?,
                ))
            })
            .collect();
        env.push(("SSL_CERT_FILE".into(), ca.clone()));
        env.push(("AWS_CA_BUNDLE".into(), ca));
        env
    }

    /// What each endpoint has seen so far, by service.
    pub fn stats(&self) -> BTreeMap<String, EndpointStats> {
        self.endpoints
            .iter()
            .map(|(service, e)| ((*service).to_owned(), e.counters.snapshot()))
            .collect()
    }
}

impl Drop for AwsNetwork {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Never blocks: safe inside an async context too.
            runtime.shutdown_background();
        }
    }
}

/// A certificate authority made for this run (its PEM) and a server configuration whose
/// certificate it signed, for `localhost` and 127.0.0.1.
fn certificates() -> Result<(String, Arc<rustls::ServerConfig>), String> {
    let failed = |e: rcgen::Error| format!("cannot make the run's certificates: {e}");
    let ca_key = rcgen::KeyPair::generate().map_err(failed)?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(
        rcgen::DnType::CommonName,
        "secret-loader harness CA (one run)",
    );
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).map_err(failed)?;
    let leaf_key = rcgen::KeyPair::generate().map_err(failed)?;
    let mut leaf_params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned()]).map_err(failed)?;
    leaf_params
        .subject_alt_names
        .push(rcgen::SanType::IpAddress(Ipv4Addr::LOCALHOST.into()));
    leaf_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    leaf_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let leaf = leaf_params.signed_by(&leaf_key, &ca).map_err(failed)?;
    let chain: Vec<CertificateDer<'static>> = vec![leaf.der().clone()];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("no TLS versions: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("the endpoint's certificate is unusable: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((ca.pem(), Arc::new(config)))
}

/// What a connection needs to forward its requests.
#[derive(Clone)]
struct Forward {
    client: Client<HttpConnector, Full<Bytes>>,
    upstream: hyper::Uri,
    rtt: Duration,
    counters: Arc<Counters>,
}

async fn serve(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    forward: Forward,
) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        forward.counters.connections.fetch_add(1, Ordering::Relaxed);
        let _ = tcp.set_nodelay(true);
        let (acceptor, forward) = (acceptor.clone(), forward.clone());
        tokio::spawn(async move {
            // TCP's handshake and TLS 1.3's round trip, counted from the ClientHello's
            // arrival: on loopback `connect` returns at once, and the client builds its
            // ClientHello while a wait counted from the accept would already be running, work
            // that on a real network starts only after TCP's round trip.
            let mut first = [0u8; 1];
            if tcp.peek(&mut first).await.is_err() {
                return;
            }
            wait(forward.rtt * 2).await;
            let tls = match acceptor.accept(tcp).await {
                Ok(tls) => tls,
                Err(_) => {
                    forward
                        .counters
                        .failed_handshakes
                        .fetch_add(1, Ordering::Relaxed);
                    return;
                }
            };
            let counter = match tls.get_ref().1.handshake_kind() {
                Some(HandshakeKind::Resumed) => &forward.counters.resumed_handshakes,
                _ => &forward.counters.full_handshakes,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            let service = hyper::service::service_fn(move |request| {
                let forward = forward.clone();
                async move { Ok::<_, std::convert::Infallible>(forward.exchange(request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}

/// Waits `delay` precisely: tokio's timer rounds up to whole milliseconds (a 1 ms round trip
/// became up to 2, a zero one up to 1), so the wait runs on a blocking thread, whose sleep
/// has the kernel's precision; no wait at all for zero.
async fn wait(delay: Duration) {
    if !delay.is_zero() {
        let _ = tokio::task::spawn_blocking(move || std::thread::sleep(delay)).await;
    }
}

impl Forward {
    /// One request: a round trip, then the emulator's answer as it gave it.
    async fn exchange(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        wait(self.rtt).await;
        match self.send(request).await {
            Ok(response) => response,
            Err(message) => {
                let mut response = Response::new(Full::new(Bytes::from(message)));
                *response.status_mut() = StatusCode::BAD_GATEWAY;
                response
            }
        }
    }

    async fn send(&self, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, String> {
        let (mut parts, body) = request.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| format!("reading the request: {e}"))?
            .to_bytes();
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        parts.uri = hyper::Uri::builder()
            .scheme("http")
            .authority(
                self.upstream
                    .authority()
                    .map_or("127.0.0.1", |a| a.as_str()),
            )
            .path_and_query(path)
            .build()
            .map_err(|e| format!("no upstream URL: {e}"))?;
        let response = self
            .client
            .request(Request::from_parts(parts, Full::new(body)))
            .await
            .map_err(|e| format!("the emulator did not answer: {e}"))?;
        let (mut parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| format!("reading the emulator's answer: {e}"))?
            .to_bytes();
        // The body is whole now: its length is set again by the server, and the client's
        // connection stays as the client asked, not as the emulator's did.
        for hop in [
            "connection",
            "keep-alive",
            "transfer-encoding",
            "content-length",
        ] {
            parts.headers.remove(hop);
        }
        Ok(Response::from_parts(parts, Full::new(body)))
    }
}
