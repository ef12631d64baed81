//! The Lambda service API on loopback, for one function run by [`LocalRuntime`]: enough of
//! it for `secret-loader bench lambda` (and its tests) to drive the real `bootstrap` the way
//! it drives a deployed function.
//!
//! * `GET  /2015-03-31/functions/{name}/configuration`: the function's configuration,
//!   environment included.
//! * `PUT  /2015-03-31/functions/{name}/configuration`: a new environment. As on AWS the
//!   update is asynchronous (`LastUpdateStatus` is `InProgress` for [`UPDATE_DELAY`]) and the
//!   next invocation starts a new execution environment (a cold start).
//! * `POST /2015-03-31/functions/{name}/invocations`: `RequestResponse` invocations, with
//!   `X-Amz-Log-Type: Tail` answered by the last 4 KB of the log, ending in a `REPORT` line
//!   (`Duration`, `Billed Duration`, `Memory Size`, `Max Memory Used`, and `Init Duration` on
//!   a cold start). A function error sets `X-Amz-Function-Error`.
//!
//! Each execution environment gets an empty temporary directory as its `TMPDIR`, as each
//! Lambda environment gets an empty `/tmp`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::local_runtime::{Environment, LocalRuntime, Outcome};

/// How long a configuration update stays `InProgress`.
pub const UPDATE_DELAY: Duration = Duration::from_millis(300);
/// The memory size a function reports unless its [`Environment`] sets another (memory is not
/// enforced locally; its CPU share can be, [`Environment::enforce_cpu_share`]).
pub const MEMORY_MB: u32 = 512;
/// How long one invocation may take unless the configuration sets another (`Timeout`).
pub const TIMEOUT: Duration = Duration::from_secs(120);
const LOG_TAIL_BYTES: usize = 4096;

/// One function behind a loopback Lambda API endpoint.
pub struct LocalLambda {
    endpoint: String,
    stop: Arc<AtomicBool>,
    server: Option<JoinHandle<()>>,
    view: Arc<Mutex<View>>,
}

/// What the test side sees of the function, and may change behind the API's back.
#[derive(Default)]
struct View {
    /// The environment as last configured.
    environment: BTreeMap<String, String>,
    /// When set, `GetFunctionConfiguration` answers `Environment.Error` with this
    /// `(ErrorCode, Message)` instead of the variables, as Lambda does when the caller may not
    /// decrypt them (a customer-managed KMS key).
    environment_error: Option<(String, String)>,
}

impl LocalLambda {
    /// Serves `function_name`, run from `bootstrap` with `environment`, on 127.0.0.1.
    ///
    /// # Errors
    /// When the endpoint can't listen.
    pub fn start(
        bootstrap: &Path,
        function_name: &str,
        environment: BTreeMap<String, String>,
    ) -> Result<Self, String> {
        Self::start_runtime(Environment::new(bootstrap), function_name, environment)
    }

    /// Serves `function_name` run as `runtime` says (any runtime command, its extensions),
    /// with `environment` as its configured variables, on 127.0.0.1.
    ///
    /// # Errors
    /// When the endpoint can't listen.
    pub fn start_runtime(
        runtime: Environment,
        function_name: &str,
        environment: BTreeMap<String, String>,
    ) -> Result<Self, String> {
        let server = tiny_http::Server::http("127.0.0.1:0").map_err(|e| e.to_string())?;
        let address = server
            .server_addr()
            .to_ip()
            .ok_or("the endpoint has no IP address")?;
        let stop = Arc::new(AtomicBool::new(false));
        let view = Arc::new(Mutex::new(View {
            environment: environment.clone(),
            environment_error: None,
        }));
        let mut function = Function {
            view: view.clone(),
            name: function_name.to_owned(),
            template: runtime,
            environment,
            updated_at: None,
            timeout: TIMEOUT,
            environment_dir: None,
            runtime: None,
            invocations: 0,
        };
        let serve = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match server.recv_timeout(Duration::from_millis(50)) {
                        Ok(Some(request)) => function.handle(request),
                        Ok(None) => {}
                        Err(_) => break,
                    }
                }
                function.retire();
            })
        };
        Ok(Self {
            endpoint: format!("http://{address}"),
            stop,
            server: Some(serve),
            view,
        })
    }

    /// The function's environment variables as last configured.
    pub fn environment(&self) -> BTreeMap<String, String> {
        self.view().environment.clone()
    }

    /// From now on `GetFunctionConfiguration` can't show the variables: it answers
    /// `Environment.Error` (`error_code`, `message`), as Lambda does for a caller that may not
    /// decrypt them. Updates still work.
    pub fn hide_environment(&self, error_code: &str, message: &str) {
        self.view().environment_error = Some((error_code.into(), message.into()));
    }

    fn view(&self) -> std::sync::MutexGuard<'_, View> {
        self.view.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The endpoint URL, for the SDK's `endpoint_url`.
    pub fn endpoint_url(&self) -> &str {
        &self.endpoint
    }

    /// Stops the endpoint and the function.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(server) = self.server.take() {
            let _ = server.join();
        }
    }
}

