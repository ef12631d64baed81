//! AWS's own Secrets Manager Agent (`aws_secretsmanager_agent` 2.1.0 from crates.io, installed
//! pinned by `scripts/test`, named by `SECRET_LOADER_AGENT`) as the oracle of `serve`: both run
//! against the same emulator and get the same requests (found, not found, a version id, a
//! stage, both, refreshNow, binary, no token, a wrong token, `X-Forwarded-For`, POST, bad
//! parameters, ping, no such route), and their statuses and bodies are compared field by
//! field. Where ours answers otherwise on purpose, the case says so and docs/extension.md has
//! the row.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Client, TOKEN, encode, settings};
use secret_loader::testing as library;
use secret_loader_extension::TOKEN_HEADER;
use serde_json::Value;

/// The agent binary `scripts/test` installed.
fn agent_binary() -> PathBuf {
    PathBuf::from(std::env::var("SECRET_LOADER_AGENT").expect(
        "SECRET_LOADER_AGENT is not set: run the tests with scripts/test, which installs AWS's \
         Secrets Manager Agent",
    ))
}

/// The agent's process and the directory it runs in (removed after it).
struct Agent(Child, #[allow(dead_code)] tempfile::TempDir);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The agent on a free port, against the emulator the environment names, with our token.
async fn start_agent() -> (Agent, SocketAddr) {
    let dir = tempfile::tempdir().unwrap();
    let port = library::free_port();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "http_port = {port}\nttl_seconds = 300\ncache_size = 1000\nlog_level = \"NONE\"\n\
             log_to_file = false\nvalidate_credentials = false\nregion = \"us-east-1\"\n"
        ),
    )
    .unwrap();
    // Killed and waited for when the `Agent` is dropped.
    let agent = Agent(
        Command::new(agent_binary())
            .arg("--config")
            .arg(&config)
            .current_dir(dir.path())
            .env("AWS_TOKEN", TOKEN)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the agent"),
        dir,
    );
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(address).await.is_ok() {
            return (agent, address);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the agent did not listen on {address}");
}

#[derive(Debug)]
struct Case {
    what: &'static str,
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
}

fn case(what: &'static str, path: String) -> Case {
    Case {
        what,
        method: "GET",
        path,
        headers: vec![(TOKEN_HEADER, TOKEN.to_owned())],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_what_aws_s_agent_answers() {
    let sm = library::raw_secretsmanager().await;
    let id = library::unique_id("oracle");
    sm.create_secret()
        .name(id.as_str())
        .secret_string("first-value")
        .send()
        .await
        .unwrap();
    let current = sm
        .put_secret_value()
        .secret_id(id.as_str())
        .secret_string("second-value")
        .send()
        .await
        .unwrap()
        .version_id
        .unwrap();
    let binary = library::unique_id("oracle-binary");
    sm.create_secret()
        .name(binary.as_str())
        .secret_binary(aws_sdk_secretsmanager::primitives::Blob::new(vec![
            0u8, 159, 255, 7,
        ]))
        .send()
        .await
        .unwrap();

    let (_agent, agent) = start_agent().await;
    let ours =
        secret_loader_extension::start(&settings(&[]), SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
    let get = |id: &str| format!("/secretsmanager/get?secretId={}", encode(id));
    let mut cases = vec![
        case("found", get(id.as_str())),
        case("the agent's path route", format!("/v1/{id}")),
        case("binary", get(binary.as_str())),
        case("not found", get("no/such/secret-anywhere")),
        case(
            "version id",
            format!("{}&versionId={current}", get(id.as_str())),
        ),
        case(
            "stage",
            format!("{}&versionStage=AWSPREVIOUS", get(id.as_str())),
        ),
        case(
            "both, naming one version",
            format!(
                "{}&versionId={current}&versionStage=AWSCURRENT",
                get(id.as_str())
            ),
        ),
        case(
            "both, naming two versions",
            format!(
                "{}&versionId={current}&versionStage=AWSPREVIOUS",
                get(id.as_str())
            ),
        ),
        case(
            "refreshNow",
            format!("{}&refreshNow=true", get(id.as_str())),
        ),
        case(
            "bad refreshNow",
            format!("{}&refreshNow=maybe", get(id.as_str())),
        ),
        case("unknown parameter", format!("{}&abc=1", get(id.as_str()))),
        case("no secret id", "/secretsmanager/get".to_owned()),
        case("ping", "/ping".to_owned()),
        case("no such route", "/nothing/here".to_owned()),
    ];
    let mut no_token = case("no token", get(id.as_str()));
    no_token.headers.clear();
    let mut wrong = case("wrong token", get(id.as_str()));
    wrong.headers = vec![(TOKEN_HEADER, "not-the-token".to_owned())];
    let mut forwarded = case("X-Forwarded-For", get(id.as_str()));
    forwarded
        .headers
        .push(("X-Forwarded-For", "10.0.0.1".to_owned()));
    let mut post = case("POST", get(id.as_str()));
    post.method = "POST";
    cases.extend([no_token, wrong, forwarded, post]);

    let mut differences = Vec::new();
    for case in &cases {
        let headers: Vec<(&str, &str)> =
            case.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let theirs = Client::connect(agent)
            .await
            .request(case.method, &case.path, &headers)
            .await;
        let mine = Client::connect(ours.address())
            .await
            .request(case.method, &case.path, &headers)
            .await;
        if theirs.status != mine.status {
            differences.push(format!(
                "{}: status {} (agent) vs {} (ours): {} | {}",
                case.what, theirs.status, mine.status, theirs.body, mine.body
            ));
            continue;
        }
        let (a, b) = (
            serde_json::from_str::<Value>(&theirs.body),
            serde_json::from_str::<Value>(&mine.body),
        );
        match (a, b) {
            (Ok(a), Ok(b)) if theirs.status == 200 => {
                if a != b {
                    differences.push(format!("{}: body {a} (agent) vs {b} (ours)", case.what));
                }
            }
            (Ok(a), Ok(b)) => {
                if a["__type"] != b["__type"] {
                    differences.push(format!(
                        "{}: error {} (agent) vs {} (ours)",
                        case.what, a["__type"], b["__type"]
                    ));
                }
            }
            // The agent's own checks answer a line of text; ours are JSON: the status is
            // what a client can act on (docs/extension.md).
            (Err(_), _) if theirs.status != 200 => {}
            _ if theirs.body == mine.body => {}
            _ => differences.push(format!(
                "{}: body {:?} (agent) vs {:?} (ours)",
                case.what, theirs.body, mine.body
            )),
        }
    }
    ours.stop().await;
    assert!(
        differences.is_empty(),
        "{} of {} requests answered differently:\n  {}",
        differences.len(),
        cases.len(),
        differences.join("\n  ")
    );
}
