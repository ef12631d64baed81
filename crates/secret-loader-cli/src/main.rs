//! `secret-loader`: put secrets into a backend and get them back.
//!
//! Values go to stdout and nowhere else; errors are one line on stderr, never with a value,
//! and the exit code says which kind of error it was (see `EXIT CODES` in `--help`).

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub, rustdoc::broken_intra_doc_links)]

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

mod bench;
mod charts;
mod choosing;
mod cpu_share;
mod fleet;
mod report;
mod tables;

use clap::{Args, Parser, Subcommand};
use secrecy::ExposeSecret;
use secret_loader::config::{CONFIG_FILE_ENV, SOURCE_ENV};
use secret_loader::{
    Config, Error, ErrorKind, SecretId, SecretValue, SourceConfig, VersionSelector,
};

const EXIT_CODES: &str = "\
EXIT CODES:
  0  success
  1  other failure
  2  usage error
  3  secret (or version) not found
  4  access denied
  5  decryption failed
  6  throttled or transient failure: retrying later may succeed
  7  invalid secret id or configuration
  8  the value is not what was asked for (not UTF-8, not JSON, no such field)
  9  not supported by this backend or build";

/// Put secrets into a backend and get them back.
///
/// Sources: secretsmanager://, ssm://[/HIERARCHY], s3+kms://BUCKET/PREFIX,
/// s3+sse-kms://BUCKET/PREFIX, file+kms:///DIR, env+kms://, env:// (each with ?option=value;
/// see docs/configuration.md).
#[derive(Debug, Parser)]
#[command(name = "secret-loader", version, after_help = EXIT_CODES)]
struct Cli {
    /// Source URL, e.g. `secretsmanager://` or `secretsmanager://?region=eu-west-1`.
    #[arg(long, global = true, env = SOURCE_ENV, value_name = "URL")]
    source: Option<String>,

    /// TOML configuration file (used when no source URL is given).
    #[arg(long, global = true, env = CONFIG_FILE_ENV, value_name = "FILE")]
    config: Option<PathBuf>,

    /// KMS key (ARN, id or alias) for `s3+kms://`, `file+kms://`, `s3+sse-kms://`, `ssm://`
    /// and `env+kms://` (`seal`); overrides the URL's `kms_key_id=`.
    #[arg(long, global = true, env = "SECRET_LOADER_KMS_KEY", value_name = "KEY")]
    kms_key: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print a secret's value (or one JSON field of it) to stdout.
    Get(GetArgs),
    /// Store a new version of a secret, read from stdin or --value-file; prints the new
    /// version id where the backend has versions.
    Put(PutArgs),
    /// Encrypt a value (stdin or --value-file) with KMS for an `env+kms://` variable, as
    /// Lambda's console encryption helpers do; prints the base64 ciphertext to set as the
    /// variable (its name goes to stderr). The source defaults to `env+kms://`.
    Seal(SealArgs),
    /// Compare the backends: cold and warm latency, calls and cost per read, as a report.
    Bench(bench::BenchArgs),
    /// Serve secrets to other processes over HTTP on 127.0.0.1, with the routes, header and
    /// switches of AWS's Parameters and Secrets Lambda Extension (the local agent; the same
    /// server as the `secret-loader-extension` Lambda extension). Stacks: --source/--config
    /// (one stack), SECRET_LOADER_EXTENSION_STACKS (several), else Secrets Manager and
    /// Parameter Store. Requests must carry X-Aws-Parameters-Secrets-Token equal to
    /// $AWS_SESSION_TOKEN (or the variable SECRET_LOADER_EXTENSION_TOKEN_ENV names).
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
struct GetArgs {
    /// Secret name or ARN.
    id: String,
    /// Print only this top-level field of a JSON value.
    #[arg(long, value_name = "KEY")]
    field: Option<String>,
    /// Read the version with this staging label (AWSPREVIOUS; a Parameter Store label).
    #[arg(long, value_name = "LABEL", conflicts_with = "version_id")]
    version_stage: Option<String>,
    /// Read this exact version (Secrets Manager version id, Parameter Store version
    /// number, S3 object version id).
    #[arg(long, value_name = "ID")]
    version_id: Option<String>,
}

#[derive(Debug, Args)]
struct PutArgs {
    /// Secret name (or the ARN of an existing secret).
    id: String,
    /// Read the value from this file instead of stdin. The bytes are stored as they are
    /// (a trailing newline is part of the value).
    #[arg(long, value_name = "FILE")]
    value_file: Option<PathBuf>,
    /// Store the value as binary (SecretBinary) even if it is UTF-8 text.
    #[arg(long)]
    binary: bool,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Port on 127.0.0.1 (default: PARAMETERS_SECRETS_EXTENSION_HTTP_PORT, else 2773).
    #[arg(long, value_name = "PORT")]
    port: Option<u16>,
}

#[derive(Debug, Args)]
struct SealArgs {
    /// Secret id; names the variable (`api_key` → `API_KEY`, after the URL's `prefix=`).
    id: String,
    /// Bind the ciphertext to this function (`LambdaFunctionName=NAME`, as the console does);
    /// default: the source's `context=`.
    #[arg(long, value_name = "NAME")]
    function: Option<String>,
    /// Read the value from this file instead of stdin.
    #[arg(long, value_name = "FILE")]
    value_file: Option<PathBuf>,
}

// Two workers: `bench` drives the function and the emulator's clients side by side. (Nothing
// here needs them: envelopes await KMS like any other call.)
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Secret(err)) => {
            eprintln!("secret-loader: {}", err.display_chain());
            ExitCode::from(exit_code(err.kind()))
        }
        Err(Failure::Bench(err)) => {
            eprintln!("secret-loader: {err}");
            ExitCode::from(exit_code(err.kind))
        }
    }
}

