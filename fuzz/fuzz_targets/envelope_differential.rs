//! Differential fuzzing of the envelope reader: every input goes to our reader and to the
//! official `aws-esdk` crate (the same raw AES key, the same required encryption context, the
//! same limit of 4 encrypted data keys). They must agree on accept or reject, and on the
//! plaintext when both accept. `FUZZ_WRITE_SEED=DIR` writes valid messages of both suites,
//! ours and the official crate's, into DIR first, as seeds.
#![no_main]

use std::collections::HashMap;
use std::sync::OnceLock;

use aws_esdk::material_providers::client::Client as MaterialProviders;
use aws_esdk::material_providers::types::keyring::KeyringRef;
use aws_esdk::material_providers::types::material_providers_config::MaterialProvidersConfig;
use aws_esdk::material_providers::types::{
    AesWrappingAlg, EsdkAlgorithmSuiteId, EsdkCommitmentPolicy,
};
use aws_esdk::{AwsEncryptionSdkConfig, Client as EncryptionSdk};
use aws_smithy_types::Blob;
use libfuzzer_sys::fuzz_target;
use secret_loader::secrecy::SecretSlice;
use secret_loader::{AlgorithmSuite, Envelope, SecretId, SecretValue};

const BACKEND: &str = "file+kms";

struct Fixture {
    runtime: tokio::runtime::Runtime,
    ours: Envelope,
    esdk: EncryptionSdk,
    keyring: KeyringRef,
    id: SecretId,
    context: HashMap<String, String>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let key = SecretSlice::from(vec![0x42u8; 32]);
        let ours = runtime
            .block_on(Envelope::raw_aes("fuzz", "fuzz", &key, AlgorithmSuite::Committing))
            .unwrap();
        let esdk = EncryptionSdk::from_conf(
            AwsEncryptionSdkConfig::builder()
                .commitment_policy(EsdkCommitmentPolicy::RequireEncryptRequireDecrypt)
                .max_encrypted_data_keys(4)
                .build()
                .unwrap(),
        )
        .unwrap();
        let materials =
            MaterialProviders::from_conf(MaterialProvidersConfig::builder().build().unwrap())
                .unwrap();
        let keyring = runtime
            .block_on(
                materials
                    .create_raw_aes_keyring()
                    .key_namespace("fuzz")
                    .key_name("fuzz")
                    .wrapping_key(Blob::new(vec![0x42u8; 32]))
                    .wrapping_alg(AesWrappingAlg::AlgAes256GcmIv12Tag16)
                    .send(),
            )
            .unwrap();
        let id = SecretId::new("fuzz/secret").unwrap();
        let context = HashMap::from([
            ("secret-loader:id".to_owned(), id.to_string()),
            ("secret-loader:backend".to_owned(), BACKEND.to_owned()),
        ]);
        let fixture = Fixture {
            runtime,
            ours,
            esdk,
            keyring,
            id,
            context,
        };
        if let Ok(dir) = std::env::var("FUZZ_WRITE_SEED") {
            write_seeds(&fixture, std::path::Path::new(&dir));
        }
        fixture
    })
}

fn write_seeds(f: &Fixture, dir: &std::path::Path) {
    std::fs::create_dir_all(dir).unwrap();
    for (name, suite, official) in [
        ("ours-committing", AlgorithmSuite::Committing, EsdkAlgorithmSuiteId::AlgAes256GcmHkdfSha512CommitKey),
        ("ours-signed", AlgorithmSuite::CommittingSigned, EsdkAlgorithmSuiteId::AlgAes256GcmHkdfSha512CommitKeyEcdsaP384),
    ] {
        let key = SecretSlice::from(vec![0x42u8; 32]);
        let ours = f.runtime.block_on(Envelope::raw_aes("fuzz", "fuzz", &key, suite)).unwrap();
        // Two frames and a bit, so frame handling is in the seeds.
        let value = SecretValue::text("fuzz seed value ".repeat(600));
        let sealed = f.runtime.block_on(ours.seal(BACKEND, &f.id, &value)).unwrap();
        std::fs::write(dir.join(name), sealed).unwrap();
        let mut context = f.context.clone();
        context.insert("secret-loader:kind".into(), "text".into());
        let written = f
            .runtime
            .block_on(
                f.esdk
                    .encrypt()
                    .plaintext(Blob::new(b"official seed value".to_vec()))
                    .keyring(f.keyring.clone())
                    .encryption_context(context)
                    .algorithm_suite_id(official)
                    .send(),
            )
            .unwrap();
        std::fs::write(
            dir.join(name.replace("ours", "official")),
            written.ciphertext.unwrap().into_inner(),
        )
        .unwrap();
    }
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let ours = f
        .runtime
        .block_on(f.ours.open(BACKEND, &f.id, data.to_vec()))
        .map(|value| value.expose_bytes().to_vec());
    let official = f
        .runtime
        .block_on(
            f.esdk
                .decrypt()
                .ciphertext(Blob::new(data.to_vec()))
                .keyring(f.keyring.clone())
                .encryption_context(f.context.clone())
                .send(),
        )
        .map(|out| out.plaintext.unwrap_or_else(|| Blob::new(Vec::new())).into_inner());
    match (ours, official) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "both accept but disagree on the plaintext"),
        (Err(_), Err(_)) => {}
        (Ok(_), Err(e)) => panic!("we accept what the official SDK rejects: {e:?}"),
        // Stricter on purpose: `secret-loader:kind=text` promises UTF-8, and a stored envelope
        // is exactly one message (the official SDKs ignore bytes after its end).
        (Err(e), Ok(_))
            if e.kind() == secret_loader::ErrorKind::InvalidFormat
                || e.display_chain().to_string().contains("bytes after the end of the message") => {}
        (Err(e), Ok(_)) => panic!("we reject what the official SDK accepts: {e:?}"),
    }
});
