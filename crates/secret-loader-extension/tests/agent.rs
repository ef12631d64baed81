//! The real binary outside Lambda (the local agent) under load: 10,000 requests over 16
//! keep-alive connections, nothing dropped, memory bounded. The numbers are printed (run with
//! `--nocapture` to see them); the bounds asserted are loose on purpose (a shared machine).

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Client, stacks};
use secret_loader::testing::{FakeHttp, write_response};

const CONNECTIONS: usize = 16;
const REQUESTS: usize = 10_000;

fn rss_kib(child: &Child) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_requests_over_sixteen_connections_drop_nothing_and_memory_stays_bounded() {
    let fake = FakeHttp::start(|_, stream| {
        let body = common::get_secret_value_body("app/load", r#"{"k":"v"}"#);
        write_response(stream, 200, &[], body.as_bytes());
    });
    let port = secret_loader::testing::free_port();
    let url = format!(
        "secretsmanager://?region=us-east-1&endpoint_url={}",
        fake.endpoint()
    );
    let agent = Agent(
        Command::new(env!("CARGO_BIN_EXE_secret-loader-extension"))
            .env("AWS_SESSION_TOKEN", common::TOKEN)
            .env("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", port.to_string())
            .env("PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", "WARN")
            .env(
                "SECRET_LOADER_EXTENSION_STACKS",
                stacks(&[("secretsmanager", &url)]),
            )
            .env("SECRET_LOADER_EXTENSION_PREFETCH", "app/load")
            .env_remove("AWS_LAMBDA_RUNTIME_API")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let mut up = false;
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(address).await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(up, "the agent did not listen");
    // Warm: the prefetch filled the cache; one request on each connection before measuring.
    let mut clients = Vec::new();
    for _ in 0..CONNECTIONS {
        let mut client = Client::connect(address).await;
        assert_eq!(
            client
                .get("/secretsmanager/get?secretId=app/load")
                .await
                .status,
            200
        );
        clients.push(client);
    }
    let rss_before = rss_kib(&agent.0);
    let started = Instant::now();
    let tasks = clients.into_iter().map(|mut client| {
        tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(REQUESTS / CONNECTIONS);
            let mut failed = 0;
            for _ in 0..REQUESTS / CONNECTIONS {
                let sent = Instant::now();
                let answer = client.get("/secretsmanager/get?secretId=app/load").await;
                latencies.push(sent.elapsed());
                if answer.status != 200 || !answer.body.contains("SecretString") {
                    failed += 1;
                }
            }
            (latencies, failed)
        })
    });
    let mut latencies = Vec::new();
    let mut failed = 0;
    for task in futures_util::future::join_all(tasks).await {
        let (mine, not_ok) = task.unwrap();
        latencies.extend(mine);
        failed += not_ok;
    }
    let took = started.elapsed();
    let rss_after = rss_kib(&agent.0);
    latencies.sort();
    let at = |p: f64| {
        latencies[((p * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len()) - 1]
    };
    println!(
        "agent: {} requests over {CONNECTIONS} connections in {took:?} ({:.0}/s); \
         latency p50 {:?}, p99 {:?}; RSS {rss_before} KiB before, {rss_after} KiB after; \
         backend calls {}",
        latencies.len(),
        latencies.len() as f64 / took.as_secs_f64(),
        at(0.50),
        at(0.99),
        fake.requests()
    );
    assert_eq!(latencies.len(), REQUESTS);
    assert_eq!(failed, 0, "every request answered 200 with the secret");
    assert_eq!(fake.requests(), 1, "the prefetch, then cache hits only");
    assert!(
        rss_after < rss_before + 16 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    assert!(rss_after < 64 * 1024, "RSS {rss_after} KiB");
}
