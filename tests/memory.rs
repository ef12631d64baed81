//! The behaviour suite on the in-process backend (no emulator needed).

use secret_loader::InMemorySource;
use secret_loader::testing::behaviour;

#[tokio::test]
async fn behaviour_suite_passes_on_memory() {
    let store = InMemorySource::new();
    let flags = behaviour::Flags {
        staging_labels: true,
        keeps_kind: true,
        text_only: false,
    };
    behaviour::run_all(&store, &store, flags).await;
}
