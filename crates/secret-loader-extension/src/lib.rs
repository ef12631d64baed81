//! A Lambda extension and local agent that serves every secret-loader backend and cache layer
//! to functions in any language, over HTTP on 127.0.0.1, with the routes, header and switches
//! of AWS's Parameters and Secrets Lambda Extension and the Secrets Manager Agent:
//!
//! * `GET /secretsmanager/get?secretId=…[&versionId=…|&versionStage=…][&refreshNow=true]` and
//!   the agent's `GET /v1/<id>`: `GetSecretValue`'s JSON;
//! * `GET /systemsmanager/parameters/get?name=…[&version=…|&label=…]&withDecryption=true`:
//!   `GetParameter`'s `{"Parameter": {…}}`;
//! * `GET /secret-loader/get?id=…&source=NAME`: any other stack (`s3+kms`, `file+kms`,
//!   `env+kms`, …) in `GetSecretValue`'s shape;
//! * `GET /ping`: `healthy`.
//!
//! Every request but `/ping` must carry `X-Aws-Parameters-Secrets-Token` equal to
//! `AWS_SESSION_TOKEN`. In Lambda ([`run`] with the Extensions API) the port is bound
//! *before* registering, so the function can read secrets during its own INIT.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub, rustdoc::broken_intra_doc_links)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

pub mod lifecycle;
pub mod server;
pub mod settings;
pub mod stacks;

pub use server::{State, TOKEN_HEADER, VAULT_TOKEN_HEADER};
pub use settings::{LogLevel, Settings};
pub use stacks::Stacks;

/// The extension's name, its binary's file name (Lambda requires the two to match).
pub const NAME: &str = "secret-loader-extension";

/// The name to register with: this executable's file name, which Lambda requires the
/// registration to match (a layer may install the binary under another name); [`NAME`] when
/// it can't be known.
pub fn registration_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|path| path.file_name()?.to_str().map(str::to_owned))
        .unwrap_or_else(|| NAME.to_owned())
}

/// What a shutdown keeps in hand before the `SHUTDOWN` event's deadline, to exit in time.
const SHUTDOWN_MARGIN: Duration = Duration::from_millis(100);

/// How long open connections get to finish after a shutdown is asked for.
const DRAIN: Duration = Duration::from_millis(500);

/// A server running in this process.
#[derive(Debug)]
pub struct Running {
    address: SocketAddr,
    state: Arc<State>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// What it serves.
    pub fn state(&self) -> &Arc<State> {
        &self.state
    }

    /// Stops accepting, lets open connections finish their request (at most `DRAIN`).
    pub async fn stop(self) {
        self.stop_within(DRAIN).await;
    }

    /// Stops accepting and waits, at most `budget`, for every open connection to finish the
    /// request in hand and close: requests in flight at `SHUTDOWN` are answered. True when
    /// all closed in time.
    pub async fn stop_within(self, budget: Duration) -> bool {
        let started = tokio::time::Instant::now();
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(budget, self.task).await;
        let left = budget.saturating_sub(started.elapsed());
        self.state.drained(left).await
    }
}

/// Binds `address` first, then builds the stacks, then serves them.
///
/// # Errors
/// The address can't be bound, or a stack can't be built.
pub async fn start(settings: &Settings, address: SocketAddr) -> Result<Running, String> {
    let listener = TcpListener::bind(address)
        .await
        .map_err(|e| format!("cannot listen on {address}: {e}"))?;
    let stacks = Stacks::build(settings)
        .await
        .map_err(|e| e.display_chain().to_string())?;
    Ok(start_with(listener, stacks, settings))
}

