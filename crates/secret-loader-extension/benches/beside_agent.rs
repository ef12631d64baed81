//! `secret-loader-extension` as an agent beside AWS's Secrets Manager Agent
//! (`aws_secretsmanager_agent`, named by `SECRET_LOADER_AGENT`; `scripts/bench` installs it
//! pinned), in one run, against the same emulator and the same cached secret, rounds
//! interleaved (ours, theirs, ours, theirs) so both see the same machine:
//!
//! * start-to-ready: process start until `/ping` answers;
//! * the first (cold) request: a cache miss, one `GetSecretValue`;
//! * cache hits on 1 keep-alive connection and on 16 at once: p50, p99, requests per second;
//! * RSS after the hits, from `/proc`;
//! * binary size, as built and stripped.
//!
//! `scripts/bench` builds ours as the layer is built (fat LTO, one codegen unit); the agent is
//! as `cargo install` builds it, its crate's release profile, as its README builds it.
//!
//! The load comes from this process (hyper clients on a two-worker runtime) on the same two
//! cores as the server: absolute numbers are this machine's; the ratios are the point.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use secret_loader::testing::percentile;

const TOKEN: &str = "bench-token";
const SEQUENTIAL: usize = 5_000;
const CONNECTIONS: usize = 16;
const CONCURRENT: usize = 10_000;
const ROUNDS: usize = 5;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Server {
    Ours,
    Agent,
}

impl Server {
    fn name(self) -> &'static str {
        match self {
            Self::Ours => "secret-loader-extension (serve)",
            Self::Agent => "aws_secretsmanager_agent 2.1.0",
        }
    }
}

fn agent_binary() -> Option<PathBuf> {
    std::env::var_os("SECRET_LOADER_AGENT").map(PathBuf::from)
}

fn ours_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_secret-loader-extension"))
}

/// Starts `server` on a free port; the child and its address, and the scratch directory.
fn spawn(server: Server, dir: &Path) -> (Child, SocketAddr) {
    let port = secret_loader::testing::free_port();
    let child = match server {
        Server::Ours => Command::new(ours_binary())
            .env("AWS_TOKEN", TOKEN)
            .env("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", port.to_string())
            .env("PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", "NONE")
            .env_remove("AWS_LAMBDA_RUNTIME_API")
            .env_remove("SECRET_LOADER_EXTENSION_STACKS")
            .env_remove("SECRET_LOADER_SOURCE")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
        Server::Agent => {
            let config = dir.join("agent.toml");
            std::fs::write(
                &config,
                format!(
                    "http_port = {port}\nttl_seconds = 300\ncache_size = 1000\n\
                     log_level = \"NONE\"\nlog_to_file = false\nvalidate_credentials = false\n\
                     region = \"us-east-1\"\n"
                ),
            )
            .unwrap();
            Command::new(agent_binary().unwrap())
                .arg("--config")
                .arg(&config)
                .current_dir(dir)
                .env("AWS_TOKEN", TOKEN)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        }
    };
    (child, SocketAddr::from(([127, 0, 0, 1], port)))
}

async fn connect(address: SocketAddr) -> Option<SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(address).await.ok()?;
    stream.set_nodelay(true).ok()?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(connection);
    Some(sender)
}

