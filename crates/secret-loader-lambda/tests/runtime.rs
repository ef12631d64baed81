//! The real `bootstrap` binary under the loopback Runtime API endpoint
//! ([`LocalRuntime`]), reading from the AWS emulator: a cold invocation, a warm one, and a
//! rejected request with its `errorType`.

use secret_loader::testing as common;

use std::path::Path;
use std::time::Duration;

use secret_loader::SecretSource;
use secret_loader::comparison::Calls;
use secret_loader::comparison::Response;
use secret_loader_harness::{LocalRuntime, Outcome};

const TIMEOUT: Duration = Duration::from_secs(60);

/// The real `bootstrap` reading `id` through `stacks` (JSON), under a new runtime.
fn start(id: &str, stacks: &str) -> LocalRuntime {
    let env = [
        ("SECRET_LOADER_BENCH_SECRET_ID", id),
        ("SECRET_LOADER_BENCH_STACKS", stacks),
    ];
    LocalRuntime::start(Path::new(env!("CARGO_BIN_EXE_bootstrap")), &env).unwrap()
}

fn sm_calls(n: u64) -> Calls {
    Calls::from([("secretsmanager:GetSecretValue".to_owned(), n)])
}

fn response(outcome: Outcome) -> Response {
    match outcome {
        Outcome::Response(body) => serde_json::from_str(&body).unwrap(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_binary_answers_cold_then_warm_invocations() {
    let id = common::secretsmanager_secret("lambda", r#"{"token":"RUNTIME-CANARY"}"#).await;
    let url = common::secretsmanager_url();
    let stacks = serde_json::json!({
        "secretsmanager": url,
        "secretsmanager+memory": format!("{url}&memory_ttl=5m"),
        "broken": "vault://nowhere",
    })
    .to_string();
    let mut runtime = start(id.as_str(), &stacks);

    let cold = response(runtime.invoke(r#"{"warm_reads": 3}"#, TIMEOUT).unwrap());
    assert!(
        runtime.init_duration().is_some(),
        "init is timed to the first /next"
    );
    let warm = response(runtime.invoke(r#"{"warm_reads": 2}"#, TIMEOUT).unwrap());
    let rejected = runtime.invoke(r#"{"warm_reads": 5000}"#, TIMEOUT).unwrap();
    let logs = runtime.stop();

    assert!(cold.cold && !warm.cold, "{cold:?} {warm:?}");
    // The process's CPU time to the end of INIT, in the cold answer only.
    assert!(cold.init_cpu_ms.is_some_and(|ms| ms > 0.0), "{cold:?}");
    assert_eq!(warm.init_cpu_ms, None);
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
        // CPU time beside each wall time.
        for cpu in [
            stack.init_cpu_ms,
            stack.first_read_cpu_ms,
            stack.warm_cpu_ms,
        ] {
            assert!(cpu.is_some_and(|ms| ms >= 0.0), "{stack:?}");
        }
        // Calls are counted on the wire: building a Secrets Manager stack calls nothing,
        // its first read is one GetSecretValue.
        assert_eq!(stack.init_calls, Some(Calls::new()), "{stack:?}");
        assert_eq!(stack.first_read_calls, Some(sm_calls(1)), "{stack:?}");
    }
    // Bare: one call per read. Behind the memory cache: none.
    assert_eq!(cold.stacks[1].warm_calls, sm_calls(3));
    assert_eq!(cold.stacks[2].warm_calls, Calls::new());
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
        assert_eq!(stack.init_calls, None);
    }
    assert_eq!(warm.stacks[1].warm_calls, sm_calls(2));
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

/// A copy request seeds one backend from another inside the function (how a deployment
/// puts the secret on EFS); it is not a measured invocation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_request_seeds_one_stack_from_another() {
    let value = r#"{"token":"COPY-CANARY"}"#;
    let id = common::secretsmanager_secret("lambda-copy", value).await;
    let key = common::kms_key().await;
    let root = tempfile::tempdir().unwrap();
    let aws = format!(
        "region=us-east-1&endpoint_url={}",
        common::emulator_endpoint()
    );
    let stacks = serde_json::json!({
        "secretsmanager": common::secretsmanager_url(),
        "file+kms": format!("file+kms://{}?kms_key_id={key}&{aws}", root.path().display()),
    })
    .to_string();
    let mut runtime = start(id.as_str(), &stacks);
    let copy = r#"{"copy": {"from": "secretsmanager", "to": "file+kms"}}"#;
    let copied = response(runtime.invoke(copy, TIMEOUT).unwrap());
    let unknown = runtime
        .invoke(
            r#"{"copy": {"from": "secretsmanager", "to": "nowhere"}}"#,
            TIMEOUT,
        )
        .unwrap();
    let measured = response(runtime.invoke(r#"{"warm_reads": 1}"#, TIMEOUT).unwrap());
    let logs = runtime.stop();

    let done = copied.copied.unwrap();
    assert!(done.created && copied.stacks.is_empty());
    // The copy did not use up the environment's cold start.
    assert!(measured.cold, "{measured:?}");
    assert!(
        measured.stacks.iter().all(|s| s.error.is_none()),
        "{measured:?}"
    );
    let on_disk = common::file_kms(root.path(), &key)
        .await
        .get(&id, &secret_loader::VersionSelector::Current)
        .await
        .unwrap();
    assert_eq!(on_disk.value().expose_bytes(), value.as_bytes());
    match unknown {
        Outcome::Error(body) => assert!(body.contains("SecretLoader.InvalidRequest"), "{body}"),
        other => panic!("{other:?}"),
    }
    assert!(!logs.contains("COPY-CANARY"), "{logs}");
}
