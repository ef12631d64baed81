//! Committed AWS Encryption SDK test vectors, written by the official Python SDK
//! (`tests/fixtures/esdk/generate.py`, which also lists in `manifest.json` why each one is good
//! or broken). Our reader must open every good vector to the recorded plaintext and refuse every
//! broken one — flipped bits in each header, body and footer field, truncations, reordered
//! frames, another message's commitment or signature, a version 1.0 message, bytes after the
//! end — each of which the Python SDK refuses too, except the trailing bytes, which it ignores
//! and we refuse (a stored envelope is exactly one message; the manifest says so). One run
//! reports every vector that disagrees.

use std::fmt::Write as _;
use std::path::Path;

use aws_lc_rs::digest::{SHA256, digest};
use secret_loader::secrecy::SecretSlice;
use secret_loader::{AlgorithmSuite, Envelope, ErrorKind, SecretId};
use serde_json::Value;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/esdk");

fn sha256_hex(data: &[u8]) -> String {
    digest(&SHA256, data)
        .as_ref()
        .iter()
        .fold(String::with_capacity(64), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_sdk_vectors_open_exactly_when_good() {
    let dir = Path::new(FIXTURES);
    let manifest: Vec<Value> = serde_json::from_slice(
        &std::fs::read(dir.join("manifest.json")).expect("tests/fixtures/esdk/manifest.json"),
    )
    .expect("manifest.json is a JSON list");
    let count = |expect: &str| {
        manifest
            .iter()
            .filter(|entry| entry["expect"].as_str() == Some(expect))
            .count()
    };
    assert!(
        manifest.len() >= 40,
        "only {} vectors in the manifest",
        manifest.len()
    );
    assert!(
        count("ok") > 0 && count("reject") > 0,
        "the manifest needs good and broken vectors ({} ok, {} reject)",
        count("ok"),
        count("reject")
    );

    // The suite only matters for sealing: opening takes both committing suites.
    let envelope = Envelope::raw_aes(
        "secret-loader-oracle",
        "wrapping-key-1",
        &SecretSlice::from(vec![0x42u8; 32]),
        AlgorithmSuite::Committing,
    )
    .await
    .unwrap();
    let id = SecretId::new("vectors/app").unwrap();

    let mut failures = Vec::new();
    for entry in &manifest {
        let file = entry["file"].as_str().expect("every vector names its file");
        let why = entry["why"].as_str().unwrap_or("");
        let bytes = std::fs::read(dir.join("vectors").join(file))
            .unwrap_or_else(|e| panic!("vector {file}: {e}"));
        let extra: Vec<(&str, &str)> = entry["extra_context"]
            .as_object()
            .map(|pairs| {
                pairs
                    .iter()
                    .map(|(k, v)| {
                        let v = v.as_str().expect("context values are strings");
                        (k.as_str(), v)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let opened = envelope
            .open_with_context("file+kms", &id, bytes, &extra)
            .await;
        match (entry["expect"].as_str(), opened) {
            (Some("ok"), Ok(value)) => {
                let want = entry["plaintext_sha256"]
                    .as_str()
                    .expect("good vectors record their plaintext's SHA-256");
                let got = sha256_hex(value.expose_bytes());
                if got != want {
                    failures.push(format!(
                        "{file}: opened to {} bytes with SHA-256 {got}, expected {} bytes with \
                         {want} ({why})",
                        value.expose_bytes().len(),
                        entry["size"]
                    ));
                }
            }
            (Some("ok"), Err(e)) => {
                failures.push(format!("{file}: a good message refused ({why}): {e:?}"));
            }
            (Some("reject"), Ok(value)) => failures.push(format!(
                "{file}: a broken message opened ({} bytes out) — {why}",
                value.expose_bytes().len()
            )),
            (Some("reject"), Err(e)) => {
                if !matches!(
                    e.kind(),
                    ErrorKind::DecryptionFailed | ErrorKind::InvalidFormat
                ) {
                    failures.push(format!(
                        "{file}: refused as {:?}, not DecryptionFailed or InvalidFormat \
                         ({why}): {e:?}",
                        e.kind()
                    ));
                }
            }
            (other, _) => failures.push(format!("{file}: unknown expectation {other:?}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} vectors disagree with the official SDK:\n  {}",
        failures.len(),
        manifest.len(),
        failures.join("\n  ")
    );
}
