//! A Lambda Runtime API endpoint on loopback that runs the real `bootstrap` binary (or any
//! runtime, such as Python's `awslambdaric`), with the Lambda Extensions API beside it, so the
//! comparison and the extension run (and are tested) without AWS: the process is the
//! execution environment, a new process is a cold start, and init is timed as Lambda's
//! `REPORT` line does it, from spawn to the function's first `GET /runtime/invocation/next`.
//!
//! Served routes: `/2018-06-01/runtime/invocation/next`, `.../{id}/response`,
//! `.../{id}/error`, `/2018-06-01/runtime/init/error`; and for extensions
//! `/2020-01-01/extension/register`, `.../event/next`, `.../init/error`, `.../exit/error`.
//!
//! With extensions the lifecycle is Lambda's: the extensions start first and each registers
//! (`Lambda-Extension-Name` must be its file name); then the runtime starts; every invocation
//! is an `INVOKE` event to each extension and the payload to the runtime; stopping sends
//! `SHUTDOWN` and gives the extensions 2 s to exit before killing them. Each process runs in
//! a process group of its own, and the group is killed when the environment stops, as Lambda
//! ends the whole sandbox: a daemon an extension started (AWS's sample extension starts the
//! Secrets Manager Agent in the background) does not outlive its environment.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::cpu::{CpuQuota, lambda_cpu_share};

/// The function name the environment reports unless told otherwise.
const DEFAULT_FUNCTION: &str = "secret-loader-comparison";
/// How long extensions get to exit after `SHUTDOWN` (Lambda's budget with extensions).
pub const SHUTDOWN_BUDGET: Duration = Duration::from_millis(2000);
/// How long extensions get to register before the runtime starts anyway.
const REGISTER_WAIT: Duration = Duration::from_secs(10);

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The function's response body.
    Response(String),
    /// The error document the runtime posted (`errorType`, `errorMessage`).
    Error(String),
}

/// How an extension's process ended when the environment stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionExit {
    /// The extension's file name.
    pub name: String,
    /// Whether it registered.
    pub registered: bool,
    /// Its exit status, when it exited by itself within [`SHUTDOWN_BUDGET`] of `SHUTDOWN`.
    pub exited: Option<std::process::ExitStatus>,
    /// From `SHUTDOWN` to its exit.
    pub took: Option<Duration>,
}

/// What the endpoint and its long polls share.
#[derive(Default)]
struct Queues {
    /// Payloads waiting for the runtime's `next`.
    runtime: VecDeque<String>,
    /// Registered extensions: (identifier, name, events waiting for its `event/next`).
    extensions: Vec<(String, String, VecDeque<String>)>,
    stop: bool,
}

type Shared = Arc<(Mutex<Queues>, Condvar)>;

/// How to start an environment: the runtime's command, its variables, its extensions.
#[derive(Debug, Clone)]
pub struct Environment {
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    dir: Option<PathBuf>,
    extensions: Vec<PathBuf>,
    function_name: String,
    memory_mb: u32,
    enforce_cpu_share: bool,
}

