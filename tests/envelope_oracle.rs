//! Our Encryption SDK message implementation against the official ones, both ways: the
//! `aws-esdk` crate (Rust, Dafny-generated) and the Python `aws-encryption-sdk` (installed with
//! `aws-encryption-cli` beside the emulator). Both committing suites, the raw AES keyring and
//! the AWS KMS keyring (emulator), plaintext sizes around the frame length up to 1 MiB, with and
//! without extra context pairs. Everything they write we open; everything we write they open.

use std::collections::HashMap;
use std::sync::Arc;

use aws_esdk::material_providers::client::Client as MaterialProviders;
use aws_esdk::material_providers::types::keyring::KeyringRef;
use aws_esdk::material_providers::types::material_providers_config::MaterialProvidersConfig;
use aws_esdk::material_providers::types::{
    AesWrappingAlg, EsdkAlgorithmSuiteId, EsdkCommitmentPolicy,
};
use aws_esdk::{AwsEncryptionSdkConfig, Client as EncryptionSdk};
use aws_smithy_types::Blob;
use secret_loader::secrecy::SecretSlice;
use secret_loader::testing as common;
use secret_loader::{AlgorithmSuite, Envelope, ErrorKind, SecretId, SecretValue};

const NAMESPACE: &str = "secret-loader-oracle";
const NAME: &str = "wrapping-key-1";
const WRAPPING_KEY: [u8; 32] = [0x42; 32];
const BACKEND: &str = "file+kms";

/// Plaintext sizes: empty, one byte, around one frame (4096), several frames, 1 MiB.
const SIZES: &[usize] = &[0, 1, 4095, 4096, 4097, 3 * 4096 + 17, 1024 * 1024];

fn plaintext(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i * 31 + 7) as u8).collect()
}

fn official_suite(suite: AlgorithmSuite) -> EsdkAlgorithmSuiteId {
    match suite {
        AlgorithmSuite::Committing => EsdkAlgorithmSuiteId::AlgAes256GcmHkdfSha512CommitKey,
        _ => EsdkAlgorithmSuiteId::AlgAes256GcmHkdfSha512CommitKeyEcdsaP384,
    }
}

fn official() -> (EncryptionSdk, MaterialProviders) {
    let config = AwsEncryptionSdkConfig::builder()
        .commitment_policy(EsdkCommitmentPolicy::RequireEncryptRequireDecrypt)
        .build()
        .unwrap();
    let materials =
        MaterialProviders::from_conf(MaterialProvidersConfig::builder().build().unwrap()).unwrap();
    (EncryptionSdk::from_conf(config).unwrap(), materials)
}

async fn official_raw_aes(materials: &MaterialProviders) -> KeyringRef {
    materials
        .create_raw_aes_keyring()
        .key_namespace(NAMESPACE)
        .key_name(NAME)
        .wrapping_key(Blob::new(WRAPPING_KEY.to_vec()))
        .wrapping_alg(AesWrappingAlg::AlgAes256GcmIv12Tag16)
        .send()
        .await
        .unwrap()
}

async fn ours_raw_aes(suite: AlgorithmSuite) -> Envelope {
    let key = SecretSlice::from(WRAPPING_KEY.to_vec());
    Envelope::raw_aes(NAMESPACE, NAME, &key, suite)
        .await
        .unwrap()
}

fn context(id: &SecretId, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut context = HashMap::from([
        ("secret-loader:id".to_owned(), id.to_string()),
        ("secret-loader:backend".to_owned(), BACKEND.to_owned()),
        ("secret-loader:kind".to_owned(), "binary".to_owned()),
    ]);
    context.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    context
}

const EXTRAS: [&[(&str, &str)]; 2] = [
    &[],
    &[
        ("secret-loader:expires", "1893456000000"),
        ("team", "payments"),
    ],
];

