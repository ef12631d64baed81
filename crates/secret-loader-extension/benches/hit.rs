//! A cache hit through the extension over loopback HTTP (one keep-alive connection, the token
//! checked, the JSON answer built and parsed) beside the same hit through the library in
//! process, in one run: criterion's medians, and p50 / p99 of 20,000 sequential reads each.
//!
//! The stack is `env://?memory_ttl=5m` over `PLAIN_BASELINE` (which `scripts/bench` sets): the
//! memory layer answers every read, so both sides measure the hit, not a backend.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use secret_loader::testing::percentile;
use secret_loader::{Config, SecretId, VersionSelector};
use secret_loader_extension::{Settings, TOKEN_HEADER};

const URL: &str = "env://?memory_ttl=5m";
const PATH: &str = "/secretsmanager/get?secretId=plain_baseline";
const TOKEN: &str = "bench-token";

async fn connect(address: SocketAddr) -> SendRequest<Full<Bytes>> {
    let stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    sender
}

async fn hit(sender: &mut SendRequest<Full<Bytes>>) -> String {
    sender.ready().await.unwrap();
    let request = Request::get(PATH)
        .header("host", "localhost")
        .header(TOKEN_HEADER, TOKEN)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
    value["SecretString"].as_str().unwrap().to_owned()
}

fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    (percentile(&samples, 0.50), percentile(&samples, 0.99))
}

fn extension_hit(c: &mut Criterion) {
    if std::env::var_os("PLAIN_BASELINE").is_none() {
        eprintln!("extension_hit: set PLAIN_BASELINE (scripts/bench does)");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let stacks = format!(r#"{{"secretsmanager": "{URL}"}}"#);
    let settings = Settings::from_lookup(|name| match name {
        "AWS_SESSION_TOKEN" => Some(TOKEN.to_owned()),
        "SECRET_LOADER_EXTENSION_STACKS" => Some(stacks.clone()),
        _ => None,
    })
    .unwrap();
    let (running, mut sender, library) = runtime.block_on(async {
        let running =
            secret_loader_extension::start(&settings, SocketAddr::from(([127, 0, 0, 1], 0)))
                .await
                .unwrap();
        let mut sender = connect(running.address()).await;
        hit(&mut sender).await;
        let library = Config::from_url(URL).unwrap().build().await.unwrap();
        (running, sender, library)
    });
    let id = SecretId::new("plain_baseline").unwrap();
    runtime
        .block_on(library.get(&id, &VersionSelector::Current))
        .unwrap();

    // The distribution, both sides in one run.
    let n = 20_000;
    let (http, in_process) = runtime.block_on(async {
        let mut http = Vec::with_capacity(n);
        let mut in_process = Vec::with_capacity(n);
        for _ in 0..n {
            let started = Instant::now();
            black_box(hit(&mut sender).await);
            http.push(started.elapsed());
            let started = Instant::now();
            black_box(library.get(&id, &VersionSelector::Current).await.unwrap());
            in_process.push(started.elapsed());
        }
        (http, in_process)
    });
    let (http_p50, http_p99) = percentiles(http);
    let (lib_p50, lib_p99) = percentiles(in_process);
    println!(
        "extension_hit distribution ({n} reads each, interleaved): over loopback HTTP p50 {http_p50:?} \
         p99 {http_p99:?}; in process p50 {lib_p50:?} p99 {lib_p99:?}; HTTP / in process at p50: {:.0}x",
        http_p50.as_secs_f64() / lib_p50.as_secs_f64()
    );

    let mut group = c.benchmark_group("extension_hit");
    group.bench_function("loopback_http", |b| {
        b.iter(|| runtime.block_on(hit(&mut sender)))
    });
    group.bench_function("library_in_process", |b| {
        b.to_async(&runtime).iter(|| async {
            black_box(library.get(&id, &VersionSelector::Current).await.unwrap())
        })
    });
    group.finish();
    runtime.block_on(running.stop());
}

criterion_group!(benches, extension_hit);
criterion_main!(benches);
