//! A put that a get would refuse is refused first, before anything is written, with the limit
//! in the message: every backend that keeps size limits, against the emulator.

use std::sync::Arc;

use secret_loader::testing as common;
use secret_loader::{ErrorKind, SecretSourceExt, SecretStore, SecretValue};

async fn assert_refused_and_nothing_written(store: &dyn SecretStore, size: usize, limit: &str) {
    let id = common::unique_id("too-large");
    let err = store
        .put(&id, &SecretValue::binary(vec![b'x'; size]))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidFormat, "{store}: {err:?}");
    let message = err.to_string();
    assert!(
        message.contains(&format!("at most {limit} bytes")),
        "{store}: {message}"
    );
    assert!(message.contains("too large to store"), "{message}");
    let missing = store.get_current(&id).await.unwrap_err();
    assert_eq!(
        missing.kind(),
        ErrorKind::NotFound,
        "{store}: nothing was written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn puts_refuse_what_gets_would_refuse() {
    let key = common::kms_key().await;
    let bucket = common::bucket(false).await;
    let root = tempfile::tempdir().unwrap();

    let secretsmanager = common::secretsmanager().await;
    assert_refused_and_nothing_written(&secretsmanager, 65_537, "65536").await;
    // The limit itself is fine.
    let id = common::unique_id("at-limit");
    secretsmanager
        .put(&id, &SecretValue::binary(vec![b'y'; 65_536]))
        .await
        .unwrap();
    assert_eq!(
        secretsmanager.get_current(&id).await.unwrap().value().len(),
        65_536
    );

    let s3_kms = common::s3_kms(&bucket, "limits", &key).await;
    assert_refused_and_nothing_written(&s3_kms, 1024 * 1024, "1048576").await;
    let s3_sse = secret_loader::S3Source::server_side(common::raw_s3().await, &bucket, "sse", None);
    assert_refused_and_nothing_written(&s3_sse, 1024 * 1024 + 1, "1048576").await;
    let file: Arc<dyn SecretStore> = Arc::new(common::file_kms(root.path(), &key).await);
    assert_refused_and_nothing_written(file.as_ref(), 2_000_000, "1048576").await;
}
