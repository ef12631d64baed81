//! Parameter Store through the real SDK against the emulator on loopback.

use secret_loader::testing as common;
use secret_loader::testing::behaviour;

use aws_sdk_ssm::types::ParameterType;
use secret_loader::secrecy::ExposeSecret;
use secret_loader::{
    Config, ErrorKind, SecretId, SecretSource, SecretSourceExt, SecretValue, VersionSelector,
};

use common::{emulator_endpoint, raw_ssm, ssm, unique, unique_id};

#[tokio::test]
async fn behaviour_suite_passes_on_ssm() {
    let source = ssm().await;
    let flags = behaviour::Flags {
        staging_labels: true,
        keeps_kind: false,
        text_only: true,
    };
    behaviour::run_all(&source, &source, flags).await;
}

/// The behaviour suite again under a hierarchy prefix, built from a URL like a user's.
#[tokio::test]
async fn behaviour_suite_passes_under_a_hierarchy_from_a_url() {
    let prefix = format!("/{}", unique("team"));
    let url = format!(
        "ssm://{prefix}?region=us-east-1&endpoint_url={}",
        emulator_endpoint()
    );
    let config = Config::from_url(&url).unwrap();
    let store = config.build_store().await.unwrap();
    let flags = behaviour::Flags {
        staging_labels: true,
        keeps_kind: false,
        text_only: true,
    };
    behaviour::run_all(&*store, &*store, flags).await;
    // What the suite wrote is where the mapping says: under the prefix.
    let id = unique_id("placed");
    store.put(&id, &SecretValue::text("here")).await.unwrap();
    let raw = raw_ssm()
        .await
        .get_parameter()
        .name(format!("{prefix}/{id}"))
        .with_decryption(true)
        .send()
        .await
        .unwrap();
    let parameter = raw.parameter.unwrap();
    assert_eq!(parameter.value(), Some("here"));
    // ... and the name maps back to the id.
    let source = secret_loader::SsmSource::from_config(
        &common::sdk_config().await,
        &match config.source {
            secret_loader::SourceConfig::Ssm(c) => c,
            other => panic!("{other:?}"),
        },
    )
    .await
    .unwrap();
    assert_eq!(source.id_for_name(parameter.name().unwrap()), Some(id));
}

/// Parameters written the way people write them (console, CLI, CloudFormation) read back:
/// a plain `String`, a `StringList`, a `SecureString`, plain and hierarchical names, labels.
#[tokio::test]
async fn parameters_made_with_the_sdk_read_back_by_type_name_and_label() {
    let raw = raw_ssm().await;
    let key = common::kms_key().await;
    let plain = unique("plain").replace('-', "_");
    let hierarchical = unique_id("app");
    let list = unique_id("list");
    for (name, value, kind) in [
        (plain.clone(), "plain-value", ParameterType::String),
        (
            format!("/{hierarchical}"),
            r#"{"access_key":"AKIA","secret_key":"s3cr3t"}"#,
            ParameterType::SecureString,
        ),
        (format!("/{list}"), "a,b,c", ParameterType::StringList),
    ] {
        let mut request = raw
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(kind.clone());
        if kind == ParameterType::SecureString {
            request = request.key_id(&key);
        }
        request.send().await.unwrap();
    }
    let source = ssm().await;
    let plain_id = SecretId::new(&plain).unwrap();
    assert_eq!(
        source.get_string(&plain_id).await.unwrap().expose_secret(),
        "plain-value"
    );
    assert_eq!(
        source
            .get_field(&hierarchical, "secret_key")
            .await
            .unwrap()
            .expose_secret(),
        "s3cr3t"
    );
    assert_eq!(
        source.get_string(&list).await.unwrap().expose_secret(),
        "a,b,c"
    );

    // Version 2, then label version 1 `blue`: labels and numbers select.
    raw.put_parameter()
        .name(format!("/{hierarchical}"))
        .value("second")
        .r#type(ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .unwrap();
    raw.label_parameter_version()
        .name(format!("/{hierarchical}"))
        .parameter_version(1)
        .labels("blue")
        .send()
        .await
        .unwrap();
    let blue = source
        .get(&hierarchical, &VersionSelector::Stage("blue".into()))
        .await
        .unwrap();
    assert_eq!(blue.version_id(), Some("1"));
    assert!(blue.expose_str().unwrap().contains("s3cr3t"));
    let current = source.get_current(&hierarchical).await.unwrap();
    assert_eq!(
        (current.expose_str().unwrap(), current.version_id()),
        ("second", Some("2"))
    );
    let err = source
        .get(&hierarchical, &VersionSelector::Id("9".into()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err:?}");
}

/// `put` makes a `SecureString` under the configured key, and says so to Parameter Store.
#[tokio::test]
async fn put_writes_a_secure_string_under_the_configured_key() {
    let key = common::kms_key().await;
    let url = format!(
        "ssm://?region=us-east-1&endpoint_url={}&kms_key_id={key}",
        emulator_endpoint()
    );
    let store = Config::from_url(&url).unwrap().build_store().await.unwrap();
    let id = unique_id("secure");
    let outcome = store.put(&id, &SecretValue::text("v1")).await.unwrap();
    assert_eq!(
        (outcome.version_id.as_deref(), outcome.created),
        (Some("1"), true)
    );
    let described = raw_ssm()
        .await
        .get_parameter()
        .name(format!("/{id}"))
        .send()
        .await
        .unwrap()
        .parameter
        .unwrap();
    assert_eq!(described.r#type(), Some(&ParameterType::SecureString));
    store.delete(&id).await.unwrap();
    let err = store.get_current(&id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let err = store.delete(&id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

/// With the emulator down, reads fail as transient after bounded retries; nothing hangs.
#[tokio::test]
async fn emulator_down_is_transient() {
    let sdk = common::down_sdk_config().await;
    let source =
        secret_loader::SsmSource::from_config(&sdk, &secret_loader::config::SsmConfig::default())
            .await
            .unwrap();
    let err = source
        .get_current(&SecretId::new("x").unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient, "{err:?}");
    assert!(err.is_retryable());
}
