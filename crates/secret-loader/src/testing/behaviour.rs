//! One behaviour suite for every backend and every cache layer (after object_store's
//! `integration.rs`): `pub async fn`s over `&dyn SecretStore` (to seed) and
//! `&dyn SecretSource` (to read; the same object for a bare backend), differences as flags.
//! A new backend gets the whole suite with one call to [`run_all`].

use secrecy::ExposeSecret;

use super::unique_id;
use crate::{
    ErrorKind, SecretId, SecretSource, SecretSourceExt, SecretStore, SecretValue, VersionSelector,
};

/// What a backend can do, where backends differ.
#[derive(Debug, Clone, Copy)]
pub struct Flags {
    /// Keeps older versions addressable by staging label (`AWSPREVIOUS`) and version id.
    pub staging_labels: bool,
    /// Keeps text and binary apart (a binary UTF-8 value comes back as binary).
    pub keeps_kind: bool,
    /// Keeps only text: a value that is not UTF-8 is refused by `put` as `InvalidFormat`.
    pub text_only: bool,
}

/// Runs the whole suite.
pub async fn run_all(store: &dyn SecretStore, source: &dyn SecretSource, flags: Flags) {
    text_round_trip(store, source).await;
    binary_round_trip(store, source, flags).await;
    new_version_becomes_current(store, source, flags).await;
    missing_is_not_found(source).await;
    get_many_keeps_order_and_reports_per_id(store, source).await;
    concurrent_reads_agree(store, source).await;
    nothing_leaks_into_debug_or_errors(store, source).await;
}

const CREDS: &str =
    r#"{"access_key":"AKIAEXAMPLEBEHAVIOUR","secret_key":"behaviour/Secret+Key=="}"#;

/// A text value comes back whole, as a string, a JSON field and a typed value.
pub async fn text_round_trip(store: &dyn SecretStore, source: &dyn SecretSource) {
    let id = unique_id("text");
    let outcome = store.put(&id, &SecretValue::text(CREDS)).await.unwrap();
    assert!(outcome.created, "{store}: first put creates");
    let secret = source.get_current(&id).await.unwrap();
    assert_eq!(secret.id(), &id);
    assert!(secret.value().is_text());
    assert_eq!(secret.value().expose_str(), Some(CREDS));
    assert!(!secret.backend().is_empty());
    assert_eq!(
        source
            .get_field(&id, "access_key")
            .await
            .unwrap()
            .expose_secret(),
        "AKIAEXAMPLEBEHAVIOUR"
    );
    assert_eq!(source.get_string(&id).await.unwrap().expose_secret(), CREDS);
    #[derive(serde::Deserialize)]
    struct Creds {
        access_key: String,
        secret_key: String,
    }
    let creds: Creds = source.get_json(&id).await.unwrap();
    assert_eq!(creds.access_key, "AKIAEXAMPLEBEHAVIOUR");
    assert_eq!(creds.secret_key, "behaviour/Secret+Key==");
}

/// A binary value comes back byte for byte and is refused as a string.
pub async fn binary_round_trip(store: &dyn SecretStore, source: &dyn SecretSource, flags: Flags) {
    let id = unique_id("binary");
    let bytes: Vec<u8> = (0..=255u8).rev().collect();
    if flags.text_only {
        let err = store
            .put(&id, &SecretValue::binary(bytes))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidFormat, "{err:?}");
        let err = source.get_current(&id).await.unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::NotFound,
            "nothing was stored: {err:?}"
        );
        return;
    }
    store
        .put(&id, &SecretValue::binary(bytes.clone()))
        .await
        .unwrap();
    let secret = source.get_current(&id).await.unwrap();
    assert_eq!(secret.value().expose_bytes(), bytes.as_slice());
    assert_eq!(secret.value().expose_str(), None);
    assert_eq!(
        secret.to_secret_string().unwrap_err().kind(),
        ErrorKind::InvalidFormat
    );
    if flags.keeps_kind {
        assert!(!secret.value().is_text());
    }
}

