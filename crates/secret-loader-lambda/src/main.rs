//! `bootstrap`: the comparison function for the `provided.al2023` runtime.
//!
//! Init builds every stack named in `SECRET_LOADER_BENCH_STACKS` (timed); each invocation
//! reads `SECRET_LOADER_BENCH_SECRET_ID` through every stack and answers with the numbers as
//! JSON, also logged as CloudWatch Embedded Metric Format lines on stdout.

#![forbid(unsafe_code)]

use std::sync::Arc;

use lambda_runtime::{LambdaEvent, service_fn};
use secret_loader::comparison::Request;
use secret_loader_lambda::{Bench, function_handler};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tracing_subscriber::fmt()
        .with_ansi(false)
        .without_time()
        .with_writer(std::io::stderr)
        .init();
    let bench = match Bench::from_env().await {
        Ok(bench) => Arc::new(bench),
        Err(message) => {
            // An init failure ends the process; Lambda reports it as Runtime.ExitError.
            tracing::error!(%message, "cannot start");
            std::process::exit(1);
        }
    };
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Request>| {
        let bench = bench.clone();
        async move { function_handler(&bench, event).await }
    }))
    .await
}
