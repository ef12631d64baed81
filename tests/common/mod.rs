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