impl Environment {
    /// An environment running `program` as its runtime.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            dir: None,
            extensions: Vec::new(),
            function_name: DEFAULT_FUNCTION.to_owned(),
            memory_mb: crate::local_lambda::MEMORY_MB,
            enforce_cpu_share: false,
        }
    }

    /// Arguments for the runtime (`-m awslambdaric module.handler`).
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// A variable of the function's configuration (the runtime's and the extensions').
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// The runtime's working directory (Lambda's `/var/task`).
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// An external extension's executable (what a layer puts in `/opt/extensions/`).
    pub fn extension(mut self, path: impl Into<PathBuf>) -> Self {
        self.extensions.push(path.into());
        self
    }

    /// The function's name (`AWS_LAMBDA_FUNCTION_NAME`, default `secret-loader-comparison`).
    pub fn function_name(mut self, name: impl Into<String>) -> Self {
        self.function_name = name.into();
        self
    }

    /// The function's memory size (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, default
    /// [`MEMORY_MB`](crate::local_lambda::MEMORY_MB)); not enforced as memory.
    pub fn memory(mut self, memory_mb: u32) -> Self {
        self.memory_mb = memory_mb;
        self
    }

    /// The memory size set by [`Environment::memory`].
    #[must_use]
    pub fn memory_mb(&self) -> u32 {
        self.memory_mb
    }

    /// Runs the environment's processes (runtime and extensions) under the CPU share Lambda
    /// gives its memory size, as a cgroup CPU quota ([`CpuQuota`](crate::cpu::CpuQuota)):
    /// starting fails where this machine allows no quota.
    pub fn enforce_cpu_share(mut self) -> Self {
        self.enforce_cpu_share = true;
        self
    }

    /// Starts it: the endpoint, the extensions (each must register), then the runtime.
    ///
    /// # Errors
    /// When the endpoint can't listen or a process can't be started.
    pub fn start(self) -> Result<LocalRuntime, String> {
        LocalRuntime::start_environment(self)
    }
}

/// One execution environment under its own Runtime (and Extensions) API endpoint.
pub struct LocalRuntime {
    shared: Shared,
    outcomes: Receiver<Outcome>,
    first_next: Arc<Mutex<Option<Instant>>>,
    spawned: Instant,
    stop: Arc<AtomicBool>,
    server: Option<JoinHandle<()>>,
    child: Option<Child>,
    extensions: Vec<(String, Child)>,
    exits: Vec<ExtensionExit>,
    logs: Arc<Mutex<String>>,
    logs_taken: usize,
    readers: Vec<JoinHandle<()>>,
    invocation: u64,
    stopped: bool,
    /// The environment's CPU quota, when enforced; removed after its processes.
    cpu_quota: Option<CpuQuota>,
}

impl LocalRuntime {
    /// Starts an endpoint on 127.0.0.1 and spawns `bootstrap` against it, with the variables
    /// Lambda sets (`AWS_LAMBDA_RUNTIME_API`, function name, memory, version) and `env`.
    ///
    /// # Errors
    /// When the endpoint can't listen or the binary can't be started.
    pub fn start(bootstrap: &Path, env: &[(&str, &str)]) -> Result<Self, String> {
        env.iter()
            .fold(Environment::new(bootstrap), |environment, (k, v)| {
                environment.env(*k, *v)
            })
            .start()
    }