/// A second put becomes the current version; older versions stay addressable where the backend keeps them.
pub async fn new_version_becomes_current(
    store: &dyn SecretStore,
    source: &dyn SecretSource,
    flags: Flags,
) {
    let id = unique_id("versions");
    let first = store.put(&id, &SecretValue::text("one")).await.unwrap();
    let second = store.put(&id, &SecretValue::text("two")).await.unwrap();
    assert!(!second.created);
    let current = source.get_current(&id).await.unwrap();
    assert_eq!(current.value().expose_str(), Some("two"));
    if let (Some(first_id), Some(second_id)) = (&first.version_id, &second.version_id) {
        assert_ne!(first_id, second_id);
        assert_eq!(current.version_id(), Some(second_id.as_str()));
        let by_id = source
            .get(&id, &VersionSelector::Id(first_id.clone()))
            .await
            .unwrap();
        assert_eq!(by_id.value().expose_str(), Some("one"));
        assert_eq!(by_id.version_id(), Some(first_id.as_str()));
    }
    if flags.staging_labels {
        assert!(current.version_stages().iter().any(|s| s == "AWSCURRENT"));
        let previous = source
            .get(&id, &VersionSelector::Stage("AWSPREVIOUS".into()))
            .await
            .unwrap();
        assert_eq!(previous.value().expose_str(), Some("one"));
        assert!(previous.version_stages().iter().any(|s| s == "AWSPREVIOUS"));
        let err = source
            .get(&id, &VersionSelector::Stage("NO-SUCH-LABEL".into()))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err:?}");
    }
}

/// A missing id is `NotFound`, not retryable, and the error names the id.
pub async fn missing_is_not_found(source: &dyn SecretSource) {
    let id = unique_id("missing");
    let err = source.get_current(&id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err:?}");
    assert!(!err.is_retryable());
    assert!(err.to_string().contains(id.as_str()), "{err}");
}

/// `get_many` answers in request order, with a missing id's error in its own slot.
pub async fn get_many_keeps_order_and_reports_per_id(
    store: &dyn SecretStore,
    source: &dyn SecretSource,
) {
    // 25 ids: more than one Secrets Manager batch (20), one of them missing.
    let ids: Vec<SecretId> = (0..25).map(|i| unique_id(&format!("many{i}"))).collect();
    let missing = 13;
    for (i, id) in ids.iter().enumerate() {
        if i != missing {
            store
                .put(id, &SecretValue::text(format!("value-{i}")))
                .await
                .unwrap();
        }
    }
    let results = source.get_many(&ids).await;
    assert_eq!(results.len(), ids.len());
    for (i, (id, result)) in ids.iter().zip(&results).enumerate() {
        if i == missing {
            let err = result.as_ref().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::NotFound, "{err:?}");
            assert!(err.to_string().contains(id.as_str()), "{err}");
        } else {
            let secret = result.as_ref().unwrap();
            assert_eq!(secret.id(), id);
            assert_eq!(
                secret.value().expose_str(),
                Some(format!("value-{i}").as_str())
            );
        }
    }
}

/// Concurrent reads of one id all get the same value.
pub async fn concurrent_reads_agree(store: &dyn SecretStore, source: &dyn SecretSource) {
    let id = unique_id("concurrent");
    store.put(&id, &SecretValue::text("same")).await.unwrap();
    let reads = (0..16).map(|_| source.get_current(&id));
    for result in futures_util::future::join_all(reads).await {
        assert_eq!(result.unwrap().value().expose_str(), Some("same"));
    }
}

/// No `Debug` output or error of a secret, its value or the sources carries the value.
pub async fn nothing_leaks_into_debug_or_errors(
    store: &dyn SecretStore,
    source: &dyn SecretSource,
) {
    let id = unique_id("leak");
    let value = r#"{"token":"LEAK-CANARY-7f3a9c"}"#;
    store.put(&id, &SecretValue::text(value)).await.unwrap();
    let secret = source.get_current(&id).await.unwrap();
    let field_err = secret.json_field("password").unwrap_err();
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Wrong {
        token: u64,
    }
    let shape_err = secret.deserialize::<Wrong>().unwrap_err();
    let printed = format!(
        "{secret:?} {secret:#?} {:?} {field_err} {field_err:?} {shape_err} {shape_err:?} {store:?} {source:?}",
        secret.value()
    );
    assert!(!printed.contains("LEAK-CANARY"), "{printed}");
    assert!(printed.contains("REDACTED"));
}
