//! Secrets Manager through the real SDK against the emulator on loopback.

use secret_loader::testing as common;
use secret_loader::testing::behaviour;

use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::primitives::Blob;
use secret_loader::secrecy::ExposeSecret;
use secret_loader::{
    Config, ErrorKind, SecretId, SecretSource, SecretSourceExt, SecretStore, SecretValue,
    SecretsManagerSource, VersionSelector,
};

use common::{raw_secretsmanager, secretsmanager, unique_id};

#[tokio::test]
async fn behaviour_suite_passes_on_secretsmanager() {
    let source = secretsmanager().await;
    let flags = behaviour::Flags {
        staging_labels: true,
        keeps_kind: true,
        text_only: false,
    };
    behaviour::run_all(&source, &source, flags).await;
}

/// The seed's flow: a JSON secret created with the SDK, both fields read back.
#[tokio::test]
async fn json_secret_created_by_the_sdk_yields_both_fields() {
    let raw = raw_secretsmanager().await;
    let id = unique_id("seed");
    raw.create_secret()
        .name(id.as_str())
        .secret_string(
            r#"{"access_key": "AKIAIOSFODNN7EXAMPLE", "secret_key": "wJalrXUtnFEMI/K7MDENG"}"#,
        )
        .send()
        .await
        .unwrap();

    let source = secretsmanager().await;
    let access = source.get_field(&id, "access_key").await.unwrap();
    let secret = source.get_field(&id, "secret_key").await.unwrap();
    assert_eq!(access.expose_secret(), "AKIAIOSFODNN7EXAMPLE");
    assert_eq!(secret.expose_secret(), "wJalrXUtnFEMI/K7MDENG");
}

#[tokio::test]
async fn binary_secret_by_name_and_by_arn() {
    let raw = raw_secretsmanager().await;
    let id = unique_id("bin");
    let bytes = vec![0u8, 1, 2, 0xff, 0xfe, 0x80];
    let created = raw
        .create_secret()
        .name(id.as_str())
        .secret_binary(Blob::new(bytes.clone()))
        .send()
        .await
        .unwrap();
    let source = secretsmanager().await;
    let by_name = source.get_current(&id).await.unwrap();
    assert!(!by_name.value().is_text());
    assert_eq!(by_name.value().expose_bytes(), bytes.as_slice());

    let arn = SecretId::new(created.arn().unwrap()).unwrap();
    assert!(arn.is_arn());
    let by_arn = source.get_current(&arn).await.unwrap();
    assert_eq!(by_arn.value().expose_bytes(), bytes.as_slice());
    assert_eq!(by_arn.version_id(), created.version_id());
}

#[tokio::test]
async fn previous_and_explicit_versions_after_put_secret_value() {
    let raw = raw_secretsmanager().await;
    let id = unique_id("rotate");
    let v1 = raw
        .create_secret()
        .name(id.as_str())
        .secret_string("first")
        .send()
        .await
        .unwrap();
    let v2 = raw
        .put_secret_value()
        .secret_id(id.as_str())
        .secret_string("second")
        .send()
        .await
        .unwrap();
    let source = secretsmanager().await;
    let current = source.get_current(&id).await.unwrap();
    assert_eq!(current.value().expose_str(), Some("second"));
    assert_eq!(current.version_id(), v2.version_id());
    let previous = source
        .get(&id, &VersionSelector::Stage("AWSPREVIOUS".into()))
        .await
        .unwrap();
    assert_eq!(previous.value().expose_str(), Some("first"));
    let by_id = source
        .get(&id, &VersionSelector::Id(v1.version_id().unwrap().into()))
        .await
        .unwrap();
    assert_eq!(by_id.value().expose_str(), Some("first"));
    let missing_version = source
        .get(
            &id,
            &VersionSelector::Id("00000000-0000-0000-0000-000000000000".into()),
        )
        .await
        .unwrap_err();
    assert_eq!(
        missing_version.kind(),
        ErrorKind::NotFound,
        "{missing_version:?}"
    );
}

#[tokio::test]
async fn put_by_arn_of_a_missing_secret_is_not_found_not_created() {
    let source = secretsmanager().await;
    let arn = SecretId::new(format!(
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:{}",
        common::unique("ghost")
    ))
    .unwrap();
    let err = source.put(&arn, &SecretValue::text("x")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err:?}");
}

