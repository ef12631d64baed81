//! The real `bootstrap` binary under the loopback Runtime API endpoint
//! ([`LocalRuntime`]), reading from the AWS emulator: a cold invocation, a warm one, and a
//! rejected request with its `errorType`.

#[path = "../../../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::time::Duration;

use secret_loader::{SecretStore, SecretValue};
use secret_loader_lambda::Response;
use secret_loader_lambda::local_runtime::{LocalRuntime, Outcome};

const TIMEOUT: Duration = Duration::from_secs(60);

fn response(outcome: Outcome) -> Response {
    match outcome {
        Outcome::Response(body) => serde_json::from_str(&body).unwrap(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_binary_answers_cold_then_warm_invocations() {
    let id = common::unique_id("lambda");
    common::secretsmanager()
        .await
        .put(&id, &SecretValue::text(r#"{"token":"RUNTIME-CANARY"}"#))
        .await
        .unwrap();
    let url = common::secretsmanager_url();
    let stacks = serde_json::json!({
        "secretsmanager": url,
        "secretsmanager+memory": format!("{url}&memory_ttl=5m"),
        "broken": "vault://nowhere",
    })
    .to_string();
    let env = [
        ("SECRET_LOADER_BENCH_SECRET_ID", id.as_str()),
        ("SECRET_LOADER_BENCH_STACKS", stacks.as_str()),
    ];
    let mut runtime =
        LocalRuntime::start(Path::new(env!("CARGO_BIN_EXE_bootstrap")), &env).unwrap();

    let cold = response(runtime.invoke(r#"{"warm_reads": 3}"#, TIMEOUT).unwrap());
    assert!(
        runtime.init_duration().is_some(),
        "init is timed to the first /next"
    );
    let warm = response(runtime.invoke(r#"{"warm_reads": 2}"#, TIMEOUT).unwrap());
    let rejected = runtime.invoke(r#"{"warm_reads": 5000}"#, TIMEOUT).unwrap();
    let logs = runtime.stop();

    assert!(cold.cold && !warm.cold, "{cold:?} {warm:?}");
    let names: Vec<_> = cold.stacks.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["broken", "secretsmanager", "secretsmanager+memory"]);
    assert_eq!(cold.stacks[0].error.as_ref().unwrap().kind, "InvalidConfig");
    for stack in &cold.stacks[1..] {
        assert!(stack.error.is_none(), "{stack:?}");
        assert!(
            stack.init_ms.is_some() && stack.first_read_ms.is_some(),
            "{stack:?}"
        );
        assert_eq!(stack.warm.as_ref().unwrap().count, 3);
    }
    assert_eq!(
        cold.stacks[2].source.as_deref(),
        Some("memory(secretsmanager(us-east-1))")
    );
    for stack in &warm.stacks[1..] {
        assert!(
            stack.init_ms.is_none() && stack.first_read_ms.is_none(),
            "{stack:?}"
        );
        assert_eq!(stack.warm.as_ref().unwrap().count, 2);
    }
    match &rejected {
        Outcome::Error(body) => {
            let error: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(error["errorType"], "SecretLoader.InvalidRequest", "{body}");
        }
        other => panic!("{other:?}"),
    }
    // Metrics went out as EMF lines; the secret went nowhere.
    assert!(logs.contains(r#""Namespace":"SecretLoader""#), "{logs}");
    assert!(!logs.contains("RUNTIME-CANARY"));
    assert!(!format!("{cold:?}{warm:?}{rejected:?}").contains("RUNTIME-CANARY"));
}

/// A new process is a new execution environment: its first invocation is cold again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_process_is_a_cold_start() {
    let stacks = r#"{"broken": "vault://nowhere"}"#;
    let env = [
        ("SECRET_LOADER_BENCH_SECRET_ID", "any/id"),
        ("SECRET_LOADER_BENCH_STACKS", stacks),
    ];
    let bootstrap = Path::new(env!("CARGO_BIN_EXE_bootstrap"));
    for _ in 0..2 {
        let mut runtime = LocalRuntime::start(bootstrap, &env).unwrap();
        let first = response(runtime.invoke("{}", TIMEOUT).unwrap());
        assert!(first.cold && first.invocation == 1);
        assert!(runtime.init_duration().is_some());
        runtime.stop();
    }
}
