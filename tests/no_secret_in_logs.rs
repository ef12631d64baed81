//! Secret values never reach `tracing` output. One test in a binary of its own, because it
//! installs the process-wide subscriber.

use secret_loader::testing as common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use secret_loader::{SecretSourceExt, SecretStore, SecretValue};

use common::{secretsmanager, unique_id};

/// A `tracing` writer that keeps everything in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every log line at every level, the SDK's included, while secrets are written, read
/// singly and in a batch, and while errors are made: the value appears in none.
#[tokio::test]
async fn secret_values_never_reach_tracing_output() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // The global default, in a test binary of its own: a scoped (`set_default`) subscriber
    // raced with the callsite-interest cache while other tests ran in parallel threads and
    // missed events now and then.
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let canary = "TRACING-CANARY-91d2e4";
    let env_kms = common::env_kms(
        &common::kms_key().await,
        secret_loader::config::ContextOption::Auto,
    )
    .await;
    let stores: [&dyn SecretStore; 3] = [&secretsmanager().await, &common::ssm().await, &env_kms];
    for source in stores {
        let id = unique_id("trace");
        let value = format!(r#"{{"token":"{canary}"}}"#);
        source
            .put(&id, &SecretValue::text(value.clone()))
            .await
            .unwrap();
        source.put(&id, &SecretValue::text(value)).await.unwrap();
        let secret = source.get_current(&id).await.unwrap();
        tracing::info!(?secret, "a caller logging the secret it got");
        let _ = source.get_field(&id, "missing").await.unwrap_err();
        let _ = source.get_many(&[id.clone(), unique_id("absent")]).await;
    }

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    // The capture works: our debug line and the SDK's trace lines are in it.
    assert!(logs.contains("read secret"), "no library log captured");
    assert!(
        logs.contains("read parameter"),
        "no Parameter Store log captured"
    );
    assert!(
        logs.contains("PutParameter"),
        "no Parameter Store SDK log captured"
    );
    assert!(logs.contains("Decrypt"), "no KMS log captured");
    assert!(logs.contains("aws_smithy_runtime"), "no SDK log captured");
    assert!(
        !logs.contains(canary),
        "secret value found in tracing output"
    );
}
