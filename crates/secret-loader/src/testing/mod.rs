//! Test support shared by every crate of this workspace (feature `testing`; not a stable API):
//! the [behaviour suite](behaviour) every backend and cache layer runs, and helpers for tests
//! and benchmarks against the AWS emulator on loopback. After object_store's `integration`
//! module: tests call `testing::behaviour::run_all(&store, &source, flags)` for a backend.
//!
//! Nothing here reaches anything but 127.0.0.1: the emulator helpers refuse any other
//! `AWS_ENDPOINT_URL`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::SecretId;

pub mod behaviour;
#[cfg(feature = "aws")]
mod emulator;
#[cfg(feature = "env")]
mod env_store;
mod fake_http;
mod flaky;
#[cfg(feature = "kms")]
pub mod message;

#[cfg(feature = "aws")]
pub use emulator::*;
#[cfg(feature = "env")]
pub use env_store::SealingStore;
pub use fake_http::{FakeHttp, FakeRequest, Respond, write_response};
pub use flaky::FlakySource;

/// A name no other test (in this or a parallel process) uses.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{nanos:x}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A unique, valid secret id under `test/`.
pub fn unique_id(prefix: &str) -> SecretId {
    SecretId::new(format!("test/{}", unique(prefix))).unwrap()
}

/// A loopback port nothing listens on now (bound, then released), for a server a test starts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind a loopback port")
        .port()
}

/// The `p` quantile (0 to 1) of `sorted` by nearest rank.
///
/// # Panics
/// When `sorted` is empty.
pub fn percentile(sorted: &[std::time::Duration], p: f64) -> std::time::Duration {
    sorted[((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// The multi-threaded runtime benchmarks run on (two workers, as the machine has two cores).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}
