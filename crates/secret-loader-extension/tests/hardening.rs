//! The server against clients that misbehave: half-open and slow ones, idle keep-alive
//! connections, oversized heads, connections that live too long, more connections than the
//! bound (with `/ping` still answered), and the agent's second token header. Raw TCP, so
//! exactly what is sent and what comes back (or when the server closes) is seen.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{TOKEN, settings, stacks};
use secret_loader_extension::settings::{
    CONNECTION_LIFETIME_ENV, IDLE_TIMEOUT_ENV, MAX_CLIENTS_ENV, STACKS_ENV,
};
use secret_loader_extension::{Running, VAULT_TOKEN_HEADER};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn start(vars: &[(&str, &str)]) -> Running {
    secret_loader_extension::start(&settings(vars), SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap()
}

/// An `env://` stack (no AWS call) serving `SL_HARDEN_<ID>`.
fn env_stack() -> String {
    stacks(&[("secretsmanager", "env://?prefix=SL_HARDEN_")])
}

/// Reads from `stream` until the server closes it (`Ok(bytes)`), or `Err(bytes so far)` when
/// it is still open after `within`.
async fn until_closed(stream: &mut TcpStream, within: Duration) -> Result<String, String> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let mut buffer = [0u8; 4096];
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(String::from_utf8_lossy(&seen).into_owned()),
            Ok(Ok(n)) => seen.extend_from_slice(&buffer[..n]),
            Err(_) => return Err(String::from_utf8_lossy(&seen).into_owned()),
        }
    }
}

fn request(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nX-Aws-Parameters-Secrets-Token: {TOKEN}\r\n{extra}\r\n"
    )
}

/// Five clients that send half a request and stop are all closed once the head timeout
/// passes; before, they held their connection slots for as long as they liked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_and_slow_clients_are_closed_after_the_head_timeout() {
    let running = start(&[(STACKS_ENV, &env_stack()), (IDLE_TIMEOUT_ENV, "300")]).await;
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..5 {
        let mut stream = TcpStream::connect(running.address()).await.unwrap();
        stream
            .write_all(b"GET /secretsmanager/get?secretId=x HTTP/1.1\r\nHost: local")
            .await
            .unwrap();
        clients.push(stream);
    }
    for stream in &mut clients {
        let closed = until_closed(stream, Duration::from_secs(5)).await;
        assert!(closed.is_ok(), "still open: {closed:?}");
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "closed after {took:?}");
    running.stop().await;
}

/// A kept-alive connection that goes quiet after its answer is closed after the idle timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed() {
    let running = start(&[(STACKS_ENV, &env_stack()), (IDLE_TIMEOUT_ENV, "300")]).await;
    let mut stream = TcpStream::connect(running.address()).await.unwrap();
    stream
        .write_all(request("/ping", "").as_bytes())
        .await
        .unwrap();
    let answered = until_closed(&mut stream, Duration::from_secs(5)).await;
    let text = answered.expect("closed once idle");
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.ends_with("healthy"),
        "answered before it closed: {text}"
    );
    running.stop().await;
}

/// A request head over the cap is answered 431 and the connection closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_request_head_is_refused() {
    let running = start(&[(STACKS_ENV, &env_stack())]).await;
    let mut stream = TcpStream::connect(running.address()).await.unwrap();
    let big = format!("X-Padding: {}\r\n", "a".repeat(64 * 1024));
    let _ = stream
        .write_all(request("/secretsmanager/get?secretId=x", &big).as_bytes())
        .await;
    let answer = until_closed(&mut stream, Duration::from_secs(5))
        .await
        .expect("closed");
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    running.stop().await;
}

