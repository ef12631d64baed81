//! Every backend's read path against the emulator, each beside the raw SDK calls it is made of,
//! in one run: Secrets Manager `get` vs a raw `GetSecretValue`; `s3+kms` `get` vs a raw
//! `GetObject` + a raw KMS `Decrypt` in series; Parameter Store `get` vs a raw `GetParameter`
//! with decryption; `env+kms` `get` vs a raw KMS `Decrypt` of the same variable; `env` (the
//! plaintext baseline) vs `std::env::var`; `s3+sse-kms` and `file+kms` `get`. Plus the local
//! work a read adds (id validation, JSON field extraction). Run with `scripts/bench`,
//! which starts the emulator.
//!
//! Against moto every request opens a new TCP connection (moto answers `Connection: close`),
//! so these are emulator-on-loopback numbers, not AWS numbers.

use secret_loader::testing as common;

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use aws_sdk_kms::primitives::Blob;
use criterion::{Criterion, criterion_group, criterion_main};
use secret_loader::{
    Config, S3Source, SecretId, SecretSource, SecretStore, SecretValue, SecretsManagerSource,
    VersionSelector,
};

const VALUE: &str = r#"{"access_key":"AKIAIOSFODNN7EXAMPLE","secret_key":"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}"#;

fn secretsmanager(c: &mut Criterion) {
    let runtime = common::runtime();
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

fn ssm(c: &mut Criterion) {
    let runtime = common::runtime();
    let (client, id, name) = runtime.block_on(async {
        let client = common::raw_ssm().await;
        let id = common::unique_id("bench");
        let ours = secret_loader::SsmSource::new(client.clone());
        ours.put(&id, &SecretValue::text(VALUE)).await.unwrap();
        let name = ours.parameter_name(&id).unwrap();
        (client, id, name)
    });
    let ours = secret_loader::SsmSource::new(client.clone());

    let mut group = c.benchmark_group("ssm_get");
    group.measurement_time(Duration::from_secs(15));
    group.bench_function("raw_sdk_get_parameter", |b| {
        b.to_async(&runtime).iter(|| async {
            let out = client
                .get_parameter()
                .name(&name)
                .with_decryption(true)
                .send()
                .await
                .unwrap();
            black_box(out.parameter)
        })
    });
    group.bench_function("secret_loader_get", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(ours.get(&id, &VersionSelector::Current).await.unwrap()) })
    });
    group.finish();
}

fn environment(c: &mut Criterion) {
    use secret_loader::config::ContextOption;
    let runtime = common::runtime();
    let (store, kms, id, sealed) = runtime.block_on(async {
        let key = common::kms_key().await;
        let store = common::env_kms(&key, ContextOption::None).await;
        let id = common::unique_id("bench");
        store.put(&id, &SecretValue::text(VALUE)).await.unwrap();
        let sealed = store
            .source()
            .seal(&id, &SecretValue::text(VALUE), None)
            .await
            .unwrap();
        (store, common::raw_kms().await, id, sealed)
    });
    let source = store.source().clone();

    let mut group = c.benchmark_group("env_kms_get");
    group.measurement_time(Duration::from_secs(15));
    // The least a read can do: decode the variable and one KMS Decrypt.
    group.bench_function("raw_base64_then_kms_decrypt", |b| {
        b.to_async(&runtime).iter(|| async {
            let blob = aws_smithy_types::base64::decode(&sealed).unwrap();
            let out = kms
                .decrypt()
                .ciphertext_blob(Blob::new(blob))
                .send()
                .await
                .unwrap();
            black_box(out.plaintext)
        })
    });
    group.bench_function("secret_loader_get", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(source.get(&id, &VersionSelector::Current).await.unwrap()) })
    });
    group.finish();

    // The plaintext baseline over this process's environment: `scripts/bench` sets the
    // variable (a placeholder, not a secret).
    let plain_id = SecretId::new("plain_baseline").unwrap();
    let plain_name = secret_loader::env::variable_name("", &plain_id);
    let plain = runtime
        .block_on(Config::from_url("env://").unwrap().build())
        .unwrap();
    let mut group = c.benchmark_group("env_get");
    if std::env::var_os(&plain_name).is_none() {
        eprintln!("env_get: set {plain_name} to run the plaintext baseline (scripts/bench does)");
        group.finish();
        return;
    }
    group.bench_function("raw_std_env_var", |b| {
        b.iter(|| black_box(std::env::var(&plain_name).unwrap()))
    });
    group.bench_function("secret_loader_get", |b| {
        b.to_async(&runtime).iter(|| async {
            black_box(
                plain
                    .get(&plain_id, &VersionSelector::Current)
                    .await
                    .unwrap(),
            )
        })
    });
    group.finish();
}

