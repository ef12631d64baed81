//! The real `secret-loader-extension` binary as a Lambda extension under the local Runtime and
//! Extensions APIs, beside a Python function run by AWS's runtime interface client
//! (`awslambdaric`): the function reads its secret through the extension during its own INIT
//! and in every invocation, with the standard library only; botocore's own parsers read the
//! extension's answers as they read the services'.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use secret_loader::testing as library;
use secret_loader::{SecretStore, SecretValue};
use secret_loader_harness::{Environment, Outcome};

const CREDS: &str = r#"{"access_key":"AKIAPYTHONEXT","secret_key":"python/extension/secret"}"#;

/// The virtualenv's Python (boto3, botocore, awslambdaric), as `scripts/test` exports it.
fn python() -> PathBuf {
    PathBuf::from(std::env::var("SECRET_LOADER_PYTHON").expect(
        "SECRET_LOADER_PYTHON is not set: run the tests with scripts/test, which installs \
         awslambdaric beside the emulator",
    ))
}

fn python_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_function_reads_through_the_extension_during_init_and_each_invoke() {
    let port = library::free_port().to_string();
    // Twice on one port: a new execution environment after the last one shut down, as
    // Lambda's fixed port 2773 is in every environment.
    for _ in 0..2 {
        python_function_round(&port).await;
    }
}

async fn python_function_round(port: &str) {
    let port = port.to_owned();
    let id = library::unique_id("python-ext");
    library::secretsmanager()
        .await
        .put(&id, &SecretValue::text(CREDS))
        .await
        .unwrap();
    let environment = Environment::new(python())
        .args(["-m", "awslambdaric", "function.handler"])
        .dir(python_dir())
        .extension(env!("CARGO_BIN_EXE_secret-loader-extension"))
        .function_name("python-extension")
        .env("AWS_SESSION_TOKEN", common::TOKEN)
        .env("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", &port)
        .env("PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", "DEBUG")
        .env("SECRET_ID", id.as_str());
    let mut runtime = tokio::task::spawn_blocking(move || environment.start())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(runtime.registered_extensions(), ["secret-loader-extension"]);
    let mut answers = Vec::new();
    for _ in 0..2 {
        let (outcome, back) = tokio::task::spawn_blocking(move || {
            let outcome = runtime.invoke("{}", Duration::from_secs(60));
            (outcome, runtime)
        })
        .await
        .unwrap();
        runtime = back;
        match outcome {
            Ok(Outcome::Response(body)) => answers.push(body),
            other => panic!("{other:?}\n{}", runtime.take_logs()),
        }
    }
    for body in &answers {
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        for phase in ["init", "invoke"] {
            assert_eq!(
                body[phase]["access_key"], "AKIAPYTHONEXT",
                "{phase}: {body}"
            );
            assert_eq!(
                body[phase]["secret_key"], "python/extension/secret",
                "{phase}"
            );
        }
        assert!(body["read_ms"].as_f64().unwrap() > 0.0);
    }
    let (logs, exits) = tokio::task::spawn_blocking(move || {
        let logs = runtime.stop_in_place();
        (logs, runtime.extension_exits().to_vec())
    })
    .await
    .unwrap();
    assert_eq!(exits.len(), 1);
    let exit = &exits[0];
    assert!(exit.registered, "{exit:?}");
    assert!(
        exit.exited.is_some_and(|status| status.success()),
        "exited by itself, cleanly, within the 2 s budget: {exit:?}\n{logs}"
    );
    assert!(
        logs.contains("registered with the Extensions API"),
        "{logs}"
    );
    assert!(logs.contains("shutdown"), "{logs}");
    assert!(
        !logs.contains("AKIAPYTHONEXT") && !logs.contains("python/extension/secret"),
        "{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn botocore_parses_the_extension_s_answers_as_the_services() {
    let id = library::unique_id("botocore");
    library::secretsmanager()
        .await
        .put(&id, &SecretValue::text(CREDS))
        .await
        .unwrap();
    library::ssm()
        .await
        .put(&id, &SecretValue::text("parameter"))
        .await
        .unwrap();
    let running = secret_loader_extension::start(
        &common::settings(&[]),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .unwrap();
    let script = python_dir().join("botocore_check.py");
    let extension = format!("http://{}", running.address());
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python())
            .arg(script)
            .args([
                extension.as_str(),
                common::TOKEN,
                id.as_str(),
                &format!("/{id}"),
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    running.stop().await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["secretsmanager"], serde_json::json!({}), "{report}");
    assert_eq!(report["ssm"], serde_json::json!({}), "{report}");
    assert_eq!(
        report["checked"]["secretsmanager"]
            .as_array()
            .unwrap()
            .len(),
        6
    );
}

/// Lambda requires an extension to register under its own file name: a layer that installs
/// the binary as `extensions/my-secrets` registers as `my-secrets`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_extension_registers_under_its_own_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let renamed = dir.path().join("my-secrets");
    std::fs::copy(env!("CARGO_BIN_EXE_secret-loader-extension"), &renamed).unwrap();
    let environment = Environment::new(python())
        .args(["-m", "awslambdaric", "function.handler"])
        .dir(python_dir())
        .extension(&renamed)
        .function_name("renamed-extension")
        .env("AWS_SESSION_TOKEN", common::TOKEN)
        .env(
            "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT",
            library::free_port().to_string(),
        )
        .env("SECRET_ID", "unused");
    let mut runtime = tokio::task::spawn_blocking(move || environment.start())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(runtime.registered_extensions(), ["my-secrets"]);
    tokio::task::spawn_blocking(move || runtime.stop_in_place())
        .await
        .unwrap();
}