async fn request(sender: &mut SendRequest<Full<Bytes>>, path: &str) -> u16 {
    sender.ready().await.unwrap();
    let request = Request::get(path)
        .header("host", "localhost")
        .header("X-Aws-Parameters-Secrets-Token", TOKEN)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let _ = response.into_body().collect().await.unwrap();
    status
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[derive(Default, Debug)]
struct Round {
    ready: Duration,
    cold: Duration,
    one: (Duration, Duration, f64),
    sixteen: (Duration, Duration, f64),
    rss_kib: u64,
}

async fn round(server: Server, path: &str) -> Round {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let (mut child, address) = spawn(server, dir.path());
    let mut probe = loop {
        if let Some(mut sender) = connect(address).await
            && request(&mut sender, "/ping").await == 200
        {
            break sender;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{server:?} never ready"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let ready = started.elapsed();
    let sent = Instant::now();
    assert_eq!(
        request(&mut probe, path).await,
        200,
        "{server:?}: cold read"
    );
    let cold = sent.elapsed();

    let mut samples = Vec::with_capacity(SEQUENTIAL);
    let began = Instant::now();
    for _ in 0..SEQUENTIAL {
        let sent = Instant::now();
        assert_eq!(request(&mut probe, path).await, 200);
        samples.push(sent.elapsed());
    }
    let one_rate = SEQUENTIAL as f64 / began.elapsed().as_secs_f64();
    samples.sort();
    let one = (
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        one_rate,
    );

    let mut clients = Vec::new();
    for _ in 0..CONNECTIONS {
        let mut sender = connect(address).await.unwrap();
        assert_eq!(request(&mut sender, path).await, 200);
        clients.push(sender);
    }
    let began = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut sender| {
            let path = path.to_owned();
            tokio::spawn(async move {
                let mut mine = Vec::with_capacity(CONCURRENT / CONNECTIONS);
                for _ in 0..CONCURRENT / CONNECTIONS {
                    let sent = Instant::now();
                    assert_eq!(request(&mut sender, &path).await, 200);
                    mine.push(sent.elapsed());
                }
                mine
            })
        })
        .collect();
    let mut samples = Vec::with_capacity(CONCURRENT);
    for task in tasks {
        samples.extend(task.await.unwrap());
    }
    let sixteen_rate = samples.len() as f64 / began.elapsed().as_secs_f64();
    samples.sort();
    let sixteen = (
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        sixteen_rate,
    );
    let rss_kib = rss_kib(child.id());
    let _ = child.kill();
    let _ = child.wait();
    Round {
        ready,
        cold,
        one,
        sixteen,
        rss_kib,
    }
}

/// Size as built, and stripped (a stripped copy made with `strip`, when it is there).
fn sizes(binary: &Path) -> (u64, Option<u64>) {
    let built = std::fs::metadata(binary).map(|m| m.len()).unwrap_or(0);
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("stripped");
    let stripped = Command::new("strip")
        .arg("-o")
        .arg(&copy)
        .arg(binary)
        .status()
        .ok()
        .filter(|s| s.success())
        .and_then(|_| std::fs::metadata(&copy).ok())
        .map(|m| m.len());
    (built, stripped)
}

fn main() {
    // `cargo bench` passes criterion-style flags; this harness takes none.
    let Some(agent) = agent_binary() else {
        eprintln!("beside_agent: set SECRET_LOADER_AGENT (scripts/bench installs the agent)");
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let id = runtime.block_on(async {
        let id = secret_loader::testing::unique_id("beside-agent");
        secret_loader::testing::raw_secretsmanager()
            .await
            .create_secret()
            .name(id.as_str())
            .secret_string(r#"{"access_key":"AKIABENCH","secret_key":"bench/secret"}"#)
            .send()
            .await
            .unwrap();
        id
    });
    let path = format!("/secretsmanager/get?secretId={id}");
    let mut results: Vec<(Server, Round)> = Vec::new();
    for _ in 0..ROUNDS {
        for server in [Server::Ours, Server::Agent] {
            let round = runtime.block_on(round(server, &path));
            results.push((server, round));
        }
    }
    let median = |server: Server, pick: &dyn Fn(&Round) -> f64| {
        let mut values: Vec<f64> = results
            .iter()
            .filter(|(s, _)| *s == server)
            .map(|(_, r)| pick(r))
            .collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    type Pick = Box<dyn Fn(&Round) -> f64>;
    let rows: Vec<(&str, Pick, &str, bool)> = vec![
        (
            "start to ready",
            Box::new(move |r: &Round| ms(r.ready)),
            "ms",
            false,
        ),
        (
            "first (cold) request",
            Box::new(move |r: &Round| ms(r.cold)),
            "ms",
            false,
        ),
        (
            "hit p50, 1 connection",
            Box::new(move |r: &Round| us(r.one.0)),
            "µs",
            false,
        ),
        (
            "hit p99, 1 connection",
            Box::new(move |r: &Round| us(r.one.1)),
            "µs",
            false,
        ),
        (
            "requests/s, 1 connection",
            Box::new(|r: &Round| r.one.2),
            "/s",
            true,
        ),
        (
            "hit p50, 16 connections",
            Box::new(move |r: &Round| us(r.sixteen.0)),
            "µs",
            false,
        ),
        (
            "hit p99, 16 connections",
            Box::new(move |r: &Round| us(r.sixteen.1)),
            "µs",
            false,
        ),
        (
            "requests/s, 16 connections",
            Box::new(|r: &Round| r.sixteen.2),
            "/s",
            true,
        ),
        (
            "RSS after the hits",
            Box::new(|r: &Round| r.rss_kib as f64),
            "KiB",
            false,
        ),
    ];
    println!(
        "\n| ({ROUNDS} rounds each, interleaved; medians) | {} | {} | ours / agent |",
        Server::Ours.name(),
        Server::Agent.name()
    );
    println!("| --- | --- | --- | --- |");
    for (name, pick, unit, higher_is_better) in &rows {
        let (a, b) = (
            median(Server::Ours, pick.as_ref()),
            median(Server::Agent, pick.as_ref()),
        );
        // Within 3 %: a tie on a shared, noisy machine.
        let lead = if (a / b - 1.0).abs() < 0.03 {
            "tie"
        } else if (a > b) == *higher_is_better {
            "ahead"
        } else {
            "behind"
        };
        println!(
            "| {name} | {a:.1} {unit} | {b:.1} {unit} | {:.2}x ({lead}) |",
            a / b
        );
    }
    let (ours_built, ours_stripped) = sizes(&ours_binary());
    let (agent_built, agent_stripped) = sizes(&agent);
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "| binary as built | {:.1} MiB | {:.1} MiB | {:.2}x |",
        mib(ours_built),
        mib(agent_built),
        ours_built as f64 / agent_built as f64
    );
    if let (Some(a), Some(b)) = (ours_stripped, agent_stripped) {
        println!(
            "| binary stripped | {:.1} MiB | {:.1} MiB | {:.2}x |",
            mib(a),
            mib(b),
            a as f64 / b as f64
        );
    }
}
