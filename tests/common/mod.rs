//! Shared test setup: the emulator's address (loopback only), unique names, SDK clients.
#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_config::SdkConfig;
use secret_loader::config::AwsOptions;
use secret_loader::{SecretId, SecretsManagerSource};

/// The emulator's endpoint, from `AWS_ENDPOINT_URL` as exported by `scripts/test`.
/// Refuses anything but 127.0.0.1, so no test can reach real AWS or the internet.
pub fn emulator_endpoint() -> String {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect(
        "AWS_ENDPOINT_URL is not set: run the tests with scripts/test, which starts the emulator",
    );
    assert!(
        endpoint.starts_with("http://127.0.0.1:"),
        "AWS_ENDPOINT_URL={endpoint} is not the loopback emulator; refusing to run"
    );
    endpoint
}

/// Options pointing explicitly at the emulator (never at AWS, whatever the environment says).
pub fn emulator_options() -> AwsOptions {
    let mut options = AwsOptions::default();
    options.endpoint_url = Some(emulator_endpoint());
    options.region = Some("us-east-1".into());
    options
}

/// The SDK configuration for the emulator.
pub async fn sdk_config() -> SdkConfig {
    secret_loader::aws::load_sdk_config(&emulator_options())
        .await
        .expect("SDK config for the emulator")
}

/// The Secrets Manager backend on the emulator.
pub async fn secretsmanager() -> SecretsManagerSource {
    SecretsManagerSource::from_sdk_config(&sdk_config().await)
}

/// A new secret in Secrets Manager on the emulator holding `value`.
pub async fn secretsmanager_secret(prefix: &str, value: &str) -> SecretId {
    use secret_loader::SecretStore;
    let id = unique_id(prefix);
    secretsmanager()
        .await
        .put(&id, &secret_loader::SecretValue::text(value))
        .await
        .expect("seed a secret");
    id
}

/// A raw SDK client on the emulator, for seeding and checking behind the library's back.
pub async fn raw_secretsmanager() -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(&sdk_config().await)
}

/// A name no other test (in this or a parallel process) uses.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{nanos:x}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A unique, valid secret id under `test/`.
pub fn unique_id(prefix: &str) -> SecretId {
    SecretId::new(format!("test/{}", unique(prefix))).unwrap()
}

/// The source URL of Secrets Manager on the emulator.
pub fn secretsmanager_url() -> String {
    format!(
        "secretsmanager://?region=us-east-1&endpoint_url={}",
        emulator_endpoint()
    )
}

/// A raw KMS client on the emulator.
pub async fn raw_kms() -> aws_sdk_kms::Client {
    aws_sdk_kms::Client::new(&sdk_config().await)
}

/// A raw S3 client on the emulator.
pub async fn raw_s3() -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::new(&sdk_config().await)
}

/// A new symmetric KMS key on the emulator; its ARN.
pub async fn kms_key() -> String {
    raw_kms()
        .await
        .create_key()
        .description("secret-loader test key")
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .arn
        .unwrap()
}

/// A new alias (`alias/test-...`) for `key_arn`.
pub async fn kms_alias(key_arn: &str) -> String {
    let alias = format!("alias/{}", unique("test"));
    raw_kms()
        .await
        .create_alias()
        .alias_name(&alias)
        .target_key_id(key_arn)
        .send()
        .await
        .unwrap();
    alias
}

/// A new bucket, with versioning on when asked.
pub async fn bucket(versioned: bool) -> String {
    use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
    let name = unique("sl").to_lowercase();
    let s3 = raw_s3().await;
    s3.create_bucket().bucket(&name).send().await.unwrap();
    if versioned {
        s3.put_bucket_versioning()
            .bucket(&name)
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
    name
}

/// Envelopes under `key` (ARN or alias) on the emulator's KMS.
pub async fn envelope(key: &str) -> std::sync::Arc<secret_loader::Envelope> {
    let envelope = secret_loader::Envelope::kms(
        raw_kms().await,
        key,
        secret_loader::AlgorithmSuite::Committing,
    )
    .await
    .unwrap();
    std::sync::Arc::new(envelope)
}

/// `s3+kms` over `bucket`/`prefix` with `key`.
pub async fn s3_kms(bucket: &str, prefix: &str, key: &str) -> secret_loader::S3Source {
    secret_loader::S3Source::envelope(raw_s3().await, bucket, prefix, envelope(key).await)
}

/// `file+kms` over `root` with `key`.
pub async fn file_kms(root: &std::path::Path, key: &str) -> secret_loader::FileKmsSource {
    secret_loader::FileKmsSource::new(root, envelope(key).await).unwrap()
}

/// The official AWS Encryption SDK CLI, installed by `scripts/test` beside the emulator.
pub fn encryption_cli() -> std::path::PathBuf {
    let path = std::env::var_os("AWS_ENCRYPTION_CLI")
        .expect("AWS_ENCRYPTION_CLI is not set: run the tests with scripts/test");
    let path = std::path::PathBuf::from(path);
    assert!(path.exists(), "{} is missing", path.display());
    path
}

/// Runs the official `aws-encryption-cli` (`mode` is `--encrypt` or `--decrypt`) from `input`
/// to `output` with `key` and our encryption context for `id` in `backend`, and asserts it
/// succeeded. (A context mismatch on decrypt exits 0 without output: check the output.)
pub fn run_encryption_cli(
    mode: &str,
    input: &std::path::Path,
    output: &std::path::Path,
    key: &str,
    id: &SecretId,
    backend: &str,
) {
    let run = std::process::Command::new(encryption_cli())
        .args([mode, "--input"])
        .arg(input)
        .arg("--output")
        .arg(output)
        .args(["--wrapping-keys", &format!("key={key}")])
        .args([
            "--encryption-context",
            &format!("secret-loader:id={id}"),
            &format!("secret-loader:backend={backend}"),
        ])
        .args([
            "--commitment-policy",
            "require-encrypt-require-decrypt",
            "-S",
        ])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}

/// An SDK configuration pointing at a loopback port where nothing listens (bound, then
/// released), with a 5 s deadline per call: the "emulator down" case.
pub async fn down_sdk_config() -> SdkConfig {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut options = AwsOptions::default();
    options.endpoint_url = Some(format!("http://127.0.0.1:{closed}"));
    options.region = Some("us-east-1".into());
    options.operation_timeout = std::time::Duration::from_secs(5);
    secret_loader::aws::load_sdk_config(&options).await.unwrap()
}

/// The multi-threaded runtime benchmarks run on (the Encryption SDK wants one).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}
