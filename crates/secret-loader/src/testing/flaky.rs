//! A source for cache tests: an in-memory store that counts `get` calls, takes a set time per
//! call (on tokio's clock, so paused-time tests are exact), and fails with a chosen kind on
//! demand. A call answers with what the store holds when it starts.

use std::fmt;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use crate::{
    Error, ErrorKind, InMemorySource, Result, Secret, SecretId, SecretSource, VersionSelector,
};

/// See the [module docs](self). `Display` is `flaky`.
#[derive(Default)]
pub struct FlakySource {
    /// The values it serves; seed them with `put`.
    pub store: InMemorySource,
    calls: AtomicU64,
    fail_with: Mutex<Option<ErrorKind>>,
    delay: Mutex<Duration>,
}

impl FlakySource {
    /// A new source holding `value` under a fresh unique id; the source and the id.
    pub async fn seeded(value: &str) -> (Arc<Self>, SecretId) {
        use crate::{SecretStore, SecretValue};
        let source = Arc::new(Self::default());
        let id = super::unique_id("flaky");
        source
            .store
            .put(&id, &SecretValue::text(value))
            .await
            .expect("seed the in-memory store");
        (source, id)
    }

    /// `get` calls so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// From now on every `get` fails with `kind` (`None`: serves again).
    pub fn fail(&self, kind: Option<ErrorKind>) {
        *self.fail_with.lock().unwrap() = kind;
    }

    /// From now on every `get` takes `delay` first.
    pub fn set_delay(&self, delay: Duration) {
        *self.delay.lock().unwrap() = delay;
    }
}

#[async_trait]
impl SecretSource for FlakySource {
    /// Answers as the store and the failure switch are when the call starts; the answer
    /// arrives after the delay (as a service's answer crosses the network), so a value put
    /// during a call is not in that call's answer.
    async fn get(&self, id: &SecretId, version: &VersionSelector) -> Result<Secret> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let delay = *self.delay.lock().unwrap();
        let failure = *self.fail_with.lock().unwrap();
        let answer = match failure {
            Some(kind) => Err(Error::from_kind(kind, "flaky", id.as_str(), None)),
            None => self.store.get(id, version).await,
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        answer
    }
}

impl fmt::Debug for FlakySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FlakySource({})", self.calls())
    }
}

impl fmt::Display for FlakySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("flaky")
    }
}