impl Drop for LocalLambda {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct Function {
    view: Arc<Mutex<View>>,
    name: String,
    /// How an environment is started: the runtime command and its extensions.
    template: Environment,
    environment: BTreeMap<String, String>,
    updated_at: Option<Instant>,
    /// How long an invocation may run before its environment is stopped.
    timeout: Duration,
    environment_dir: Option<tempfile::TempDir>,
    runtime: Option<LocalRuntime>,
    invocations: u64,
}

struct Answer {
    status: u16,
    body: String,
    headers: Vec<(&'static str, String)>,
}

impl Answer {
    fn json(status: u16, body: &Value) -> Self {
        Self {
            status,
            body: body.to_string(),
            headers: Vec::new(),
        }
    }

    fn error(status: u16, error_type: &'static str, message: &str) -> Self {
        Self {
            status,
            body: json!({ "Type": "User", "message": message }).to_string(),
            headers: vec![("x-amzn-ErrorType", error_type.into())],
        }
    }
}

impl Function {
    fn handle(&mut self, mut request: tiny_http::Request) {
        let mut body = String::new();
        let _ = request.as_reader().read_to_string(&mut body);
        let answer = self.route(request.method(), request.url(), request.headers(), &body);
        let mut response =
            tiny_http::Response::from_string(answer.body).with_status_code(answer.status);
        let content_type = ("Content-Type", "application/json".to_owned());
        for (name, value) in answer.headers.into_iter().chain([content_type]) {
            if let Ok(header) = tiny_http::Header::from_bytes(name, value) {
                response.add_header(header);
            }
        }
        let _ = request.respond(response);
    }

    fn route(
        &mut self,
        method: &tiny_http::Method,
        url: &str,
        headers: &[tiny_http::Header],
        body: &str,
    ) -> Answer {
        let path = url.split('?').next().unwrap_or(url);
        let Some(rest) = path.strip_prefix("/2015-03-31/functions/") else {
            return Answer::error(404, "ResourceNotFoundException", "no such route");
        };
        let (name, action) = rest.split_once('/').unwrap_or((rest, ""));
        let name = percent_decode(name);
        if name != self.name && !name.ends_with(&format!(":function:{}", self.name)) {
            return Answer::error(
                404,
                "ResourceNotFoundException",
                &format!("Function not found: {name}"),
            );
        }
        match (method, action) {
            (tiny_http::Method::Get, "configuration") => Answer::json(200, &self.configuration()),
            (tiny_http::Method::Put, "configuration") => self.update(body),
            (tiny_http::Method::Post, "invocations") => self.invoke(headers, body),
            _ => Answer::error(404, "ResourceNotFoundException", "no such route"),
        }
    }

    /// Whether the last configuration update is still being applied.
    fn update_in_progress(&self) -> bool {
        self.updated_at
            .is_some_and(|at| at.elapsed() < UPDATE_DELAY)
    }

    fn configuration(&self) -> Value {
        let in_progress = self.update_in_progress();
        json!({
            "FunctionName": self.name,
            "FunctionArn": format!("arn:aws:lambda:us-east-1:000000000000:function:{}", self.name),
            "Runtime": "provided.al2023",
            "Handler": "bootstrap",
            "MemorySize": self.template.memory_mb(),
            "Timeout": self.timeout.as_secs(),
            "Architectures": [std::env::consts::ARCH],
            "Version": "$LATEST",
            "State": "Active",
            "LastUpdateStatus": if in_progress { "InProgress" } else { "Successful" },
            "Environment": match &self.view.lock().unwrap_or_else(|e| e.into_inner()).environment_error {
                None => json!({ "Variables": self.environment }),
                Some((code, message)) => json!({ "Error": { "ErrorCode": code, "Message": message } }),
            },
        })
    }