/// A connection is served for its lifetime at most: requests sent back to back are all
/// answered, and after the lifetime the connection closes after the request in hand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closes_at_the_end_of_its_lifetime() {
    let running = start(&[(STACKS_ENV, &env_stack()), (CONNECTION_LIFETIME_ENV, "1")]).await;
    let mut stream = TcpStream::connect(running.address()).await.unwrap();
    let started = Instant::now();
    let mut answered = 0;
    let closed = loop {
        assert!(started.elapsed() < Duration::from_secs(10), "never closed");
        if stream
            .write_all(request("/ping", "").as_bytes())
            .await
            .is_err()
        {
            break started.elapsed();
        }
        let mut buffer = [0u8; 1024];
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break started.elapsed(),
            Ok(Ok(n)) => {
                assert!(buffer[..n].starts_with(b"HTTP/1.1 200"));
                answered += 1;
            }
            Err(_) => panic!("no answer"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(answered >= 5, "{answered} answered before closing");
    assert!(
        closed >= Duration::from_secs(1) && closed < Duration::from_secs(5),
        "closed after {closed:?}"
    );
    running.stop().await;
}

/// Over the connection bound a request is answered 429 and its connection closed at once,
/// but `/ping` is answered (health checks under load), and so is `/ping` through a proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_is_answered_over_the_bound_and_through_a_proxy() {
    let running = start(&[(STACKS_ENV, &env_stack()), (MAX_CLIENTS_ENV, "1")]).await;
    let mut holder = TcpStream::connect(running.address()).await.unwrap();
    holder
        .write_all(request("/ping", "").as_bytes())
        .await
        .unwrap();
    let mut buffer = [0u8; 1024];
    let n = holder.read(&mut buffer).await.unwrap();
    assert!(buffer[..n].starts_with(b"HTTP/1.1 200"));
    // The slot is held: the next connections are over the bound.
    for (path, extra, status) in [
        ("/ping", "", "200"),
        ("/ping", "X-Forwarded-For: 10.0.0.1\r\n", "200"),
        ("/secretsmanager/get?secretId=x", "", "429"),
    ] {
        let mut stream = TcpStream::connect(running.address()).await.unwrap();
        stream
            .write_all(request(path, extra).as_bytes())
            .await
            .unwrap();
        let answer = until_closed(&mut stream, Duration::from_secs(3))
            .await
            .unwrap_or_else(|open| panic!("{path}: left open after {open}"));
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{path} {extra}: {answer}"
        );
    }
    // Within the bound, a proxy header is still refused for everything but /ping.
    holder
        .write_all(
            request(
                "/secretsmanager/get?secretId=x",
                "X-Forwarded-For: 10.0.0.1\r\n",
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let n = holder.read(&mut buffer).await.unwrap();
    assert!(
        buffer[..n].starts_with(b"HTTP/1.1 400"),
        "{}",
        String::from_utf8_lossy(&buffer[..n])
    );
    running.stop().await;
}

/// The agent's second token header, `X-Vault-Token`, is accepted; a wrong value in it is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vault_token_header_is_accepted() {
    let running = start(&[(STACKS_ENV, &env_stack())]).await;
    for (token, status) in [(TOKEN, "404"), ("wrong", "403")] {
        let mut stream = TcpStream::connect(running.address()).await.unwrap();
        let head = format!(
            "GET /secretsmanager/get?secretId=missing HTTP/1.1\r\nHost: localhost\r\n\
             {VAULT_TOKEN_HEADER}: {token}\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let answer = until_closed(&mut stream, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{token}: {answer}"
        );
    }
    running.stop().await;
}

/// An `env://` stack without a prefix of its own (or under `AWS_`) is refused: it would hand
/// any local process the function's AWS credentials.
#[tokio::test]
async fn an_env_stack_needs_a_prefix_that_is_not_aws() {
    for url in ["env://", "env://?prefix=AWS_"] {
        let err = secret_loader_extension::start(
            &settings(&[(STACKS_ENV, &stacks(&[("plain", url)]))]),
            SocketAddr::from(([127, 0, 0, 1], 0)),
        )
        .await
        .unwrap_err();
        assert!(err.contains("needs a prefix"), "{url}: {err}");
    }
}