/// Serves `stacks` on an already bound `listener`.
pub fn start_with(listener: TcpListener, stacks: Stacks, settings: &Settings) -> Running {
    let address = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
    let state = Arc::new(
        State::new(
            stacks,
            settings.token.clone(),
            settings.max_clients,
            server::ConnectionLimits {
                idle_timeout: settings.idle_timeout,
                lifetime: settings.connection_lifetime,
            },
        )
        .with_body_style(if settings.in_lambda {
            server::BodyStyle::Extension
        } else {
            server::BodyStyle::Agent
        }),
    );
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(server::serve(listener, state.clone(), stopped));
    Running {
        address,
        state,
        stop,
        task,
    }
}

/// The whole life of the extension or agent: bind 127.0.0.1:`port`, build the stacks, serve;
/// then, in Lambda (`lambda_api` is `AWS_LAMBDA_RUNTIME_API`), register for `INVOKE` and
/// `SHUTDOWN` and follow the events until `SHUTDOWN`; outside it, serve until SIGINT or
/// SIGTERM. Prefetches the listed ids once serving.
///
/// # Errors
/// What stopped it from starting, as one line.
pub async fn run(settings: Settings, lambda_api: Option<String>) -> Result<(), String> {
    for warning in &settings.warnings {
        tracing::warn!("{warning}");
    }
    let address = SocketAddr::from(([127, 0, 0, 1], settings.port));
    // Bind before anything else: in Lambda the function's INIT may call us as soon as we
    // have registered, and a bound port queues its connections until we accept them.
    let listener = TcpListener::bind(address)
        .await
        .map_err(|e| format!("cannot listen on {address}: {e}"))?;
    let stacks = match Stacks::build(&settings).await {
        Ok(stacks) => stacks,
        Err(err) => {
            let message = err.display_chain().to_string();
            if let Some(api) = &lambda_api
                && let Ok(extension) =
                    lifecycle::Extension::register(api, &registration_name()).await
            {
                extension
                    .init_error("Extension.ConfigInvalid", &message)
                    .await;
            }
            return Err(message);
        }
    };
    let running = start_with(listener, stacks, &settings);
    tracing::info!(address = %running.address(), "serving");
    // Under SnapStart nothing is read ahead before the snapshot: the prefetch waits for the
    // first INVOKE, after the restore.
    let start_prefetch = |running: &Running| {
        let state = running.state().clone();
        let ids = settings.prefetch.clone();
        tokio::spawn(async move { state.stacks().prefetch(&ids).await })
    };
    let mut prefetch = start_prefetch(&running);
    match lambda_api {
        Some(api) => {
            let name = registration_name();
            let extension = lifecycle::Extension::register(&api, &name).await?;
            tracing::info!(%name, "registered with the Extensions API");
            loop {
                match extension.next().await {
                    Ok(lifecycle::Event::Invoke { request_id, .. }) => {
                        tracing::debug!(%request_id, "invoke");
                        if running.state().stacks().start_caching() {
                            tracing::info!("restored from the SnapStart snapshot: caching on");
                            prefetch = start_prefetch(&running);
                        }
                    }
                    Ok(lifecycle::Event::Shutdown {
                        reason,
                        deadline_ms,
                    }) => {
                        tracing::info!(%reason, "shutdown");
                        prefetch.abort();
                        // Requests in flight are answered, within the event's deadline and
                        // never past the 2,000 ms Lambda gives the whole Shutdown phase with
                        // external extensions (every region; "Shutdown phase",
                        // https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html).
                        let now_ms = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_millis() as u64);
                        let budget = Duration::from_millis(deadline_ms.saturating_sub(now_ms))
                            .saturating_sub(SHUTDOWN_MARGIN)
                            .min(Duration::from_secs(2));
                        if !running.stop_within(budget).await {
                            tracing::warn!("requests still in flight at the shutdown deadline");
                        }
                        return Ok(());
                    }
                    Err(err) => {
                        prefetch.abort();
                        running.stop().await;
                        return Err(err);
                    }
                }
            }
        }
        None => wait_for_signal().await,
    }
    prefetch.abort();
    running.stop().await;
    Ok(())
}

async fn wait_for_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
