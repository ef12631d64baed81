//! `secret-loader-extension`: the Lambda extension (in `/opt/extensions/` from a layer) and,
//! outside Lambda, the same server as a local agent. Configuration from the environment:
//! see the crate docs and `docs/extension.md`.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use secret_loader_extension::{LogLevel, Settings};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("{}: {err}", secret_loader_extension::NAME);
            return ExitCode::from(2);
        }
    };
    init_logging(settings.log_level);
    let lambda_api = std::env::var("AWS_LAMBDA_RUNTIME_API").ok();
    match secret_loader_extension::run(settings, lambda_api).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{}: {err}", secret_loader_extension::NAME);
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr (CloudWatch in Lambda) at AWS's level names; never a value.
fn init_logging(level: LogLevel) {
    let level = match level {
        LogLevel::Debug => tracing::Level::DEBUG,
        LogLevel::Info => tracing::Level::INFO,
        LogLevel::Warn => tracing::Level::WARN,
        LogLevel::Error => tracing::Level::ERROR,
        LogLevel::None => return,
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();
}