/// Both directions against `keyring` (official) and `ours`, every size, with and without
/// extra pairs.
async fn both_ways(
    esdk: &EncryptionSdk,
    keyring: &KeyringRef,
    ours: &Envelope,
    suite: AlgorithmSuite,
) {
    let id = common::unique_id("oracle");
    for size in SIZES {
        let value = plaintext(*size);
        for extra in EXTRAS {
            // Ours → official.
            let sealed = ours
                .seal_with_context(BACKEND, &id, &SecretValue::binary(value.clone()), extra)
                .await
                .unwrap();
            let opened = esdk
                .decrypt()
                .ciphertext(Blob::new(sealed))
                .keyring(keyring.clone())
                .encryption_context(context(&id, extra))
                .send()
                .await
                .unwrap_or_else(|e| {
                    panic!("official rejects ours ({suite:?}, {size} bytes): {e:?}")
                });
            assert_eq!(
                opened.plaintext.unwrap().into_inner(),
                value,
                "{suite:?} {size}"
            );

            // Official → ours.
            let written = esdk
                .encrypt()
                .plaintext(Blob::new(value.clone()))
                .keyring(keyring.clone())
                .encryption_context(context(&id, extra))
                .algorithm_suite_id(official_suite(suite))
                .send()
                .await
                .unwrap()
                .ciphertext
                .unwrap()
                .into_inner();
            let opened = ours
                .open_with_context(BACKEND, &id, written.clone(), extra)
                .await
                .unwrap_or_else(|e| {
                    panic!("ours rejects official ({suite:?}, {size} bytes): {e:?}")
                });
            assert_eq!(opened.expose_bytes(), value.as_slice(), "{suite:?} {size}");

            // And the official one's message with one byte flipped in its body: refused by both.
            if *size == 4097 {
                let mut tampered = written;
                let at = tampered.len() - 40;
                tampered[at] ^= 1;
                let err = ours
                    .open_with_context(BACKEND, &id, tampered, extra)
                    .await
                    .unwrap_err();
                assert_eq!(err.kind(), ErrorKind::DecryptionFailed, "{err:?}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_aes_keyring_both_suites_both_ways_with_the_official_rust_sdk() {
    let (esdk, materials) = official();
    let keyring = official_raw_aes(&materials).await;
    for suite in [AlgorithmSuite::Committing, AlgorithmSuite::CommittingSigned] {
        both_ways(&esdk, &keyring, &ours_raw_aes(suite).await, suite).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kms_keyring_both_suites_both_ways_with_the_official_rust_sdk() {
    let key_arn = common::kms_key().await;
    let (esdk, materials) = official();
    let keyring = materials
        .create_aws_kms_keyring()
        .kms_key_id(&key_arn)
        .kms_client(common::raw_kms().await)
        .send()
        .await
        .unwrap();
    for suite in [AlgorithmSuite::Committing, AlgorithmSuite::CommittingSigned] {
        let ours = Envelope::kms(common::raw_kms().await, &key_arn, suite)
            .await
            .unwrap();
        both_ways(&esdk, &keyring, &ours, suite).await;
    }
}

/// The Python SDK (a second, independent implementation) through a small script run by the
/// virtualenv's Python: it opens ours and writes messages we must open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_aes_both_suites_both_ways_with_the_official_python_sdk() {
    let python = common::encryption_cli().with_file_name("python");
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle/esdk_oracle.py");
    let id = common::unique_id("python");
    let dir = tempfile::tempdir().unwrap();
    for suite in [AlgorithmSuite::Committing, AlgorithmSuite::CommittingSigned] {
        let ours = Arc::new(ours_raw_aes(suite).await);
        for size in SIZES {
            let value = plaintext(*size);
            let sealed = ours
                .seal(BACKEND, &id, &SecretValue::binary(value.clone()))
                .await
                .unwrap();
            let (input, output) = (dir.path().join("in"), dir.path().join("out"));
            std::fs::write(&input, &sealed).unwrap();
            let run = |mode: &str| {
                let out = std::process::Command::new(&python)
                    .arg(&script)
                    .args([mode, suite.as_str(), id.as_str(), BACKEND])
                    .arg(&input)
                    .arg(&output)
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{mode}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            };
            run("decrypt");
            assert_eq!(
                std::fs::read(&output).unwrap(),
                value,
                "python opens ours: {suite:?} {size}"
            );

            std::fs::write(&input, &value).unwrap();
            run("encrypt");
            let written = std::fs::read(&output).unwrap();
            let opened = ours.open(BACKEND, &id, written).await.unwrap();
            assert_eq!(
                opened.expose_bytes(),
                value.as_slice(),
                "ours opens python's: {suite:?} {size}"
            );
        }
    }
}

/// 64 concurrent envelope reads through KMS (the emulator) on `runtime`'s flavour: all finish.
/// (The Dafny-generated SDK ran every KMS call as `block_in_place` + `block_on` on a second
/// runtime and could deadlock with more concurrent calls than CPUs; ours are plain awaits.)
async fn sixty_four_concurrent_opens() {
    let key = common::kms_key().await;
    let envelope = Arc::new(
        Envelope::kms(common::raw_kms().await, &key, AlgorithmSuite::Committing)
            .await
            .unwrap(),
    );
    let id = common::unique_id("concurrent");
    let sealed = envelope
        .seal(BACKEND, &id, &SecretValue::text("concurrent-canary"))
        .await
        .unwrap();
    let opens = (0..64).map(|_| {
        let (envelope, id, sealed) = (envelope.clone(), id.clone(), sealed.clone());
        async move { envelope.open(BACKEND, &id, sealed).await }
    });
    let all = futures_util::future::join_all(opens);
    let results = tokio::time::timeout(std::time::Duration::from_secs(120), all)
        .await
        .expect("64 concurrent opens finish");
    for result in results {
        assert_eq!(result.unwrap().expose_str(), Some("concurrent-canary"));
    }
}

#[tokio::test(flavor = "current_thread")]
async fn concurrent_opens_finish_on_a_current_thread_runtime() {
    sixty_four_concurrent_opens().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn concurrent_opens_finish_on_one_worker() {
    sixty_four_concurrent_opens().await;
}