    fn update(&mut self, body: &str) -> Answer {
        let request: Value = match serde_json::from_str(body) {
            Ok(value) => value,
            Err(err) => {
                return Answer::error(400, "InvalidParameterValueException", &err.to_string());
            }
        };
        if let Some(timeout) = request.get("Timeout") {
            match timeout.as_u64().filter(|s| (1..=900).contains(s)) {
                Some(seconds) => self.timeout = Duration::from_secs(seconds),
                None => {
                    return Answer::error(
                        400,
                        "InvalidParameterValueException",
                        "Timeout must be a number of seconds from 1 to 900",
                    );
                }
            }
        }
        if let Some(variables) = request.pointer("/Environment/Variables") {
            match serde_json::from_value(variables.clone()) {
                Ok(environment) => {
                    self.environment = environment;
                    let mut view = self.view.lock().unwrap_or_else(|e| e.into_inner());
                    view.environment = self.environment.clone();
                }
                Err(err) => {
                    return Answer::error(400, "InvalidParameterValueException", &err.to_string());
                }
            }
        }
        // New configuration, new execution environments.
        self.retire();
        self.updated_at = Some(Instant::now());
        Answer::json(200, &self.configuration())
    }

    fn retire(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.stop();
        }
        self.environment_dir = None;
    }

    fn invoke(&mut self, headers: &[tiny_http::Header], body: &str) -> Answer {
        let header = |name: &str| {
            headers
                .iter()
                .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
                .map(|h| h.value.as_str().to_owned())
        };
        if header("X-Amz-Invocation-Type").is_some_and(|t| t != "RequestResponse") {
            return Answer::error(
                400,
                "InvalidParameterValueException",
                "only RequestResponse",
            );
        }
        if self.update_in_progress() {
            return Answer::error(
                409,
                "ResourceConflictException",
                "The operation cannot be performed at this time. An update is in progress.",
            );
        }
        let cold = self.runtime.as_mut().is_none_or(|r| !r.is_running());
        if cold && let Err(message) = self.start_environment() {
            return Answer::error(500, "ServiceException", &message);
        }
        let Some(runtime) = self.runtime.as_mut() else {
            return Answer::error(500, "ServiceException", "no execution environment");
        };
        self.invocations += 1;
        let request_id = format!("local-{:08}", self.invocations);
        let started = Instant::now();
        let outcome = runtime.invoke(body, self.timeout);
        let duration = started.elapsed();
        let init = cold.then(|| runtime.init_duration()).flatten();
        let max_memory = runtime.max_memory_mib();
        // No answer and still running: it did not answer in time. Lambda stops such an
        // environment, so a late answer can never be taken for the next invocation's.
        let timed_out = outcome.is_err() && runtime.is_running();
        let mut answer = match outcome {
            Ok(Outcome::Response(payload)) => Answer {
                status: 200,
                body: payload,
                headers: Vec::new(),
            },
            Ok(Outcome::Error(payload)) => Answer {
                status: 200,
                body: payload,
                headers: vec![("X-Amz-Function-Error", "Unhandled".into())],
            },
            Err(_) if timed_out => Answer {
                status: 200,
                body: json!({
                    "errorType": "Sandbox.Timedout",
                    "errorMessage": format!("Task timed out after {:.2} seconds", self.timeout.as_secs_f64()),
                })
                .to_string(),
                headers: vec![("X-Amz-Function-Error", "Unhandled".into())],
            },
            Err(message) => Answer {
                status: 200,
                body: json!({ "errorType": "Runtime.ExitError", "errorMessage": message })
                    .to_string(),
                headers: vec![("X-Amz-Function-Error", "Unhandled".into())],
            },
        };
        let logs = runtime.take_logs();
        if timed_out || !runtime.is_running() {
            self.retire();
        }
        if header("X-Amz-Log-Type").as_deref() == Some("Tail") {
            let log = format!(
                "START RequestId: {request_id} Version: $LATEST\n{logs}END RequestId: {request_id}\n{}\n",
                report_line(
                    &request_id,
                    duration,
                    self.template.memory_mb(),
                    max_memory,
                    init
                )
            );
            let tail = tail(&log, LOG_TAIL_BYTES);
            answer
                .headers
                .push(("X-Amz-Log-Result", aws_smithy_types::base64::encode(tail)));
        }
        answer
            .headers
            .push(("X-Amz-Executed-Version", "$LATEST".into()));
        answer
    }

