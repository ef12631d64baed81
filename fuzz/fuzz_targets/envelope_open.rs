//! The envelope read path on arbitrary bytes: every input is refused or opened, none panics.
//! Uses a local AES wrapping key, so it runs without KMS. `FUZZ_WRITE_SEED=PATH` writes one
//! valid envelope (under the same key, id and backend) to PATH first, as a seed.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use secret_loader::secrecy::SecretSlice;
use secret_loader::{AlgorithmSuite, Envelope, SecretId, SecretValue};

struct Fixture {
    runtime: tokio::runtime::Runtime,
    envelope: Envelope,
    id: SecretId,
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
        let envelope = runtime
            .block_on(Envelope::raw_aes("fuzz", "fuzz", &key, AlgorithmSuite::Committing))
            .unwrap();
        let id = SecretId::new("fuzz/secret").unwrap();
        if let Ok(path) = std::env::var("FUZZ_WRITE_SEED") {
            let sealed = runtime
                .block_on(envelope.seal("file+kms", &id, &SecretValue::text("fuzz seed value")))
                .unwrap();
            std::fs::write(path, sealed).unwrap();
        }
        Fixture {
            runtime,
            envelope,
            id,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let _ = f
        .runtime
        .block_on(f.envelope.open("file+kms", &f.id, data.to_vec()));
});