fn s3_and_file(c: &mut Criterion) {
    let runtime = common::runtime();
    let root = tempfile::tempdir().unwrap();
    let (s3, kms, bucket, key, id, s3_kms, sse, file, kms_blob) = runtime.block_on(async {
        let (s3, kms) = (common::raw_s3().await, common::raw_kms().await);
        let (bucket, key) = (common::bucket(false).await, common::kms_key().await);
        let id = common::unique_id("bench");
        let envelope = common::envelope(&key).await;
        let s3_kms = S3Source::envelope(s3.clone(), bucket.clone(), "kms", envelope.clone());
        let sse = S3Source::server_side(s3.clone(), bucket.clone(), "sse", Some(key.clone()));
        let file = secret_loader::FileKmsSource::new(root.path(), envelope).unwrap();
        for store in [&s3_kms as &dyn SecretStore, &sse, &file] {
            store.put(&id, &SecretValue::text(VALUE)).await.unwrap();
        }
        // The least any envelope read must do: the object, and one KMS Decrypt of a data key
        // bound to the same encryption context.
        let context = HashMap::from([
            ("secret-loader:id".to_owned(), id.to_string()),
            ("secret-loader:backend".to_owned(), "s3+kms".to_owned()),
        ]);
        let kms_blob = kms
            .encrypt()
            .key_id(&key)
            .plaintext(Blob::new(vec![1u8; 32]))
            .set_encryption_context(Some(context))
            .send()
            .await
            .unwrap()
            .ciphertext_blob
            .unwrap();
        (s3, kms, bucket, key, id, s3_kms, sse, file, kms_blob)
    });
    let object_key = format!("kms/{id}");
    let context = HashMap::from([
        ("secret-loader:id".to_owned(), id.to_string()),
        ("secret-loader:backend".to_owned(), "s3+kms".to_owned()),
    ]);

    let mut group = c.benchmark_group("s3_kms_get");
    group.measurement_time(Duration::from_secs(15));
    group.bench_function("raw_get_object_then_kms_decrypt", |b| {
        b.to_async(&runtime).iter(|| async {
            let object = s3
                .get_object()
                .bucket(&bucket)
                .key(&object_key)
                .send()
                .await
                .unwrap();
            let body = object.body.collect().await.unwrap().to_vec();
            let plain = kms
                .decrypt()
                .key_id(&key)
                .ciphertext_blob(kms_blob.clone())
                .set_encryption_context(Some(context.clone()))
                .send()
                .await
                .unwrap();
            black_box((body, plain.plaintext))
        })
    });
    group.bench_function("secret_loader_get", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(s3_kms.get(&id, &VersionSelector::Current).await.unwrap()) })
    });
    group.finish();

    let mut group = c.benchmark_group("other_backends_get");
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("s3_sse_kms", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(sse.get(&id, &VersionSelector::Current).await.unwrap()) })
    });
    group.bench_function("file_kms", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(file.get(&id, &VersionSelector::Current).await.unwrap()) })
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

criterion_group!(
    benches,
    local,
    secretsmanager,
    ssm,
    environment,
    s3_and_file
);
criterion_main!(benches);