    fn start_environment(&mut self) -> Result<(), String> {
        self.retire();
        let dir = tempfile::Builder::new()
            .prefix("lambda-tmp-")
            .tempdir()
            .map_err(|e| format!("cannot create the environment's TMPDIR: {e}"))?;
        let tmp = dir.path().to_string_lossy().into_owned();
        // Lambda names the function to its code (the console's encryption helpers bind
        // ciphertexts to it).
        let environment = self
            .environment
            .iter()
            .fold(self.template.clone(), |environment, (k, v)| {
                environment.env(k.as_str(), v.as_str())
            })
            .env("TMPDIR", tmp)
            .function_name(self.name.clone());
        self.runtime = Some(environment.start()?);
        self.environment_dir = Some(dir);
        Ok(())
    }
}

/// Lambda's `REPORT` line, tab-separated as Lambda writes it.
fn report_line(
    request_id: &str,
    duration: Duration,
    memory_mb: u32,
    max_memory_mib: Option<u64>,
    init: Option<Duration>,
) -> String {
    let ms = duration.as_secs_f64() * 1000.0;
    let mut line = format!(
        "REPORT RequestId: {request_id}\tDuration: {ms:.2} ms\tBilled Duration: {} ms\tMemory Size: {memory_mb} MB\tMax Memory Used: {} MB\t",
        (ms + init.map_or(0.0, |i| i.as_secs_f64() * 1000.0)).ceil() as u64,
        max_memory_mib.unwrap_or(0),
    );
    if let Some(init) = init {
        line.push_str(&format!(
            "Init Duration: {:.2} ms\t",
            init.as_secs_f64() * 1000.0
        ));
    }
    line
}

/// The last `max` bytes of `log`, cut at a character boundary.
fn tail(log: &str, max: usize) -> &str {
    let mut start = log.len().saturating_sub(max);
    while !log.is_char_boundary(start) {
        start += 1;
    }
    &log[start..]
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A function (Python, the Runtime API over `urllib`) that sleeps `delay` seconds, then
    /// answers the event's `tag`.
    const SLOW_FUNCTION: &str = r#"#!/usr/bin/env python3
import json, os, time, urllib.request
api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime/invocation/"
while True:
    with urllib.request.urlopen(api + "next") as r:
        request_id = r.headers["Lambda-Runtime-Aws-Request-Id"]
        event = json.loads(r.read())
    time.sleep(event["delay"])
    answer = json.dumps({"tag": event["tag"]}).encode()
    urllib.request.urlopen(urllib.request.Request(api + request_id + "/response", data=answer, method="POST")).read()
"#;

    #[test]
    fn a_timed_out_environment_is_stopped_so_its_late_answer_is_never_the_next_ones() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let bootstrap = dir.path().join("bootstrap");
        std::fs::write(&bootstrap, SLOW_FUNCTION).unwrap();
        std::fs::set_permissions(&bootstrap, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut function = Function {
            view: Arc::default(),
            name: "slow".into(),
            template: Environment::new(bootstrap),
            environment: BTreeMap::new(),
            updated_at: None,
            timeout: TIMEOUT,
            environment_dir: None,
            runtime: None,
            invocations: 0,
        };
        // Generous for the second (cold) invocation's Python start-up on a busy machine.
        let updated = function.update(r#"{"Timeout": 3}"#);
        assert_eq!(updated.status, 200, "{}", updated.body);
        function.updated_at = None;
        assert_eq!(function.configuration()["Timeout"], 3);

        let late = function.invoke(&[], r#"{"delay": 6, "tag": "first"}"#);
        assert!(late.body.contains("Sandbox.Timedout"), "{}", late.body);
        assert!(
            late.body.contains("Task timed out after 3.00 seconds"),
            "{}",
            late.body
        );
        assert!(function.runtime.is_none(), "the environment was stopped");
        let next = function.invoke(&[], r#"{"delay": 0, "tag": "second"}"#);
        assert_eq!(next.status, 200);
        assert_eq!(
            next.body, r#"{"tag": "second"}"#,
            "its own answer, not the late one"
        );
        function.retire();
        assert!(
            function
                .update(r#"{"Timeout": 0}"#)
                .body
                .contains("from 1 to 900")
        );
    }

    #[test]
    fn report_lines_look_like_lambdas() {
        let cold = report_line(
            "r1",
            Duration::from_micros(12_345),
            MEMORY_MB,
            Some(31),
            Some(Duration::from_micros(80_500)),
        );
        assert_eq!(
            cold,
            "REPORT RequestId: r1\tDuration: 12.35 ms\tBilled Duration: 93 ms\tMemory Size: 512 MB\tMax Memory Used: 31 MB\tInit Duration: 80.50 ms\t"
        );
        let warm = report_line("r2", Duration::from_millis(2), 128, Some(31), None);
        assert!(warm.contains("Memory Size: 128 MB"), "{warm}");
        assert!(!warm.contains("Init Duration"), "{warm}");
    }

    #[test]
    fn tails_cut_at_character_boundaries() {
        assert_eq!(tail("abcdef", 3), "def");
        assert_eq!(tail("ab", 3), "ab");
        assert_eq!(tail("aé", 1), "");
    }

    #[test]
    fn names_are_percent_decoded() {
        assert_eq!(
            percent_decode("arn%3Aaws%3Alambda%3Aus-east-1%3A1%3Afunction%3Af"),
            "arn:aws:lambda:us-east-1:1:function:f"
        );
        assert_eq!(percent_decode("bad%zz"), "bad%zz");
    }
}
