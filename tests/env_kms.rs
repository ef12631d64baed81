//! `env+kms://` and `env://` through the real KMS client against the emulator on loopback.

use std::collections::BTreeMap;

use secret_loader::testing as common;
use secret_loader::testing::behaviour;

use aws_sdk_kms::primitives::Blob;
use secret_loader::config::ContextOption;
use secret_loader::env::{Environment, FUNCTION_NAME_ENV};
use secret_loader::secrecy::ExposeSecret;
use secret_loader::{ErrorKind, SecretId, SecretSourceExt, SecretStore, SecretValue};

use common::{env_kms, kms_key, raw_kms, unique_id};

const FLAGS: behaviour::Flags = behaviour::Flags {
    staging_labels: false,
    keeps_kind: false,
    text_only: false,
};

#[tokio::test]
async fn behaviour_suite_passes_on_env_kms() {
    let store = env_kms(&kms_key().await, ContextOption::Auto).await;
    behaviour::run_all(&store, &store, FLAGS).await;
}

/// Bound to a function's name: the suite again with Lambda's `AWS_LAMBDA_FUNCTION_NAME` set,
/// so every value is sealed and opened under `LambdaFunctionName=...`.
#[tokio::test]
async fn behaviour_suite_passes_bound_to_a_function_name() {
    let store = env_kms(&kms_key().await, ContextOption::Auto).await;
    store
        .source()
        .environment()
        .set(FUNCTION_NAME_ENV, "behaviour-fn");
    behaviour::run_all(&store, &store, FLAGS).await;
}

/// What Lambda's console encryption helpers store: `base64(KMS Encrypt(value,
/// {LambdaFunctionName: name}))`, made here with the raw SDK as the console makes it.
async fn console_ciphertext(key: &str, value: &str, function: Option<&str>) -> String {
    let request = raw_kms()
        .await
        .encrypt()
        .key_id(key)
        .plaintext(Blob::new(value.as_bytes()));
    let request = match function {
        Some(name) => request.encryption_context("LambdaFunctionName", name),
        None => request,
    };
    let blob = request.send().await.unwrap().ciphertext_blob.unwrap();
    aws_smithy_types::base64::encode(blob.as_ref())
}

#[tokio::test]
async fn a_console_encrypted_variable_opens_only_in_its_function() {
    let key = kms_key().await;
    let store = env_kms(&key, ContextOption::Auto).await;
    let environment = store.source().environment().clone();
    let id = SecretId::new("api_key").unwrap();
    let creds = r#"{"access_key":"AKIACONSOLE","secret_key":"console/secret"}"#;
    environment.set(
        "API_KEY",
        console_ciphertext(&key, creds, Some("billing-fn")).await,
    );

    // Outside Lambda (no function name) the context is missing: refused.
    let err = store.get_current(&id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DecryptionFailed, "{err:?}");
    // In another function: refused.
    environment.set(FUNCTION_NAME_ENV, "other-fn");
    let err = store.get_current(&id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DecryptionFailed, "{err:?}");
    // In its own function: the seed's fields.
    environment.set(FUNCTION_NAME_ENV, "billing-fn");
    let field = store.get_field(&id, "secret_key").await.unwrap();
    assert_eq!(field.expose_secret(), "console/secret");
    // The id's case and punctuation don't matter: `API_KEY` is `api_key`.
    let upper = store
        .get_current(&SecretId::new("API_KEY").unwrap())
        .await
        .unwrap();
    assert_eq!(upper.expose_str().unwrap(), creds);
}

#[tokio::test]
async fn explicit_context_pairs_and_none_decrypt_what_was_sealed_so() {
    let key = kms_key().await;
    let plain = env_kms(&key, ContextOption::None).await;
    plain
        .source()
        .environment()
        .set("TOKEN", console_ciphertext(&key, "no-context", None).await);
    let id = SecretId::new("token").unwrap();
    assert_eq!(
        plain.get_current(&id).await.unwrap().expose_str().unwrap(),
        "no-context"
    );
    // `none` ignores a function name that happens to be set.
    plain
        .source()
        .environment()
        .set(FUNCTION_NAME_ENV, "some-fn");
    assert!(plain.get_current(&id).await.is_ok());

    let pairs = ContextOption::Pairs(BTreeMap::from([(
        "LambdaFunctionName".to_owned(),
        "pinned-fn".to_owned(),
    )]));
    let pinned = env_kms(&key, pairs).await;
    pinned.source().environment().set(
        "TOKEN",
        console_ciphertext(&key, "pinned", Some("pinned-fn")).await,
    );
    assert_eq!(
        pinned.get_current(&id).await.unwrap().expose_str().unwrap(),
        "pinned"
    );
}

#[tokio::test]
async fn tampered_foreign_and_malformed_variables_are_refused_by_kind() {
    let key = kms_key().await;
    let store = env_kms(&key, ContextOption::None).await;
    let environment = store.source().environment().clone();
    let id = SecretId::new("tok").unwrap();

    let sealed = console_ciphertext(&key, "LEAK-CANARY-env-kms", None).await;
    let mut bytes = aws_smithy_types::base64::decode(&sealed).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    environment.set("TOK", aws_smithy_types::base64::encode(&bytes));
    let tampered = store.get_current(&id).await.unwrap_err();
    assert_eq!(tampered.kind(), ErrorKind::DecryptionFailed, "{tampered:?}");

    environment.set("TOK", "not base64 at all!");
    let malformed = store.get_current(&id).await.unwrap_err();
    assert_eq!(malformed.kind(), ErrorKind::InvalidFormat, "{malformed:?}");
    assert!(malformed.to_string().contains("TOK"), "{malformed}");

    environment.remove("TOK");
    let missing = store.get_current(&id).await.unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound);

    // A value sealed under another key, while this source names its key: refused.
    let other_key = kms_key().await;
    environment.set("TOK", console_ciphertext(&other_key, "x", None).await);
    let foreign = store.get_current(&id).await.unwrap_err();
    // AWS answers IncorrectKeyException (DecryptionFailed; the unit tests map it), moto
    // AccessDeniedException: either way refused, and not retryable.
    assert!(
        matches!(
            foreign.kind(),
            ErrorKind::DecryptionFailed | ErrorKind::AccessDenied
        ),
        "{foreign:?}"
    );
    assert!(!foreign.is_retryable());

    for err in [&tampered, &malformed, &missing, &foreign] {
        let printed = format!("{err} {err:?} {}", err.display_chain());
        assert!(!printed.contains("LEAK-CANARY"), "{printed}");
    }
}

#[tokio::test]
async fn seal_refuses_what_kms_cannot_encrypt_before_any_call() {
    let store = env_kms(&kms_key().await, ContextOption::None).await;
    let id = unique_id("big");
    let err = store
        .put(&id, &SecretValue::text("x".repeat(4097)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidFormat, "{err:?}");
    assert!(err.to_string().contains("4096"), "{err}");
}

/// Emulator down: a read is transient, not a hang.
#[tokio::test]
async fn kms_down_is_transient() {
    let sdk = common::down_sdk_config().await;
    let config = secret_loader::config::EnvKmsConfig::default();
    let environment = Environment::map();
    environment.set("TOK", "AAAA");
    let source = secret_loader::EnvKmsSource::from_config(&sdk, &config)
        .await
        .with_environment(environment);
    let err = source
        .get_current(&SecretId::new("tok").unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient, "{err:?}");
}
