//! What the extension's tests share: settings, an HTTP client on one keep-alive connection.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use secret_loader_extension::{Settings, TOKEN_HEADER};
use tokio::net::TcpStream;

/// The token the tests' extensions expect.
pub const TOKEN: &str = "test-session-token";

/// Settings from these variables, plus the token.
pub fn settings(vars: &[(&str, &str)]) -> Settings {
    let mut vars: BTreeMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    vars.entry("AWS_SESSION_TOKEN".into())
        .or_insert(TOKEN.into());
    Settings::from_lookup(|name| vars.get(name).cloned()).unwrap()
}

/// A `SECRET_LOADER_EXTENSION_STACKS` value.
pub fn stacks(pairs: &[(&str, &str)]) -> String {
    serde_json::to_string(&pairs.iter().copied().collect::<BTreeMap<_, _>>()).unwrap()
}

/// One keep-alive HTTP/1.1 connection.
pub struct Client {
    sender: SendRequest<Full<Bytes>>,
}

/// An answer: status and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

impl Client {
    pub async fn connect(address: SocketAddr) -> Self {
        let stream = TcpStream::connect(address).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        Self { sender }
    }

    /// `GET path` with the token.
    pub async fn get(&mut self, path: &str) -> Answer {
        self.request("GET", path, &[(TOKEN_HEADER, TOKEN)]).await
    }

    /// Any request, with exactly these headers.
    pub async fn request(&mut self, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
        self.sender.ready().await.unwrap();
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = self
            .sender
            .send_request(request.body(Full::new(Bytes::new())).unwrap())
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }
}

/// `GET path` with the token on a connection of its own.
pub async fn get(address: SocketAddr, path: &str) -> Answer {
    Client::connect(address).await.get(path).await
}

/// `s` percent-encoded for a query value.
pub fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A `GetSecretValue` answer as Secrets Manager writes it.
pub fn get_secret_value_body(name: &str, value: &str) -> String {
    serde_json::json!({
        "ARN": format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}-AbCdEf"),
        "Name": name,
        "VersionId": "v1",
        "SecretString": value,
        "VersionStages": ["AWSCURRENT"],
        "CreatedDate": 1.7e9,
    })
    .to_string()
}
