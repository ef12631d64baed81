//! A Lambda Runtime API endpoint on loopback that runs the real `bootstrap` binary, so the
//! comparison runs (and is tested) without AWS: the process is the execution environment,
//! a new process is a cold start, and init is timed as Lambda's `REPORT` line does it, from
//! spawn to the function's first `GET /runtime/invocation/next`.
//!
//! Served routes: `/2018-06-01/runtime/invocation/next`, `.../{id}/response`,
//! `.../{id}/error` and `/2018-06-01/runtime/init/error`.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The function's response body.
    Response(String),
    /// The error document the runtime posted (`errorType`, `errorMessage`).
    Error(String),
}

/// One `bootstrap` process under its own Runtime API endpoint.
pub struct LocalRuntime {
    events: Option<Sender<String>>,
    outcomes: Receiver<Outcome>,
    first_next: Arc<Mutex<Option<Instant>>>,
    spawned: Instant,
    stop: Arc<AtomicBool>,
    server: Option<JoinHandle<()>>,
    child: Option<Child>,
    logs: Arc<Mutex<String>>,
    logs_taken: usize,
    readers: Vec<JoinHandle<()>>,
}

impl LocalRuntime {
    /// Starts an endpoint on 127.0.0.1 and spawns `bootstrap` against it, with the variables
    /// Lambda sets (`AWS_LAMBDA_RUNTIME_API`, function name, memory, version) and `env`.
    ///
    /// # Errors
    /// When the endpoint can't listen or the binary can't be started.
    pub fn start(bootstrap: &Path, env: &[(&str, &str)]) -> Result<Self, String> {
        let server = tiny_http::Server::http("127.0.0.1:0").map_err(|e| e.to_string())?;
        let address = server
            .server_addr()
            .to_ip()
            .ok_or("the endpoint has no IP address")?
            .to_string();
        let (events, pending) = mpsc::channel::<String>();
        let (answers, outcomes) = mpsc::channel();
        let first_next = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let serve = {
            let (first_next, stop) = (first_next.clone(), stop.clone());
            std::thread::spawn(move || serve(&server, &pending, &answers, &first_next, &stop))
        };
        let spawned = Instant::now();
        let mut child = Command::new(bootstrap)
            .env("AWS_LAMBDA_RUNTIME_API", &address)
            .env("AWS_LAMBDA_FUNCTION_NAME", "secret-loader-comparison")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bootstrap.display()))?;
        let logs = Arc::new(Mutex::new(String::new()));
        let mut readers = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            readers.push(collect_lines(stdout, logs.clone()));
        }
        if let Some(stderr) = child.stderr.take() {
            readers.push(collect_lines(stderr, logs.clone()));
        }
        Ok(Self {
            events: Some(events),
            outcomes,
            first_next,
            spawned,
            stop,
            server: Some(serve),
            child: Some(child),
            logs,
            logs_taken: 0,
            readers,
        })
    }

    /// What the function wrote (stdout and stderr, line by line) since the last call.
    pub fn take_logs(&mut self) -> String {
        let logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        let new = logs[self.logs_taken..].to_owned();
        self.logs_taken = logs.len();
        new
    }

    /// Whether the function's process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// The process's peak resident memory so far (Linux `VmHWM`), in MiB: what Lambda's
    /// `Max Memory Used` reports.
    pub fn max_memory_mib(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib.div_ceil(1024))
    }

    /// Hands `event` to the function and waits at most `timeout` for its answer.
    ///
    /// # Errors
    /// When the function does not answer in time (or has exited).
    pub fn invoke(&mut self, event: &str, timeout: Duration) -> Result<Outcome, String> {
        let events = self.events.as_ref().ok_or("the runtime is stopped")?;
        events
            .send(event.to_owned())
            .map_err(|_| "the endpoint has stopped")?;
        let deadline = Instant::now() + timeout;
        loop {
            match self.outcomes.recv_timeout(Duration::from_millis(50)) {
                Ok(outcome) => return Ok(outcome),
                Err(RecvTimeoutError::Disconnected) => {
                    return Err("the endpoint has stopped".into());
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                return Err(format!("the function exited ({status})"));
            }
            if Instant::now() >= deadline {
                return Err(format!("no answer within {timeout:?}"));
            }
        }
    }

    /// From spawn to the function's first request for work: its init, as Lambda reports it.
    pub fn init_duration(&self) -> Option<Duration> {
        let first = *self.first_next.lock().unwrap_or_else(|e| e.into_inner());
        first.map(|at| at.duration_since(self.spawned))
    }

    /// Stops the function and the endpoint; returns everything the function wrote (stdout
    /// and stderr, line by line).
    pub fn stop(mut self) -> String {
        self.shutdown()
    }

    fn shutdown(&mut self) -> String {
        self.events = None;
        self.stop.store(true, Ordering::Relaxed);
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        if let Some(server) = self.server.take() {
            let _ = server.join();
        }
        std::mem::take(&mut *self.logs.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Drop for LocalRuntime {
    fn drop(&mut self) {
        if self.server.is_some() {
            self.shutdown();
        }
    }
}

/// Appends `stream`'s lines to `logs` until it closes.
fn collect_lines(stream: impl Read + Send + 'static, logs: Arc<Mutex<String>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
            let text = String::from_utf8_lossy(&line);
            let mut logs = logs.lock().unwrap_or_else(|e| e.into_inner());
            logs.push_str(&text);
            if !text.ends_with('\n') {
                logs.push('\n');
            }
            line.clear();
        }
    })
}

fn serve(
    server: &tiny_http::Server,
    pending: &Receiver<String>,
    answers: &Sender<Outcome>,
    first_next: &Mutex<Option<Instant>>,
    stop: &AtomicBool,
) {
    let mut invocation = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let mut request = match server.recv_timeout(Duration::from_millis(50)) {
            Ok(Some(request)) => request,
            Ok(None) => continue,
            Err(_) => return,
        };
        let url = request.url().to_owned();
        if url.ends_with("/runtime/invocation/next") {
            first_next
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert_with(Instant::now);
            // Wait for work, as Lambda does between invocations.
            let event = loop {
                match pending.recv_timeout(Duration::from_millis(50)) {
                    Ok(event) => break Some(event),
                    Err(RecvTimeoutError::Timeout) if !stop.load(Ordering::Relaxed) => {}
                    Err(_) => break None,
                }
            };
            let Some(event) = event else { return };
            invocation += 1;
            let deadline = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis())
                + 300_000;
            let headers = [
                (
                    "Lambda-Runtime-Aws-Request-Id",
                    format!("local-{invocation}"),
                ),
                ("Lambda-Runtime-Deadline-Ms", deadline.to_string()),
                (
                    "Lambda-Runtime-Invoked-Function-Arn",
                    "arn:aws:lambda:us-east-1:000000000000:function:secret-loader-comparison"
                        .into(),
                ),
                ("Content-Type", "application/json".into()),
            ];
            let mut response = tiny_http::Response::from_string(event);
            for (name, value) in headers {
                if let Ok(header) = tiny_http::Header::from_bytes(name, value) {
                    response.add_header(header);
                }
            }
            let _ = request.respond(response);
        } else {
            let mut body = String::new();
            let _ = request.as_reader().read_to_string(&mut body);
            let outcome = if url.ends_with("/response") {
                Outcome::Response(body)
            } else {
                Outcome::Error(body)
            };
            let _ = request.respond(tiny_http::Response::empty(202));
            if answers.send(outcome).is_err() {
                return;
            }
        }
    }
}