/// Logs go to stderr, only when asked for with `SECRET_LOADER_LOG` (e.g. `debug`,
/// `secret_loader=trace`). No log line carries a secret value.
fn init_logging() {
    let Ok(spec) = std::env::var("SECRET_LOADER_LOG") else {
        return;
    };
    match spec.parse::<tracing_subscriber::filter::Targets>() {
        Ok(filter) => {
            use tracing_subscriber::layer::SubscriberExt;
            let subscriber = tracing_subscriber::registry()
                .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
                .with(filter);
            let _ = tracing::subscriber::set_global_default(subscriber);
        }
        Err(err) => eprintln!("secret-loader: ignoring SECRET_LOADER_LOG: {err}"),
    }
}

/// Why a command failed: a secret operation's error, or the bench driver's.
enum Failure {
    Secret(Error),
    Bench(bench::BenchError),
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        Self::Secret(err)
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    if let Command::Bench(args) = cli.command {
        return bench::bench(args, cli.kms_key)
            .await
            .map_err(Failure::Bench);
    }
    if let Command::Serve(args) = &cli.command {
        return serve(&cli, args).await;
    }
    let mut config = match (&cli.source, &cli.config, &cli.command) {
        (Some(url), _, _) => Config::from_url(url)?,
        (None, Some(path), _) => Config::from_toml_file(path)?,
        (None, None, Command::Seal(_)) => Config::from_url("env+kms://")?,
        (None, None, _) => Config::from_lookup(|_| None)?,
    };
    if let Some(key) = cli.kms_key {
        config.source.set_kms_key_id(key);
    }
    let done = match cli.command {
        Command::Get(args) => get(&config, args).await,
        Command::Put(args) => put(&config, args).await,
        Command::Seal(args) => seal(&config, args).await,
        Command::Bench(_) | Command::Serve(_) => unreachable!("handled above"),
    };
    Ok(done?)
}

async fn get(config: &Config, args: GetArgs) -> Result<(), Error> {
    let id = SecretId::new(args.id)?;
    let version = match (args.version_stage, args.version_id) {
        (Some(stage), _) => VersionSelector::Stage(stage),
        (None, Some(version_id)) => VersionSelector::Id(version_id),
        (None, None) => VersionSelector::Current,
    };
    let source = config.build().await?;
    let secret = source.get(&id, &version).await?;
    match args.field {
        Some(field) => write_stdout(secret.json_field(&field)?.expose_secret().as_bytes()),
        None => write_stdout(secret.value().expose_bytes()),
    }
}

/// `serve`: the extension's server outside Lambda, until SIGINT or SIGTERM.
async fn serve(cli: &Cli, args: &ServeArgs) -> Result<(), Failure> {
    use secret_loader::config::{CONFIG_FILE_ENV, SOURCE_ENV};
    let source = cli.source.clone();
    let config = cli.config.as_ref().map(|p| p.display().to_string());
    let port = args.port.map(|p| p.to_string());
    // The flags, over the environment the extension reads.
    let lookup = |name: &str| match name {
        n if n == SOURCE_ENV && source.is_some() => source.clone(),
        n if n == CONFIG_FILE_ENV && config.is_some() => config.clone(),
        secret_loader_extension::settings::PORT_ENV if port.is_some() => port.clone(),
        _ => std::env::var(name).ok(),
    };
    let settings = secret_loader_extension::Settings::from_lookup(lookup)
        .map_err(|message| Failure::Secret(Error::invalid_config(message)))?;
    eprintln!(
        "secret-loader: serving on 127.0.0.1:{} (token from {})",
        settings.port, settings.token_variable
    );
    secret_loader_extension::run(settings, None)
        .await
        .map_err(|message| Failure::Secret(Error::invalid_config(message)))
}

