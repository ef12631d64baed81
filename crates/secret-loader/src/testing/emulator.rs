//! The AWS emulator on loopback: its address (refusing anything but 127.0.0.1), SDK
//! configurations and raw clients pointing at it, and backends seeded on it.

use aws_config::SdkConfig;

use crate::SecretId;
use crate::aws::AwsOptions;

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
    aws_options(&emulator_endpoint())
}

/// Options pointing explicitly at `endpoint` (a loopback test endpoint), region `us-east-1`.
pub fn aws_options(endpoint: &str) -> AwsOptions {
    assert!(
        endpoint.starts_with("http://127.0.0.1:"),
        "{endpoint} is not on loopback; refusing"
    );
    AwsOptions {
        endpoint_url: Some(endpoint.to_owned()),
        region: Some("us-east-1".into()),
        ..AwsOptions::default()
    }
}

/// The SDK configuration for the emulator.
pub async fn sdk_config() -> SdkConfig {
    crate::aws::load_sdk_config(&emulator_options())
        .await
        .expect("SDK config for the emulator")
}

/// The Secrets Manager backend on the emulator.
#[cfg(feature = "secretsmanager")]
pub async fn secretsmanager() -> crate::SecretsManagerSource {
    crate::SecretsManagerSource::from_sdk_config(&sdk_config().await).await
}

/// A new secret in Secrets Manager on the emulator holding `value`.
#[cfg(feature = "secretsmanager")]
pub async fn secretsmanager_secret(prefix: &str, value: &str) -> SecretId {
    use crate::SecretStore;
    let id = super::unique_id(prefix);
    secretsmanager()
        .await
        .put(&id, &crate::SecretValue::text(value))
        .await
        .expect("seed a secret");
    id
}

/// A raw SDK client on the emulator, for seeding and checking behind the library's back.
#[cfg(feature = "secretsmanager")]
pub async fn raw_secretsmanager() -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(&sdk_config().await)
}

/// The source URL of Secrets Manager on the emulator.
pub fn secretsmanager_url() -> String {
    format!(
        "secretsmanager://?region=us-east-1&endpoint_url={}",
        emulator_endpoint()
    )
}

/// The Parameter Store backend on the emulator (plain names, `ssm://`).
#[cfg(feature = "ssm")]
pub async fn ssm() -> crate::SsmSource {
    crate::SsmSource::from_config(&sdk_config().await, &crate::config::SsmConfig::default())
        .await
        .expect("ssm:// is a valid configuration")
}

/// A raw Parameter Store client on the emulator.
#[cfg(feature = "ssm")]
pub async fn raw_ssm() -> aws_sdk_ssm::Client {
    aws_sdk_ssm::Client::new(&sdk_config().await)
}

/// `env+kms://` on the emulator over a fresh [map environment](crate::env::Environment::map),
/// sealing with `key` and decrypting with `context`, as a store that seals like the CLI's
/// `seal` and sets the variable as a deployment would.
#[cfg(feature = "env")]
pub async fn env_kms(key: &str, context: crate::config::ContextOption) -> super::SealingStore {
    let config = crate::config::EnvKmsConfig {
        kms_key_id: Some(key.to_owned()),
        context,
        ..Default::default()
    };
    super::SealingStore::new(
        crate::EnvKmsSource::from_config(&sdk_config().await, &config)
            .await
            .with_environment(crate::env::Environment::map()),
    )
}

/// A raw KMS client on the emulator.
#[cfg(feature = "kms")]
pub async fn raw_kms() -> aws_sdk_kms::Client {
    aws_sdk_kms::Client::new(&sdk_config().await)
}

/// A raw S3 client on the emulator.
#[cfg(feature = "s3")]
pub async fn raw_s3() -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::new(&sdk_config().await)
}

/// A new symmetric KMS key on the emulator; its ARN.
#[cfg(feature = "kms")]
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
#[cfg(feature = "kms")]
pub async fn kms_alias(key_arn: &str) -> String {
    let alias = format!("alias/{}", super::unique("test"));
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
#[cfg(feature = "s3")]
pub async fn bucket(versioned: bool) -> String {
    use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
    let name = super::unique("sl").to_lowercase();
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
#[cfg(feature = "kms")]
pub async fn envelope(key: &str) -> std::sync::Arc<crate::Envelope> {
    let envelope = crate::Envelope::kms(raw_kms().await, key, crate::AlgorithmSuite::Committing)
        .await
        .unwrap();
    std::sync::Arc::new(envelope)
}

/// `s3+kms` over `bucket`/`prefix` with `key`.
#[cfg(feature = "s3")]
pub async fn s3_kms(bucket: &str, prefix: &str, key: &str) -> crate::S3Source {
    crate::S3Source::envelope(raw_s3().await, bucket, prefix, envelope(key).await)
}

/// `file+kms` over `root` with `key`.
#[cfg(feature = "file")]
pub async fn file_kms(root: &std::path::Path, key: &str) -> crate::FileKmsSource {
    crate::FileKmsSource::new(root, envelope(key).await).unwrap()
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
    run_encryption_cli_with(mode, input, output, key, id, backend, &[]);
}

/// [`run_encryption_cli`] with more arguments (`--frame-length 0`, `--algorithm ...`).
pub fn run_encryption_cli_with(
    mode: &str,
    input: &std::path::Path,
    output: &std::path::Path,
    key: &str,
    id: &SecretId,
    backend: &str,
    extra: &[&str],
) {
    let run = std::process::Command::new(encryption_cli())
        .args(extra)
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
    let closed = super::free_port();
    let options = AwsOptions {
        endpoint_url: Some(format!("http://127.0.0.1:{closed}")),
        region: Some("us-east-1".into()),
        operation_timeout: std::time::Duration::from_secs(5),
        ..AwsOptions::default()
    };
    crate::aws::load_sdk_config(&options).await.unwrap()
}

/// A second emulator on its own loopback port (the `moto_server` that `scripts/test`
/// installed, named by `MOTO_SERVER`), for tests of two sources that differ only in endpoint.
/// Stopped when dropped.
pub struct SecondEmulator {
    child: std::process::Child,
    endpoint: String,
}

impl SecondEmulator {
    /// Starts it and waits (at most 60 s) until it answers.
    pub fn start() -> Self {
        let server = std::env::var_os("MOTO_SERVER")
            .expect("MOTO_SERVER is not set: run the tests with scripts/test");
        let port = super::free_port();
        let child = std::process::Command::new(server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start a second moto_server");
        let endpoint = format!("http://127.0.0.1:{port}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the second emulator did not answer"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Self { child, endpoint }
    }

    /// Its endpoint, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// An SDK configuration pointing at it.
    pub async fn sdk_config(&self) -> SdkConfig {
        crate::aws::load_sdk_config(&aws_options(&self.endpoint))
            .await
            .unwrap()
    }
}

impl Drop for SecondEmulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