#[tokio::test]
async fn delete_then_read_is_not_found_and_deleting_again_too() {
    let source = secretsmanager().await;
    let id = unique_id("delete");
    source.put(&id, &SecretValue::text("bye")).await.unwrap();
    source.delete(&id).await.unwrap();
    let err = source.get_current(&id).await.unwrap_err();
    // AWS answers a secret scheduled for deletion with InvalidRequestException; moto with
    // ResourceNotFound. Either way it must not be readable, and not be called retryable.
    assert!(
        matches!(err.kind(), ErrorKind::NotFound | ErrorKind::Other),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    let err = source.delete(&unique_id("never-was")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err:?}");
}

#[tokio::test]
async fn config_url_builds_a_working_source() {
    let config = Config::from_url(&common::secretsmanager_url()).unwrap();
    let store = config.build_store().await.unwrap();
    let id = unique_id("config");
    store
        .put(&id, &SecretValue::text("via-config"))
        .await
        .unwrap();
    let source = config.build().await.unwrap();
    assert_eq!(source.to_string(), "secretsmanager(us-east-1)");
    let secret = source.get_current(&id).await.unwrap();
    assert_eq!(secret.value().expose_str(), Some("via-config"));
}

/// Nothing listening: a retryable error within the configured deadline, not a hang.
#[tokio::test]
async fn emulator_down_is_a_transient_error_in_bounded_time() {
    let sdk = common::down_sdk_config().await;
    let source = SecretsManagerSource::from_sdk_config(&sdk).await;

    let started = Instant::now();
    let result = tokio::time::timeout(
        Duration::from_secs(30),
        source.get_current(&unique_id("down")),
    )
    .await
    .expect("get hung for 30 s with nothing listening");
    let err = result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient, "{err:?}");
    assert!(err.is_retryable());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

/// A role allowed `GetSecretValue` but not `BatchGetSecretValue`: `get_many` of 100 ids falls
/// back to single reads, and keeps at most 16 of them in flight (not 16 per batch of 20).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_many_falls_back_to_single_reads_with_a_bound_on_concurrency() {
    use secret_loader::testing::write_response;
    let fake = common::FakeHttp::start(|request, stream| {
        let target = request
            .header("x-amz-target")
            .unwrap_or_default()
            .to_owned();
        if target.ends_with("BatchGetSecretValue") {
            let body = br#"{"__type":"AccessDeniedException","message":"not allowed"}"#;
            write_response(
                stream,
                400,
                &[("Content-Type", "application/x-amz-json-1.1")],
                body,
            );
            return;
        }
        let asked: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        let name = asked["SecretId"].as_str().unwrap().to_owned();
        std::thread::sleep(Duration::from_millis(50));
        let body = serde_json::json!({
            "ARN": format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}-AbCdEf"),
            "Name": name,
            "SecretString": format!("value of {name}"),
            "VersionId": "v1",
            "VersionStages": ["AWSCURRENT"],
        });
        write_response(
            stream,
            200,
            &[("Content-Type", "application/x-amz-json-1.1")],
            body.to_string().as_bytes(),
        );
    });
    let options = common::aws_options(fake.endpoint());
    let sdk = secret_loader::aws::load_sdk_config(&options).await.unwrap();
    let source = SecretsManagerSource::from_sdk_config(&sdk).await;
    let ids: Vec<SecretId> = (0..100)
        .map(|i| SecretId::new(format!("bulk/{i}")).unwrap())
        .collect();
    let results = source.get_many(&ids).await;
    for (id, result) in ids.iter().zip(&results) {
        let secret = result.as_ref().unwrap();
        assert_eq!(secret.id(), id);
        assert_eq!(
            secret.value().expose_str(),
            Some(format!("value of {id}").as_str())
        );
    }
    let batches = 5;
    assert_eq!(fake.requests(), batches + 100);
    assert!(
        fake.most_in_flight() <= secret_loader::DEFAULT_GET_MANY_CONCURRENCY,
        "{} requests in flight at once",
        fake.most_in_flight()
    );
}