    fn start_environment(environment: Environment) -> Result<Self, String> {
        let cpu_quota = if environment.enforce_cpu_share {
            Some(CpuQuota::new(lambda_cpu_share(environment.memory_mb))?)
        } else {
            None
        };
        let server = tiny_http::Server::http("127.0.0.1:0").map_err(|e| e.to_string())?;
        let address = server
            .server_addr()
            .to_ip()
            .ok_or("the endpoint has no IP address")?
            .to_string();
        let shared: Shared = Arc::default();
        let (answers, outcomes) = mpsc::channel();
        let first_next = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let names: Vec<String> = environment
            .extensions
            .iter()
            .map(|path| {
                path.file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
            })
            .collect();
        let serve = {
            let (first_next, stop, shared) = (first_next.clone(), stop.clone(), shared.clone());
            let function = environment.function_name.clone();
            std::thread::spawn(move || {
                serve(&server, &shared, &answers, &first_next, &stop, &function)
            })
        };
        let logs = Arc::new(Mutex::new(String::new()));
        let mut readers = Vec::new();
        let command = |program: &Path| {
            let mut command = Command::new(program);
            command
                .env("AWS_LAMBDA_RUNTIME_API", &address)
                .env("AWS_LAMBDA_FUNCTION_NAME", &environment.function_name)
                .env(
                    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                    environment.memory_mb.to_string(),
                )
                .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
                .envs(
                    environment
                        .env
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str())),
                )
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .process_group(0);
            command
        };
        let spawned = Instant::now();
        let mut extensions = Vec::new();
        for (path, name) in environment.extensions.iter().zip(&names) {
            let mut child = command(path)
                .spawn()
                .map_err(|e| format!("cannot start the extension {}: {e}", path.display()))?;
            readers.extend(collect_child(&mut child, &logs));
            let limited = cpu_quota.as_ref().map(|q| q.add(child.id()));
            extensions.push((name.clone(), child));
            if let Some(Err(err)) = limited {
                abandon(extensions, readers, &shared, &stop, serve);
                return Err(err);
            }
        }
        // Lambda starts the runtime once every extension has registered; an extension that
        // exits first fails the environment's init (Lambda's `Extension.Crash`).
        let deadline = Instant::now() + REGISTER_WAIT;
        let mut crashed = None;
        {
            let (lock, ready) = &*shared;
            let mut queues = lock.lock().unwrap_or_else(|e| e.into_inner());
            while queues.extensions.len() < extensions.len() && Instant::now() < deadline {
                crashed = extensions
                    .iter_mut()
                    .find_map(|(name, child)| match child.try_wait() {
                        Ok(Some(status)) => Some(format!("{name} ({status})")),
                        _ => None,
                    });
                if crashed.is_some() {
                    break;
                }
                queues = ready
                    .wait_timeout(queues, Duration::from_millis(20))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
        if let Some(crashed) = crashed {
            abandon(extensions, readers, &shared, &stop, serve);
            let logs = logs.lock().unwrap_or_else(|e| e.into_inner()).clone();
            return Err(format!(
                "Extension.Crash: the extension {crashed} exited before registering: {}",
                logs.trim()
            ));
        }
        let mut runtime = command(&environment.program);
        runtime.args(&environment.args);
        if let Some(dir) = &environment.dir {
            runtime.current_dir(dir);
        }
        let mut child = match runtime.spawn() {
            Ok(child) => child,
            Err(err) => {
                // No environment: stop its extensions too, never leave them running.
                abandon(extensions, readers, &shared, &stop, serve);
                return Err(format!(
                    "cannot start {}: {err}",
                    environment.program.display()
                ));
            }
        };
        readers.extend(collect_child(&mut child, &logs));
        if let Some(Err(err)) = cpu_quota.as_ref().map(|q| q.add(child.id())) {
            end(&mut child);
            abandon(extensions, readers, &shared, &stop, serve);
            return Err(err);
        }
        Ok(Self {
            shared,
            outcomes,
            first_next,
            spawned,
            stop,
            server: Some(serve),
            child: Some(child),
            extensions,
            exits: Vec::new(),
            logs,
            logs_taken: 0,
            readers,
            invocation: 0,
            stopped: false,
            cpu_quota,
        })
    }

    /// The extensions that registered, by name.
    pub fn registered_extensions(&self) -> Vec<String> {
        let queues = self.shared.0.lock().unwrap_or_else(|e| e.into_inner());
        queues
            .extensions
            .iter()
            .map(|(_, name, _)| name.clone())
            .collect()
    }

    /// How each extension ended, once the environment has stopped.
    pub fn extension_exits(&self) -> &[ExtensionExit] {
        &self.exits
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

    /// Hands `event` to the function (and an `INVOKE` event to each extension) and waits at
    /// most `timeout` for its answer.
    ///
    /// # Errors
    /// When the function does not answer in time (or has exited).
    pub fn invoke(&mut self, event: &str, timeout: Duration) -> Result<Outcome, String> {
        if self.stopped {
            return Err("the runtime is stopped".into());
        }
        self.invocation += 1;
        let deadline_ms = epoch_millis() + timeout.as_millis();
        {
            let (lock, ready) = &*self.shared;
            let mut queues = lock.lock().unwrap_or_else(|e| e.into_inner());
            let invoke = serde_json::json!({
                "eventType": "INVOKE",
                "deadlineMs": deadline_ms as u64,
                "requestId": format!("local-{}", self.invocation),
                "invokedFunctionArn": "arn:aws:lambda:us-east-1:000000000000:function:local",
                "tracing": {"type": "X-Amzn-Trace-Id", "value": trace_id(self.invocation)},
            })
            .to_string();
            for (_, _, events) in &mut queues.extensions {
                events.push_back(invoke.clone());
            }
            queues.runtime.push_back(event.to_owned());
            ready.notify_all();
        }
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

    /// When the environment runs under a CPU quota: how often it ran out, and how long the
    /// environment's processes waited in all.
    #[must_use]
    pub fn cpu_throttled(&self) -> Option<(u64, Duration)> {
        self.cpu_quota.as_ref()?.throttled()
    }

    /// From spawn to the function's first request for work: its init, as Lambda reports it.
    pub fn init_duration(&self) -> Option<Duration> {
        let first = *self.first_next.lock().unwrap_or_else(|e| e.into_inner());
        first.map(|at| at.duration_since(self.spawned))
    }

    /// Stops the function, then the extensions (`SHUTDOWN`, then [`SHUTDOWN_BUDGET`]), then
    /// the endpoint; returns everything they wrote (stdout and stderr, line by line).
    pub fn stop(mut self) -> String {
        self.shutdown()
    }

    /// As [`LocalRuntime::stop`], keeping the runtime for [`LocalRuntime::extension_exits`].
    pub fn stop_in_place(&mut self) -> String {
        if self.stopped {
            return String::new();
        }
        self.shutdown()
    }

    fn shutdown(&mut self) -> String {
        self.stopped = true;
        if let Some(mut child) = self.child.take() {
            end(&mut child);
        }
        // SHUTDOWN to each extension, then its budget to exit.
        let registered: Vec<String> = {
            let (lock, ready) = &*self.shared;
            let mut queues = lock.lock().unwrap_or_else(|e| e.into_inner());
            let shutdown = serde_json::json!({
                "eventType": "SHUTDOWN",
                "shutdownReason": "SPINDOWN",
                "deadlineMs": (epoch_millis() + SHUTDOWN_BUDGET.as_millis()) as u64,
            })
            .to_string();
            for (_, _, events) in &mut queues.extensions {
                events.push_back(shutdown.clone());
            }
            ready.notify_all();
            queues
                .extensions
                .iter()
                .map(|(_, name, _)| name.clone())
                .collect()
        };
        let asked = Instant::now();
        for (name, mut child) in std::mem::take(&mut self.extensions) {
            let mut exited = None;
            while asked.elapsed() < SHUTDOWN_BUDGET {
                if let Ok(Some(status)) = child.try_wait() {
                    exited = Some((status, asked.elapsed()));
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            // Whatever it left running goes too (the sandbox ends), exited or not.
            end(&mut child);
            self.exits.push(ExtensionExit {
                registered: registered.contains(&name),
                name,
                exited: exited.map(|(status, _)| status),
                took: exited.map(|(_, took)| took),
            });
        }
        self.stop.store(true, Ordering::Relaxed);
        {
            let (lock, ready) = &*self.shared;
            lock.lock().unwrap_or_else(|e| e.into_inner()).stop = true;
            ready.notify_all();
        }
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        if let Some(server) = self.server.take() {
            let _ = server.join();
        }
        self.cpu_quota = None;
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

/// An environment that could not start: its extensions killed, their output collected, the
/// endpoint stopped.
fn abandon(
    extensions: Vec<(String, Child)>,
    readers: Vec<JoinHandle<()>>,
    shared: &Shared,
    stop: &AtomicBool,
    serve: JoinHandle<()>,
) {
    for (_, mut extension) in extensions {
        end(&mut extension);
    }
    for reader in readers {
        let _ = reader.join();
    }
    shared.0.lock().unwrap_or_else(|e| e.into_inner()).stop = true;
    stop.store(true, Ordering::Relaxed);
    let _ = serve.join();
}

/// Kills `child` and its process group (every process it started that did not leave it), and
/// reaps it.
fn end(child: &mut Child) {
    let group = rustix::process::Pid::from_child(child);
    let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
    let _ = child.kill();
    let _ = child.wait();
}

fn epoch_millis() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// An X-Ray trace header (Lambda always sends one; Python's runtime client needs it).
fn trace_id(invocation: u64) -> String {
    format!(
        "Root=1-{:08x}-{:024x};Parent={:016x};Sampled=0",
        epoch_millis() / 1000,
        invocation,
        invocation
    )
}

/// Its stdout and stderr, collected into `logs`.
fn collect_child(child: &mut Child, logs: &Arc<Mutex<String>>) -> Vec<JoinHandle<()>> {
    let mut readers = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        readers.push(collect_lines(stdout, logs.clone()));
    }
    if let Some(stderr) = child.stderr.take() {
        readers.push(collect_lines(stderr, logs.clone()));
    }
    readers
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
    shared: &Shared,
    answers: &Sender<Outcome>,
    first_next: &Mutex<Option<Instant>>,
    stop: &AtomicBool,
    function: &str,
) {
    let mut polls: Vec<JoinHandle<()>> = Vec::new();
    let mut registered = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let mut request = match server.recv_timeout(Duration::from_millis(50)) {
            Ok(Some(request)) => request,
            Ok(None) => continue,
            Err(_) => break,
        };
        let url = request.url().to_owned();
        fn header(request: &tiny_http::Request, name: &'static str) -> Option<String> {
            request
                .headers()
                .iter()
                .find(|h| h.field.equiv(name))
                .map(|h| h.value.as_str().to_owned())
        }
        if url.ends_with("/runtime/invocation/next") {
            first_next
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert_with(Instant::now);
            let shared = shared.clone();
            let function = function.to_owned();
            // Wait for work in a thread of its own, as Lambda holds `next` between invocations.
            polls.push(std::thread::spawn(move || {
                let Some(event) = wait_for(&shared, |q| q.runtime.pop_front()) else {
                    return;
                };
                let invocation = {
                    static COUNT: std::sync::atomic::AtomicU64 =
                        std::sync::atomic::AtomicU64::new(0);
                    COUNT.fetch_add(1, Ordering::Relaxed) + 1
                };
                let headers = [
                    (
                        "Lambda-Runtime-Aws-Request-Id",
                        format!("local-{invocation}"),
                    ),
                    (
                        "Lambda-Runtime-Deadline-Ms",
                        (epoch_millis() + 300_000).to_string(),
                    ),
                    (
                        "Lambda-Runtime-Invoked-Function-Arn",
                        format!("arn:aws:lambda:us-east-1:000000000000:function:{function}"),
                    ),
                    ("Lambda-Runtime-Trace-Id", trace_id(invocation)),
                    ("Content-Type", "application/json".into()),
                ];
                let mut response = tiny_http::Response::from_string(event);
                for (name, value) in headers {
                    if let Ok(header) = tiny_http::Header::from_bytes(name, value) {
                        response.add_header(header);
                    }
                }
                let _ = request.respond(response);
            }));
        } else if url.ends_with("/extension/register") {
            let name = header(&request, "Lambda-Extension-Name").unwrap_or_default();
            registered += 1;
            let identifier = format!("local-extension-{registered}");
            {
                let (lock, ready) = &**shared;
                let mut queues = lock.lock().unwrap_or_else(|e| e.into_inner());
                queues
                    .extensions
                    .push((identifier.clone(), name, VecDeque::new()));
                ready.notify_all();
            }
            let body = serde_json::json!({
                "functionName": function,
                "functionVersion": "$LATEST",
                "handler": "bootstrap",
            })
            .to_string();
            let mut response = tiny_http::Response::from_string(body);
            if let Ok(h) = tiny_http::Header::from_bytes("Lambda-Extension-Identifier", identifier)
            {
                response.add_header(h);
            }
            let _ = request.respond(response);
        } else if url.ends_with("/extension/event/next") {
            let identifier = header(&request, "Lambda-Extension-Identifier").unwrap_or_default();
            let shared = shared.clone();
            polls.push(std::thread::spawn(move || {
                let event = wait_for(&shared, |queues| {
                    queues
                        .extensions
                        .iter_mut()
                        .find(|(id, _, _)| *id == identifier)
                        .and_then(|(_, _, events)| events.pop_front())
                });
                match event {
                    Some(event) => {
                        let _ = request.respond(tiny_http::Response::from_string(event));
                    }
                    None => {
                        let _ = request.respond(tiny_http::Response::empty(500));
                    }
                }
            }));
        } else if url.contains("/extension/") {
            // init/error, exit/error: accepted, logged by the caller's own output.
            let _ = request.respond(tiny_http::Response::empty(202));
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
                break;
            }
        }
    }
    {
        let (lock, ready) = &**shared;
        lock.lock().unwrap_or_else(|e| e.into_inner()).stop = true;
        ready.notify_all();
    }
    for poll in polls {
        let _ = poll.join();
    }
}

/// Waits until `take` finds something in the queues, or the endpoint stops (`None`).
fn wait_for<T>(shared: &Shared, mut take: impl FnMut(&mut Queues) -> Option<T>) -> Option<T> {
    let (lock, ready) = &**shared;
    let mut queues = lock.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        if let Some(found) = take(&mut queues) {
            return Some(found);
        }
        if queues.stop {
            return None;
        }
        queues = ready
            .wait_timeout(queues, Duration::from_millis(50))
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn an_extension_that_exits_before_registering_fails_the_init_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let extension = dir.path().join("broken-extension");
        std::fs::write(
            &extension,
            "#!/bin/sh\necho 'no configuration' >&2\nexit 3\n",
        )
        .unwrap();
        std::fs::set_permissions(&extension, std::fs::Permissions::from_mode(0o755)).unwrap();
        let started = Instant::now();
        let err = match Environment::new("/bin/true").extension(&extension).start() {
            Ok(_) => panic!("the environment started without its extension"),
            Err(err) => err,
        };
        assert!(err.starts_with("Extension.Crash"), "{err}");
        assert!(
            err.contains("broken-extension") && err.contains("no configuration"),
            "{err}"
        );
        assert!(
            started.elapsed() < REGISTER_WAIT / 2,
            "{:?}",
            started.elapsed()
        );
    }

    /// AWS's sample extension starts the Secrets Manager Agent in the background and, on
    /// `SHUTDOWN`, exits without stopping it. Lambda ends the whole sandbox; here the daemon
    /// (which holds the extension's output open) must die with the environment, or `stop`
    /// waits for it and it lives on.
    #[test]
    fn what_an_extension_leaves_running_dies_with_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let extension = dir.path().join("leaves-a-daemon");
        std::fs::write(
            &extension,
            r#"#!/bin/sh
set -eu
sleep 300 &
echo $! > "$DIR/daemon.pid"
api="http://$AWS_LAMBDA_RUNTIME_API/2020-01-01/extension"
curl -sS -D "$DIR/headers" -XPOST "$api/register" -H "Lambda-Extension-Name: leaves-a-daemon" \
    -d '{"events": ["SHUTDOWN"]}' >/dev/null
id=$(grep -i Lambda-Extension-Identifier "$DIR/headers" | tr -d '[:space:]' | cut -d: -f2)
curl -sS "$api/event/next" -H "Lambda-Extension-Identifier: $id" >/dev/null
exit 0
"#,
        )
        .unwrap();
        std::fs::set_permissions(&extension, std::fs::Permissions::from_mode(0o755)).unwrap();
        let runtime = Environment::new("/bin/sleep")
            .args(["300"])
            .env("DIR", dir.path().to_str().unwrap())
            .extension(&extension)
            .start()
            .unwrap();
        assert_eq!(runtime.registered_extensions(), ["leaves-a-daemon"]);
        let pid: i32 = std::fs::read_to_string(dir.path().join("daemon.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let (done, stopped) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = done.send(runtime.stop());
        });
        stopped
            .recv_timeout(Duration::from_secs(30))
            .expect("stop waited for the extension's daemon");
        // Gone, or a zombie its new parent has not reaped yet: not running.
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let running = state
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'));
        assert!(
            !running,
            "the daemon {pid} outlived its environment: {state}"
        );
    }
}
