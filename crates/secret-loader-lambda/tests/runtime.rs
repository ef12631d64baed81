//! The real `bootstrap` binary under a Lambda Runtime API endpoint on loopback (a few routes
//! served here), reading from the AWS emulator: a cold invocation, warm ones, and a rejected
//! request with its `errorType`.

#[path = "../../../tests/common/mod.rs"]
mod common;

use std::collections::VecDeque;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use secret_loader::{SecretStore, SecretValue};
use secret_loader_lambda::Response;

/// What the runtime sent back for one invocation.
#[derive(Debug)]
enum Outcome {
    Response(String),
    Error(String),
}

/// Serves `events` one per `/next`, reports each `/response` or `/error`, and the time of the
/// first `/next` (the end of the function's init, as Lambda's REPORT line counts it).
fn runtime_api(events: Vec<String>) -> (String, mpsc::Receiver<(Instant, Option<Outcome>)>) {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let address = server.server_addr().to_ip().unwrap().to_string();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut events: VecDeque<String> = events.into();
        let mut counter = 0;
        for mut request in server.incoming_requests() {
            let url = request.url().to_owned();
            if url.ends_with("/runtime/invocation/next") {
                let _ = tx.send((Instant::now(), None));
                let Some(event) = events.pop_front() else {
                    // No more work: leave the function waiting, as Lambda does between events.
                    std::mem::forget(request);
                    continue;
                };
                counter += 1;
                let deadline = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_millis()
                    + 60_000;
                let header = |k: &str, v: String| tiny_http::Header::from_bytes(k, v).unwrap();
                let response = tiny_http::Response::from_string(event)
                    .with_header(header(
                        "Lambda-Runtime-Aws-Request-Id",
                        format!("req-{counter}"),
                    ))
                    .with_header(header("Lambda-Runtime-Deadline-Ms", deadline.to_string()))
                    .with_header(header(
                        "Lambda-Runtime-Invoked-Function-Arn",
                        "arn:aws:lambda:us-east-1:123456789012:function:comparison".into(),
                    ));
                let _ = request.respond(response);
            } else {
                let mut body = String::new();
                request.as_reader().read_to_string(&mut body).unwrap();
                let outcome = if url.ends_with("/response") {
                    Outcome::Response(body)
                } else {
                    Outcome::Error(body)
                };
                let _ = request.respond(tiny_http::Response::empty(202));
                let _ = tx.send((Instant::now(), Some(outcome)));
            }
        }
    });
    (address, rx)
}

fn spawn_bootstrap(api: &str, secret_id: &str, stacks: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_bootstrap"))
        .env("AWS_LAMBDA_RUNTIME_API", api)
        .env("AWS_LAMBDA_FUNCTION_NAME", "comparison")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("SECRET_LOADER_BENCH_SECRET_ID", secret_id)
        .env("SECRET_LOADER_BENCH_STACKS", stacks)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
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
    let events = vec![
        r#"{"warm_reads": 3}"#.to_owned(),
        r#"{"warm_reads": 2}"#.to_owned(),
        r#"{"warm_reads": 5000}"#.to_owned(),
    ];
    let (api, rx) = runtime_api(events);
    let spawned = Instant::now();
    let mut child = spawn_bootstrap(&api, id.as_str(), &stacks);

    let mut outcomes = Vec::new();
    let mut init = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    while outcomes.len() < 3 {
        let wait = deadline.saturating_duration_since(Instant::now());
        let (at, outcome) = rx
            .recv_timeout(wait)
            .expect("the function answered too few invocations in 60 s");
        match outcome {
            None => {
                init.get_or_insert(at.duration_since(spawned));
            }
            Some(outcome) => outcomes.push(outcome),
        }
    }
    child.kill().unwrap();
    let output = child.wait_with_output().unwrap();
    let logs = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(init.is_some(), "no /next request");

    let responses: Vec<Response> = outcomes[..2]
        .iter()
        .map(|o| match o {
            Outcome::Response(body) => serde_json::from_str(body).unwrap(),
            other => panic!("{other:?}\n{logs}"),
        })
        .collect();
    let (cold, warm) = (&responses[0], &responses[1]);
    assert!(cold.cold && !warm.cold, "{responses:?}");
    let names: Vec<_> = cold.stacks.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["broken", "secretsmanager", "secretsmanager+memory"]);
    let broken = &cold.stacks[0];
    assert_eq!(
        broken.error.as_ref().unwrap().kind,
        "InvalidConfig",
        "{broken:?}"
    );
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
    match &outcomes[2] {
        Outcome::Error(body) => {
            let error: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(error["errorType"], "SecretLoader.InvalidRequest", "{body}");
        }
        other => panic!("{other:?}"),
    }
    // Metrics went out as EMF lines; the secret went nowhere.
    assert!(logs.contains(r#""Namespace":"SecretLoader""#), "{logs}");
    assert!(!logs.contains("RUNTIME-CANARY"));
    assert!(
        outcomes
            .iter()
            .all(|o| !format!("{o:?}").contains("RUNTIME-CANARY"))
    );
}
