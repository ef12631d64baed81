//! Committed AWS Encryption SDK test vectors, written by the official Python SDK
//! (`tests/fixtures/esdk/generate.py`, which also lists in `manifest.json` why each one is good
//! or broken). Our reader must open every good vector to the recorded plaintext and refuse every
//! broken one — flipped bits in each header, body and footer field, truncations, reordered
//! frames, another message's commitment or signature, a version 1.0 message, bytes after the
//! end — each of which the Python SDK refuses too, except the trailing bytes, which it ignores
//! and we refuse (a stored envelope is exactly one message; the manifest says so). Each broken
//! vector records the reason our reader must give (`reason` in the manifest), and the test
//! compares it: a vector refused for another reason is a failure too. One run reports every
//! vector that disagrees.

use std::fmt::Write as _;
use std::path::Path;

use aws_lc_rs::digest::{SHA256, digest};
use secret_loader::secrecy::{ExposeSecret, SecretSlice};
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
                let reason = entry["reason"]
                    .as_str()
                    .expect("broken vectors record why they are refused");
                let chain = e.display_chain().to_string();
                if !matches!(
                    e.kind(),
                    ErrorKind::DecryptionFailed | ErrorKind::InvalidFormat
                ) {
                    failures.push(format!(
                        "{file}: refused as {:?}, not DecryptionFailed or InvalidFormat \
                         ({why}): {e:?}",
                        e.kind()
                    ));
                } else if !chain.contains(reason) {
                    failures.push(format!(
                        "{file}: refused for `{chain}`, not for the recorded `{reason}` ({why})"
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

/// Messages whose tags all check but that break a rule, written by the test-only writer
/// (`secret_loader::testing::message`) with the oracle's raw AES key, each with the reason it
/// must be refused for (compared, not just "refused"): an unsigned suite carrying a
/// verification key, a signed suite without one (or with a key that is no P-384 point), an
/// unsigned message where the reader requires signed ones, each limit crossed by one, an
/// `aws-kms` data key whose provider info is not a key ARN, a data key under another provider
/// id, a duplicated context key. A good message written the same way opens, so each refusal
/// is the rule's and not the writer's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_that_authenticate_but_break_a_rule_are_refused_for_that_rule() {
    use secret_loader::testing::message::{self, DataKeyEntry, PUBLIC_KEY_CONTEXT};
    use std::collections::BTreeMap;

    let key = SecretSlice::from(vec![0x42u8; 32]);
    let reader = |suite| Envelope::raw_aes("secret-loader-oracle", "wrapping-key-1", &key, suite);
    let unsigned_reader = reader(AlgorithmSuite::Committing).await.unwrap();
    let signed_reader = reader(AlgorithmSuite::CommittingSigned).await.unwrap();
    let id = SecretId::new("vectors/app").unwrap();

    // The context every message of `id` in `file+kms` carries.
    let genuine = unsigned_reader
        .seal(
            "file+kms",
            &id,
            &secret_loader::SecretValue::text("rule-canary"),
        )
        .await
        .unwrap();
    let context = message::parse_header(&genuine).unwrap().context;
    let with = |pairs: &[(&str, &str)]| {
        let mut context = context.clone();
        for (k, v) in pairs {
            context.insert((*k).to_owned(), (*v).to_owned());
        }
        context
    };
    // A message whose every tag checks: a data key wrapped by the reader's own key for
    // exactly this context, then the given suite, data keys (ours last) and frame length.
    let write = |suite: u16,
                 context: BTreeMap<String, String>,
                 others: Vec<DataKeyEntry>,
                 frame: u32,
                 plaintext: Vec<u8>| {
        let key = &key;
        async move {
            let (data_key, ours) = message::raw_aes_data_key(
                "secret-loader-oracle",
                "wrapping-key-1",
                key.expose_secret(),
                &context,
            )
            .await
            .unwrap();
            let mut entries = others;
            entries.push(ours);
            message::write(suite, &context, &entries, &data_key, &plaintext, frame).unwrap()
        }
    };
    struct Case {
        name: &'static str,
        bytes: Vec<u8>,
        signed_reader: bool,
        reason: &'static str,
    }
    let public_key = message::verification_key().unwrap();
    let kms_edk = |info: &str| DataKeyEntry {
        provider_id: "aws-kms".into(),
        provider_info: info.as_bytes().to_vec(),
        ciphertext: vec![1, 2, 3],
    };
    let foreign = DataKeyEntry {
        provider_id: "another-namespace".into(),
        provider_info: b"wrapping-key-1".to_vec(),
        ciphertext: vec![0u8; 48],
    };
    let p = || b"p".to_vec();
    let cases = vec![
        Case {
            name: "a good message written the same way",
            bytes: write(0x0478, context.clone(), vec![], 4096, p()).await,
            signed_reader: false,
            reason: "",
        },
        Case {
            name: "a signed message whose verification key is not its signer's",
            bytes: write(
                0x0578,
                with(&[(PUBLIC_KEY_CONTEXT, &public_key)]),
                vec![],
                4096,
                p(),
            )
            .await,
            signed_reader: true,
            // The writer signs with a fresh key of its own, not the one in the context.
            reason: "message does not authenticate: the signature",
        },
        Case {
            name: "unsigned suite with a verification key",
            bytes: write(
                0x0478,
                with(&[(PUBLIC_KEY_CONTEXT, &public_key)]),
                vec![],
                4096,
                p(),
            )
            .await,
            signed_reader: false,
            reason: "an unsigned suite whose context carries a verification key",
        },
        Case {
            name: "signed suite without a verification key",
            bytes: write(0x0578, context.clone(), vec![], 4096, p()).await,
            signed_reader: false,
            reason: "a signed suite without its verification key",
        },
        Case {
            name: "signed suite whose verification key is no P-384 point",
            bytes: write(
                0x0578,
                with(&[(PUBLIC_KEY_CONTEXT, "AAAA")]),
                vec![],
                4096,
                p(),
            )
            .await,
            signed_reader: false,
            reason: "is not a compressed P-384 point",
        },
        Case {
            name: "unsigned message to a reader that requires signed ones",
            bytes: write(0x0478, context.clone(), vec![], 4096, p()).await,
            signed_reader: true,
            reason: "this reader requires signed ones",
        },
        Case {
            name: "five encrypted data keys (the limit is four)",
            bytes: write(0x0478, context.clone(), vec![foreign.clone(); 4], 4096, p()).await,
            signed_reader: false,
            reason: "5 encrypted data keys (at most 4 are read)",
        },
        Case {
            name: "four encrypted data keys, the limit",
            bytes: write(0x0478, context.clone(), vec![foreign.clone(); 3], 4096, p()).await,
            signed_reader: false,
            reason: "",
        },
        Case {
            name: "a frame length over 1 MiB",
            bytes: write(0x0478, context.clone(), vec![], 1024 * 1024 + 1, p()).await,
            signed_reader: false,
            reason: "frame length 1048577",
        },
        Case {
            name: "a message over 2 MiB",
            bytes: write(
                0x0478,
                context.clone(),
                vec![],
                4096,
                vec![0u8; 2 * 1024 * 1024],
            )
            .await,
            signed_reader: false,
            reason: "is over the limit of 2097152",
        },
        Case {
            name: "an aws-kms data key beside ours (not this keyring's: skipped)",
            bytes: write(
                0x0478,
                context.clone(),
                vec![kms_edk("arn:aws:kms:us-east-1:123456789012:alias/app")],
                4096,
                p(),
            )
            .await,
            signed_reader: false,
            reason: "",
        },
        Case {
            name: "only a data key under another provider id",
            bytes: message::write(
                0x0478,
                &context,
                std::slice::from_ref(&foreign),
                &[9u8; 32],
                b"p",
                4096,
            )
            .unwrap(),
            signed_reader: false,
            reason: "no encrypted data key in the message is for this key",
        },
    ];
    let mut failures = Vec::new();
    for case in cases {
        let reader = if case.signed_reader {
            &signed_reader
        } else {
            &unsigned_reader
        };
        let opened = reader.open("file+kms", &id, case.bytes).await;
        match (case.reason, opened) {
            ("", Ok(_)) => {}
            ("", Err(err)) => failures.push(format!("{}: refused: {err:?}", case.name)),
            (reason, Err(err)) => {
                let chain = err.display_chain().to_string();
                if err.kind() != ErrorKind::DecryptionFailed || !chain.contains(reason) {
                    failures.push(format!(
                        "{}: refused as {:?} `{chain}`, expected `{reason}`",
                        case.name,
                        err.kind()
                    ));
                }
            }
            (_, Ok(_)) => failures.push(format!("{}: opened", case.name)),
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
