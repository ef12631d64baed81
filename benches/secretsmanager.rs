//! Secrets Manager on the emulator: our `get` against a raw SDK `get_secret_value` on the same
//! client and secret, side by side in one run; plus the local work a read adds (id validation,
//! JSON field extraction). Run with `scripts/bench`, which starts the emulator.
//!
//! Against moto every request opens a new TCP connection (moto answers `Connection: close`),
//! so these are emulator-on-loopback numbers, not AWS numbers.

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use secret_loader::{
    SecretId, SecretSource, SecretStore, SecretValue, SecretsManagerSource, VersionSelector,
};

const VALUE: &str = r#"{"access_key":"AKIAIOSFODNN7EXAMPLE","secret_key":"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}"#;

fn emulator(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (client, id) = runtime.block_on(async {
        let client = common::raw_secretsmanager().await;
        let id = common::unique_id("bench");
        SecretsManagerSource::new(client.clone())
            .put(&id, &SecretValue::text(VALUE))
            .await
            .unwrap();
        (client, id)
    });
    let ours = SecretsManagerSource::new(client.clone());

    let mut group = c.benchmark_group("secretsmanager_get");
    group.measurement_time(Duration::from_secs(15));
    group.bench_function("raw_sdk_get_secret_value", |b| {
        b.to_async(&runtime).iter(|| async {
            let mut out = client
                .get_secret_value()
                .secret_id(id.as_str())
                .send()
                .await
                .unwrap();
            black_box(out.secret_string.take())
        })
    });
    group.bench_function("secret_loader_get", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(ours.get(&id, &VersionSelector::Current).await.unwrap()) })
    });
    group.finish();
}

fn local(c: &mut Criterion) {
    let mut group = c.benchmark_group("local");
    group.bench_function("secret_id_new_name", |b| {
        b.iter(|| SecretId::new(black_box("prod/app/payments-api")).unwrap())
    });
    group.bench_function("secret_id_new_arn", |b| {
        b.iter(|| {
            SecretId::new(black_box(
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/app/payments-api-AbCdEf",
            ))
            .unwrap()
        })
    });
    let secret = secret_loader::Secret::new(
        SecretId::new("bench").unwrap(),
        "bench",
        SecretValue::text(VALUE),
    );
    group.bench_function("json_field", |b| {
        b.iter(|| secret.json_field(black_box("secret_key")).unwrap())
    });
    group.finish();
}

criterion_group!(benches, local, emulator);
criterion_main!(benches);
