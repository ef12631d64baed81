//! Loopback stand-ins for the AWS Lambda APIs, so the real comparison function runs (and is
//! tested) without AWS and without Docker:
//!
//! * [`LocalRuntime`]: the Lambda Runtime API on 127.0.0.1 running one function (a binary,
//!   or Python under `awslambdaric`) and the Extensions API for its external extensions; a
//!   new process is a new execution environment (a cold start).
//! * [`LocalLambda`]: the Lambda service API on 127.0.0.1 in front of it (configuration,
//!   updates, `Invoke` with log tails and `REPORT` lines), which `secret-loader bench lambda`
//!   drives exactly as it drives a deployed function.
//!
//! * [`AwsNetwork`]: AWS's shape of network in front of the emulator: an HTTPS endpoint per
//!   service with a per-run certificate authority, kept-alive connections, a round-trip
//!   time, connections and handshakes counted.
//! * [`CpuQuota`]: Lambda's CPU share for a memory size, as a cgroup CPU quota around an
//!   environment's processes ([`Environment::enforce_cpu_share`]).
//!
//! Test and benchmark tooling: the function itself (`bootstrap`) depends on none of this.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub, rustdoc::broken_intra_doc_links)]

pub mod cpu;
pub mod local_lambda;
pub mod local_runtime;
pub mod network;

pub use cpu::{CpuQuota, lambda_cpu_share};
pub use local_lambda::LocalLambda;
pub use local_runtime::{Environment, ExtensionExit, LocalRuntime, Outcome};
pub use network::{AwsNetwork, EndpointStats};
