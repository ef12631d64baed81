//! Envelope seal/open with a local key (no KMS, no network), 1 KiB and 64 KiB, in both
//! algorithm suites: ours (`native_*`) beside the official `aws-esdk` crate (`esdk_*`, the same
//! messages, the same raw AES key) and beside the limit: one HKDF-SHA512 derivation and one
//! AES-256-GCM pass over the same bytes with aws-lc-rs directly. Run with `scripts/bench`.

use std::hint::black_box;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::hkdf::{HKDF_SHA512, Salt};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use secret_loader::secrecy::SecretSlice;
use secret_loader::{AlgorithmSuite, Envelope, SecretId, SecretValue};

use aws_esdk::material_providers::client::Client as MaterialProviders;
use aws_esdk::material_providers::types::material_providers_config::MaterialProvidersConfig;
use aws_esdk::material_providers::types::{
    AesWrappingAlg, EsdkAlgorithmSuiteId, EsdkCommitmentPolicy,
};
use aws_esdk::{AwsEncryptionSdkConfig, Client as EncryptionSdk};
use aws_smithy_types::Blob;

const SIZES: [(usize, &str); 2] = [(1024, "1KiB"), (64 * 1024, "64KiB")];

fn message_key(data_key: &[u8; 32]) -> LessSafeKey {
    let prk = Salt::new(HKDF_SHA512, &[0u8; 32]).extract(data_key);
    let okm = prk.expand(&[b"secret-loader bench"], &AES_256_GCM).unwrap();
    LessSafeKey::new(UnboundKey::from(okm))
}

/// What any AES-256-GCM envelope must at least do per message: derive the message key from the
/// data key with HKDF, then run AES-GCM over the payload.
fn bare_open(data_key: &[u8; 32], sealed: &[u8]) -> Vec<u8> {
    let key = message_key(data_key);
    let mut buffer = sealed.to_vec();
    let nonce = Nonce::assume_unique_for_key([0u8; 12]);
    let plain = key
        .open_in_place(nonce, Aad::from(b"header"), &mut buffer)
        .unwrap();
    plain.len().to_le_bytes().to_vec()
}

fn bare_seal(data_key: &[u8; 32], plain: &[u8]) -> Vec<u8> {
    let key = message_key(data_key);
    let mut buffer = plain.to_vec();
    let nonce = Nonce::assume_unique_for_key([0u8; 12]);
    key.seal_in_place_append_tag(nonce, Aad::from(b"header"), &mut buffer)
        .unwrap();
    buffer
}

fn envelope(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let key = SecretSlice::from(vec![9u8; 32]);
    let id = SecretId::new("bench/envelope").unwrap();
    let esdk = EncryptionSdk::from_conf(
        AwsEncryptionSdkConfig::builder()
            .commitment_policy(EsdkCommitmentPolicy::RequireEncryptRequireDecrypt)
            .build()
            .unwrap(),
    )
    .unwrap();
    let materials =
        MaterialProviders::from_conf(MaterialProvidersConfig::builder().build().unwrap()).unwrap();
    let keyring = runtime
        .block_on(
            materials
                .create_raw_aes_keyring()
                .key_namespace("bench")
                .key_name("local")
                .wrapping_key(Blob::new(vec![9u8; 32]))
                .wrapping_alg(AesWrappingAlg::AlgAes256GcmIv12Tag16)
                .send(),
        )
        .unwrap();
    let context = std::collections::HashMap::from([
        ("secret-loader:id".to_owned(), id.to_string()),
        ("secret-loader:backend".to_owned(), "file+kms".to_owned()),
        ("secret-loader:kind".to_owned(), "binary".to_owned()),
    ]);
    let data_key = [7u8; 32];
    for (size, label) in SIZES {
        let value = SecretValue::binary(vec![0x5a; size]);
        let mut group = c.benchmark_group(format!("envelope_{label}"));
        group.throughput(Throughput::Bytes(size as u64));

        let bare_sealed = bare_seal(&data_key, value.expose_bytes());
        group.bench_function("bare_hkdf_aes_gcm_open", |b| {
            b.iter(|| bare_open(black_box(&data_key), black_box(&bare_sealed)))
        });
        group.bench_function("bare_hkdf_aes_gcm_seal", |b| {
            b.iter(|| bare_seal(black_box(&data_key), black_box(value.expose_bytes())))
        });
        for suite in [AlgorithmSuite::Committing, AlgorithmSuite::CommittingSigned] {
            let envelope = runtime
                .block_on(Envelope::raw_aes("bench", "local", &key, suite))
                .unwrap();
            let sealed = runtime
                .block_on(envelope.seal("file+kms", &id, &value))
                .unwrap();
            group.bench_function(BenchmarkId::new("native_open", suite.as_str()), |b| {
                b.to_async(&runtime).iter(|| async {
                    envelope
                        .open("file+kms", &id, sealed.clone())
                        .await
                        .unwrap()
                })
            });
            group.bench_function(BenchmarkId::new("native_seal", suite.as_str()), |b| {
                b.to_async(&runtime)
                    .iter(|| async { envelope.seal("file+kms", &id, &value).await.unwrap() })
            });
            // The official crate on the same message and key: what the envelope backends cost
            // before this engine.
            let suite_id = match suite {
                AlgorithmSuite::Committing => EsdkAlgorithmSuiteId::AlgAes256GcmHkdfSha512CommitKey,
                _ => EsdkAlgorithmSuiteId::AlgAes256GcmHkdfSha512CommitKeyEcdsaP384,
            };
            group.bench_function(BenchmarkId::new("esdk_open", suite.as_str()), |b| {
                b.to_async(&runtime).iter(|| async {
                    esdk.decrypt()
                        .ciphertext(Blob::new(sealed.clone()))
                        .keyring(keyring.clone())
                        .encryption_context(context.clone())
                        .send()
                        .await
                        .unwrap()
                })
            });
            group.bench_function(BenchmarkId::new("esdk_seal", suite.as_str()), |b| {
                b.to_async(&runtime).iter(|| async {
                    esdk.encrypt()
                        .plaintext(Blob::new(value.expose_bytes().to_vec()))
                        .keyring(keyring.clone())
                        .encryption_context(context.clone())
                        .algorithm_suite_id(suite_id)
                        .send()
                        .await
                        .unwrap()
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, envelope);
criterion_main!(benches);