/// The value to store: the bytes of `file`, else stdin; never empty.
fn read_value(file: Option<&std::path::Path>) -> Result<zeroize::Zeroizing<Vec<u8>>, Error> {
    let bytes = match file {
        Some(path) => std::fs::read(path).map_err(|err| {
            Error::invalid_config(format!("cannot read {}: {err}", path.display()))
        })?,
        None => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .map_err(|err| Error::invalid_config(format!("cannot read stdin: {err}")))?;
            bytes
        }
    };
    let bytes = zeroize::Zeroizing::new(bytes);
    if bytes.is_empty() {
        return Err(Error::invalid_config("the value is empty; nothing stored"));
    }
    Ok(bytes)
}

async fn put(config: &Config, args: PutArgs) -> Result<(), Error> {
    let id = SecretId::new(args.id)?;
    let bytes = read_value(args.value_file.as_deref())?;
    let value = match (args.binary, std::str::from_utf8(&bytes)) {
        (false, Ok(text)) => SecretValue::text(text),
        (false, Err(_)) => {
            return Err(Error::invalid_config(
                "the value is not UTF-8 text; pass --binary to store it as binary",
            ));
        }
        (true, _) => SecretValue::binary(bytes.as_slice()),
    };
    let store = config.build_store().await?;
    let outcome = store.put(&id, &value).await?;
    // The new version id, for scripts; backends without versions (files, unversioned
    // buckets) print nothing.
    if let Some(version_id) = &outcome.version_id {
        write_stdout(format!("{version_id}\n").as_bytes())?;
    }
    eprintln!(
        "secret-loader: {} `{id}` in {store}",
        if outcome.created {
            "created"
        } else {
            "stored a new version of"
        }
    );
    if let Some(notice) = &outcome.notice {
        eprintln!("secret-loader: {notice}");
    }
    Ok(())
}

async fn seal(config: &Config, args: SealArgs) -> Result<(), Error> {
    use secret_loader::env::{EnvKmsSource, LAMBDA_ENVIRONMENT_BYTES};
    let SourceConfig::EnvKms(env_config) = &config.source else {
        return Err(Error::invalid_config(format!(
            "seal makes values for env+kms:// variables; the source is {}:// \
             (use `put` for it)",
            config.source.scheme()
        )));
    };
    let id = SecretId::new(args.id)?;
    let bytes = read_value(args.value_file.as_deref())?;
    let value = match std::str::from_utf8(&bytes) {
        Ok(text) => SecretValue::text(text),
        Err(_) => SecretValue::binary(bytes.as_slice()),
    };
    let sdk = secret_loader::aws::load_sdk_config(&env_config.aws).await?;
    let source = EnvKmsSource::from_config(&sdk, env_config).await;
    let sealed = source.seal(&id, &value, args.function.as_deref()).await?;
    let name = source.variable_name(&id);
    write_stdout(format!("{sealed}\n").as_bytes())?;
    eprintln!("secret-loader: set {name} to this value in the function's configuration");
    if name.len() + sealed.len() > LAMBDA_ENVIRONMENT_BYTES {
        eprintln!(
            "secret-loader: {name} would be {} bytes; Lambda allows {LAMBDA_ENVIRONMENT_BYTES} \
             for all of a function's variables together",
            name.len() + sealed.len()
        );
    }
    Ok(())
}

/// Writes `bytes` to stdout, adding a newline only for a terminal (so `$(secret-loader get x)`
/// and pipes get the exact value).
fn write_stdout(bytes: &[u8]) -> Result<(), Error> {
    let mut stdout = std::io::stdout().lock();
    let result = stdout
        .write_all(bytes)
        .and_then(|()| {
            if std::io::stdout().is_terminal() && !bytes.ends_with(b"\n") {
                stdout.write_all(b"\n")
            } else {
                Ok(())
            }
        })
        .and_then(|()| stdout.flush());
    match result {
        Ok(()) => Ok(()),
        // A closed pipe (`| head -c1`) is the reader's choice, not our failure.
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(err) => Err(Error::invalid_config(format!(
            "cannot write to stdout: {err}"
        ))),
    }
}

fn exit_code(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::NotFound => 3,
        ErrorKind::AccessDenied => 4,
        ErrorKind::DecryptionFailed => 5,
        ErrorKind::Throttled | ErrorKind::Transient => 6,
        ErrorKind::InvalidId | ErrorKind::InvalidConfig => 7,
        ErrorKind::InvalidFormat => 8,
        ErrorKind::Unsupported => 9,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_exit_code_is_documented() {
        for kind in [
            ErrorKind::NotFound,
            ErrorKind::AccessDenied,
            ErrorKind::DecryptionFailed,
            ErrorKind::Throttled,
            ErrorKind::InvalidId,
            ErrorKind::InvalidFormat,
            ErrorKind::Unsupported,
            ErrorKind::Other,
        ] {
            let code = exit_code(kind);
            assert!(
                EXIT_CODES.contains(&format!("  {code}  ")),
                "{kind:?} -> {code}"
            );
        }
    }
}
