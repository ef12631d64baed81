//! `secret_loader._native`: the library in a Python process.
//!
//! * [`Source`] is one configured stack (a source URL, its cache layers), built once; its
//!   reads release the GIL while they wait on the network.
//! * `get_secret`, `get_parameter` and `get_field` are Powertools' module functions over a
//!   stack per (source, `max_age`) kept for the process, so a function changes one import.
//! * A hit of the memory layer answers without entering the async runtime
//!   ([`SecretSource::get_fresh`]): the warm read a Lambda function makes on every invocation.
//! * Errors become the exception classes `secret_loader/__init__.py` defines, one per
//!   [`ErrorKind`]; like the library's errors, their text never holds a value.
//!
//! Async runtime: one current-thread Tokio runtime per process, made on the first read (no
//! thread at import). Python threads that read at once take turns driving it. After `fork`
//! the child makes a new runtime and rebuilds each stack on its first read; what the parent
//! registered with its event loop is left alone (dropping it in the child would deregister
//! the parent's sockets from the epoll instance both share).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::sync::MutexExt;
use pyo3::types::{PyBool, PyBytes, PyDict, PyList, PyString};
use secret_loader::cache::MemoryOptions;
use secret_loader::calls::CallCounter;
use secret_loader::secrecy::ExposeSecret;
use secret_loader::{Config, Error, ErrorKind, Secret, SecretId, SecretSource, VersionSelector};

/// The default `max_age` of the module functions, Powertools' (its
/// `DEFAULT_MAX_AGE_SECS`, 300 s in the pinned 3.37.0: `docs/comparison.md`).
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);
/// Powertools' variable for its default `max_age`, honoured as it honours it.
const MAX_AGE_ENV: &str = "POWERTOOLS_PARAMETERS_MAX_AGE";
/// Where `get_parameter` finds its source when none is passed; `ssm://` when unset.
const PARAMETER_SOURCE_ENV: &str = "SECRET_LOADER_PARAMETER_SOURCE";

/// Bumped in a forked child (`os.register_at_fork`): runtimes and stacks of an older
/// generation belong to the parent.
static GENERATION: AtomicU64 = AtomicU64::new(0);
/// This process's runtime and the generation it was made in.
static RUNTIME: Mutex<Option<(u64, &'static tokio::runtime::Runtime)>> = Mutex::new(None);
/// The module functions' stacks, one per (kind, source, `max_age`), each built by the first
/// call that needs it under its own lock (the map's lock is held only to find the slot).
static DEFAULTS: LazyLock<Mutex<HashMap<DefaultKey, Slot>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

type Slot = Arc<Mutex<Option<Py<Source>>>>;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn lock_attached<'a, T>(py: Python<'_>, mutex: &'a Mutex<T>) -> MutexGuard<'a, T> {
    // Waits with the GIL released: the holder may need it to finish.
    mutex
        .lock_py_attached(py)
        .unwrap_or_else(PoisonError::into_inner)
}

/// This process's runtime, made on first use (and again in a forked child).
fn runtime() -> PyResult<&'static tokio::runtime::Runtime> {
    let generation = GENERATION.load(Ordering::Acquire);
    let mut slot = lock(&RUNTIME);
    if let Some((made, runtime)) = *slot
        && made == generation
    {
        return Ok(runtime);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| {
            pyo3::exceptions::PyRuntimeError::new_err(format!("no async runtime: {err}"))
        })?;
    // Never dropped: a runtime lives as long as its process, and a parent's runtime must not
    // be shut down from a child.
    let runtime: &'static _ = Box::leak(Box::new(runtime));
    *slot = Some((generation, runtime));
    Ok(runtime)
}

/// Runs `future` to completion with the GIL released.
fn wait<T: Send>(
    py: Python<'_>,
    future: impl std::future::Future<Output = T> + Send,
) -> PyResult<T> {
    let runtime = runtime()?;
    Ok(py.detach(|| runtime.block_on(future)))
}

/// The exception for `err`: the class of its kind from `secret_loader`, its message the
/// error's chain of causes (never a value), with `kind`, `backend`, `secret_id` and
/// `retryable` attributes.
fn exception(py: Python<'_>, err: &Error) -> PyErr {
    let class = match err.kind() {
        ErrorKind::NotFound => "NotFoundError",
        ErrorKind::AccessDenied => "AccessDeniedError",
        ErrorKind::DecryptionFailed => "DecryptionError",
        ErrorKind::Throttled => "ThrottledError",
        ErrorKind::Transient => "TransientError",
        ErrorKind::InvalidId => "InvalidIdError",
        ErrorKind::InvalidConfig => "ConfigError",
        ErrorKind::InvalidFormat => "FormatError",
        ErrorKind::Unsupported => "UnsupportedError",
        _ => "SecretLoaderError",
    };
    let (backend, id) = match err {
        Error::NotFound { backend, id, .. }
        | Error::AccessDenied { backend, id, .. }
        | Error::DecryptionFailed { backend, id, .. }
        | Error::Throttled { backend, id, .. }
        | Error::Transient { backend, id, .. }
        | Error::InvalidFormat { backend, id, .. }
        | Error::Other { backend, id, .. } => (Some(*backend), Some(id.as_str())),
        Error::InvalidId { id, .. } => (None, Some(id.as_str())),
        Error::Unsupported { backend, .. } => (Some(*backend), None),
        _ => (None, None),
    };
    let message = err.display_chain().to_string();
    let made = (|| -> PyResult<PyErr> {
        let class = py.import("secret_loader")?.getattr(class)?;
        let value = class.call1((message.as_str(),))?;
        value.setattr("kind", kind_name(err.kind()))?;
        value.setattr("backend", backend)?;
        value.setattr("secret_id", id)?;
        value.setattr("retryable", err.is_retryable())?;
        Ok(PyErr::from_value(value))
    })();
    made.unwrap_or_else(|failure| failure)
}

fn kind_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::NotFound => "not_found",
        ErrorKind::AccessDenied => "access_denied",
        ErrorKind::DecryptionFailed => "decryption_failed",
        ErrorKind::Throttled => "throttled",
        ErrorKind::Transient => "transient",
        ErrorKind::InvalidId => "invalid_id",
        ErrorKind::InvalidConfig => "invalid_config",
        ErrorKind::InvalidFormat => "invalid_format",
        ErrorKind::Unsupported => "unsupported",
        _ => "other",
    }
}

fn config_error(py: Python<'_>, message: impl Into<String>) -> PyErr {
    exception(py, &Error::invalid_config(message))
}

/// What a read returns: Powertools' `transform`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transform {
    /// `str` for a text value, `bytes` for a binary one.
    Plain,
    /// The value parsed as JSON (`dict`, `list`, ...).
    Json,
    /// `bytes`: a text value base64-decoded, a binary value as it is.
    Binary,
}

impl Transform {
    /// `None`, `"json"`, `"binary"`, or `"auto"` (by the name's suffix, as Powertools does:
    /// `.json` → json, `.binary` → binary, else plain).
    fn parse(py: Python<'_>, text: Option<&str>, name: &str) -> PyResult<Self> {
        Ok(match text {
            None => Self::Plain,
            Some("json") => Self::Json,
            Some("binary") => Self::Binary,
            Some("auto") if name.ends_with(".json") => Self::Json,
            Some("auto") if name.ends_with(".binary") => Self::Binary,
            Some("auto") => Self::Plain,
            Some(other) => {
                return Err(config_error(
                    py,
                    format!(
                        "transform `{other}` is not one of None, \"json\", \"binary\", \"auto\""
                    ),
                ));
            }
        })
    }

    fn apply<'py>(self, py: Python<'py>, secret: &Secret) -> PyResult<Bound<'py, PyAny>> {
        let value = secret.value();
        match self {
            Self::Plain => Ok(match value.expose_str().filter(|_| value.is_text()) {
                Some(text) => PyString::new(py, text).into_any(),
                None => PyBytes::new(py, value.expose_bytes()).into_any(),
            }),
            Self::Json => {
                let parsed: serde_json::Value =
                    secret.deserialize().map_err(|err| exception(py, &err))?;
                json_to_python(py, parsed)
            }
            Self::Binary => match value.expose_str().filter(|_| value.is_text()) {
                None => Ok(PyBytes::new(py, value.expose_bytes()).into_any()),
                Some(text) => match aws_smithy_types::base64::decode(text.trim()) {
                    Ok(bytes) => Ok(PyBytes::new(py, &bytes).into_any()),
                    Err(_) => Err(exception(
                        py,
                        &Error::InvalidFormat {
                            backend: secret.backend(),
                            id: secret.id().to_string(),
                            reason: "is not valid base64 (transform=\"binary\")".to_owned(),
                        },
                    )),
                },
            },
        }
    }
}

fn json_to_python(py: Python<'_>, value: serde_json::Value) -> PyResult<Bound<'_, PyAny>> {
    use serde_json::Value;
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, b).to_owned().into_any(),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.into_pyobject(py)?.into_any(),
            (None, Some(u)) => u.into_pyobject(py)?.into_any(),
            _ => n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any(),
        },
        Value::String(s) => PyString::new(py, &s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(json_to_python(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(fields) => {
            let dict = PyDict::new(py);
            for (key, item) in fields {
                dict.set_item(key, json_to_python(py, item)?)?;
            }
            dict.into_any()
        }
    })
}

fn version_selector(
    py: Python<'_>,
    version_id: Option<String>,
    version_stage: Option<String>,
) -> PyResult<VersionSelector> {
    Ok(match (version_id, version_stage) {
        (None, None) => VersionSelector::Current,
        (Some(id), None) => VersionSelector::Id(id),
        (None, Some(stage)) => VersionSelector::Stage(stage),
        (Some(_), Some(_)) => {
            return Err(config_error(
                py,
                "pass version_id or version_stage, not both",
            ));
        }
    })
}

/// A stack built in one generation of the process.
struct Built {
    generation: u64,
    source: Arc<dyn SecretSource>,
}

/// One configured stack: a backend and the cache layers over it, from a source URL such as
/// `secretsmanager://?memory_ttl=5m` (or `SECRET_LOADER_SOURCE` / `SECRET_LOADER_CONFIG`).
///
/// Built once, here: the SDK clients, their connection pools and the caches live as long as
/// the object. Safe to share between threads; concurrent misses of one id make one call.
#[pyclass(frozen, module = "secret_loader", name = "Source")]
struct Source {
    config: Config,
    built: Mutex<Built>,
    /// Every AWS request this stack sent, by `service:Operation` (the SDK's own HTTPS
    /// client, counting).
    counter: CallCounter,
}

impl Source {
    fn build(py: Python<'_>, config: Config) -> PyResult<Self> {
        let generation = GENERATION.load(Ordering::Acquire);
        let counter = CallCounter::new();
        let source = build_stack(py, &config, &counter)?;
        Ok(Self {
            config,
            built: Mutex::new(Built { generation, source }),
            counter,
        })
    }

    /// The stack of this process: in a forked child, a new one on first use.
    fn stack(&self, py: Python<'_>) -> PyResult<Arc<dyn SecretSource>> {
        let generation = GENERATION.load(Ordering::Acquire);
        {
            let built = lock(&self.built);
            if built.generation == generation {
                return Ok(built.source.clone());
            }
        }
        let source = build_stack(py, &self.config, &self.counter)?;
        let mut built = lock(&self.built);
        if built.generation != generation {
            // The parent's stack: never dropped here (see the module's docs).
            std::mem::forget(std::mem::replace(&mut built.source, source));
            built.generation = generation;
        }
        Ok(built.source.clone())
    }

    fn read(
        &self,
        py: Python<'_>,
        name: String,
        version: VersionSelector,
        refresh: bool,
    ) -> PyResult<Secret> {
        let id = SecretId::new(name).map_err(|err| exception(py, &err))?;
        let stack = self.stack(py)?;
        if !refresh && let Some(secret) = stack.get_fresh(&id, &version) {
            return Ok(secret);
        }
        let read = async {
            if refresh {
                stack.refresh(&id, &version).await
            } else {
                stack.get(&id, &version).await
            }
        };
        wait(py, read)?.map_err(|err| exception(py, &err))
    }

    /// One top-level field of the current JSON value of `name`, as `str`.
    fn field<'py>(
        &self,
        py: Python<'py>,
        name: String,
        field: &str,
        refresh: bool,
    ) -> PyResult<Bound<'py, PyString>> {
        let secret = self.read(py, name, VersionSelector::Current, refresh)?;
        let value = secret
            .json_field(field)
            .map_err(|err| exception(py, &err))?;
        Ok(PyString::new(py, value.expose_secret()))
    }

    fn value<'py>(
        &self,
        py: Python<'py>,
        name: String,
        version: VersionSelector,
        transform: Option<&str>,
        refresh: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let transform = Transform::parse(py, transform, &name)?;
        let secret = self.read(py, name, version, refresh)?;
        transform.apply(py, &secret)
    }
}

fn build_stack(
    py: Python<'_>,
    config: &Config,
    counter: &CallCounter,
) -> PyResult<Arc<dyn SecretSource>> {
    let client = counter.http_client();
    wait(py, config.build_with_http_client(client))?.map_err(|err| exception(py, &err))
}

/// `url` with `options` added to its query (`Source("ssm://", memory_ttl="5m")`).
fn with_options(
    py: Python<'_>,
    url: &str,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<String> {
    let Some(options) = options.filter(|o| !o.is_empty()) else {
        return Ok(url.to_owned());
    };
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in options.iter() {
        let key: String = key.extract()?;
        let value = if value.is_instance_of::<PyBool>() {
            if value.extract::<bool>()? {
                "true"
            } else {
                "false"
            }
            .to_owned()
        } else if value.is_instance_of::<PyString>() {
            value.extract::<String>()?
        } else if value.is_instance_of::<pyo3::types::PyInt>()
            || value.is_instance_of::<pyo3::types::PyFloat>()
        {
            value.str()?.extract::<String>()?
        } else {
            return Err(config_error(
                py,
                format!("option `{key}` must be a str, int, float or bool"),
            ));
        };
        query.append_pair(&key, &value);
    }
    let join = if url.contains('?') { '&' } else { '?' };
    Ok(format!("{url}{join}{}", query.finish()))
}

#[pymethods]
impl Source {
    /// A stack from `url` (default: `SECRET_LOADER_SOURCE`, else the TOML file named by
    /// `SECRET_LOADER_CONFIG`), with `options` added to its query:
    /// `Source("s3+kms://bucket/app", kms_key_id="alias/app", memory_ttl="5m")`.
    ///
    /// Raises `ConfigError` for an invalid URL or option, before any call to AWS.
    #[new]
    #[pyo3(signature = (url=None, **options))]
    fn new(
        py: Python<'_>,
        url: Option<String>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let url = url.or_else(|| {
            std::env::var(secret_loader::config::SOURCE_ENV)
                .ok()
                .filter(|v| !v.trim().is_empty())
        });
        let config = match url {
            Some(url) => Config::from_url(&with_options(py, &url, options)?),
            None if options.is_some_and(|o| !o.is_empty()) => {
                return Err(config_error(
                    py,
                    "options need a source URL (argument or SECRET_LOADER_SOURCE)",
                ));
            }
            None => Config::from_env(),
        }
        .map_err(|err| exception(py, &err))?;
        Self::build(py, config)
    }

    /// The secret `name`: `str` (or `bytes` for a binary value), or as `transform` says
    /// (`"json"`, `"binary"`, `"auto"`). A version by `version_id` or `version_stage`.
    #[pyo3(signature = (name, *, transform=None, version_id=None, version_stage=None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        name: String,
        transform: Option<&str>,
        version_id: Option<String>,
        version_stage: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let version = version_selector(py, version_id, version_stage)?;
        self.value(py, name, version, transform, false)
    }

    /// As `get`, from the backend now, past every cache layer, which keep the answer.
    #[pyo3(signature = (name, *, transform=None, version_id=None, version_stage=None))]
    fn refresh<'py>(
        &self,
        py: Python<'py>,
        name: String,
        transform: Option<&str>,
        version_id: Option<String>,
        version_stage: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let version = version_selector(py, version_id, version_stage)?;
        self.value(py, name, version, transform, true)
    }

    /// One field of the JSON object `name` holds, as `str` (a non-string field in its JSON
    /// form): `get_field("prod/app", "access_key")`.
    fn get_field<'py>(
        &self,
        py: Python<'py>,
        name: String,
        field: &str,
    ) -> PyResult<Bound<'py, PyString>> {
        self.field(py, name, field, false)
    }

    /// The current value of each of `names`, concurrently (one batch call where the backend
    /// has one), as a dict by name. With `raise_on_error=False` a failed name maps to its
    /// exception instead of raising the first failure.
    #[pyo3(signature = (names, *, transform=None, raise_on_error=true))]
    fn get_many<'py>(
        &self,
        py: Python<'py>,
        names: Vec<String>,
        transform: Option<&str>,
        raise_on_error: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        // Refused before any call, whatever the names.
        Transform::parse(py, transform, "")?;
        let mut ids = Vec::with_capacity(names.len());
        let mut transforms = Vec::with_capacity(names.len());
        for name in &names {
            transforms.push(Transform::parse(py, transform, name)?);
            ids.push(SecretId::new(name.as_str()).map_err(|err| exception(py, &err))?);
        }
        let stack = self.stack(py)?;
        let results = wait(py, async { stack.get_many(&ids).await })?;
        let out = PyDict::new(py);
        for ((name, result), transform) in names.into_iter().zip(results).zip(transforms) {
            let value = match result {
                Ok(secret) => transform.apply(py, &secret),
                Err(err) => Err(exception(py, &err)),
            };
            match value {
                Ok(value) => out.set_item(name, value)?,
                Err(err) if raise_on_error => return Err(err),
                Err(err) => out.set_item(name, err.into_value(py))?,
            }
        }
        Ok(out)
    }

    /// The AWS requests this stack has sent, by `service:Operation`
    /// (`{"secretsmanager:GetSecretValue": 1}`): retries count, a cache hit sends none.
    fn calls<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        for (operation, count) in self.counter.snapshot() {
            out.set_item(operation, count)?;
        }
        Ok(out)
    }

    /// The stack, outermost layer first (`memory(secretsmanager(us-east-1))`); never a value.
    fn __repr__(&self) -> String {
        format!("Source({})", lock(&self.built).source)
    }
}

/// Which module function's defaults a stack serves.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct DefaultKey {
    parameter: bool,
    url: Option<String>,
    /// `None`: the URL's own memory layer, else [`DEFAULT_MAX_AGE`].
    max_age: Option<Duration>,
}

/// Powertools' `POWERTOOLS_PARAMETERS_MAX_AGE` when set (seconds), else 300 s.
fn default_max_age(py: Python<'_>) -> PyResult<Duration> {
    match std::env::var(MAX_AGE_ENV) {
        Ok(text) if !text.trim().is_empty() => {
            let seconds = text.trim().parse::<f64>().map_err(|_| {
                config_error(py, format!("{MAX_AGE_ENV} must be a number of seconds"))
            })?;
            Ok(max_age(py, Some(seconds))?.unwrap_or(DEFAULT_MAX_AGE))
        }
        _ => Ok(DEFAULT_MAX_AGE),
    }
}

fn max_age(py: Python<'_>, seconds: Option<f64>) -> PyResult<Option<Duration>> {
    seconds
        .map(|s| {
            Duration::try_from_secs_f64(s)
                .map_err(|_| config_error(py, "max_age must be a number of seconds, 0 or more"))
        })
        .transpose()
}

/// The stack a module function reads through: `source` itself when it is a `Source`, else
/// the process's stack for (`source` or the environment's, `max_age`), built on first use.
fn default_source(
    py: Python<'_>,
    parameter: bool,
    source: Option<&Bound<'_, PyAny>>,
    seconds: Option<f64>,
) -> PyResult<Py<Source>> {
    let url = match source {
        Some(given) => {
            if let Ok(source) = given.cast::<Source>() {
                return Ok(source.clone().unbind());
            }
            Some(given.extract::<String>().map_err(|_| {
                config_error(
                    py,
                    "source must be a source URL (str) or a secret_loader.Source",
                )
            })?)
        }
        None => None,
    };
    let key = DefaultKey {
        parameter,
        url,
        max_age: max_age(py, seconds)?,
    };
    let cell = lock(&DEFAULTS).entry(key.clone()).or_default().clone();
    let mut slot = lock_attached(py, &cell);
    if let Some(source) = slot.as_ref() {
        return Ok(source.clone_ref(py));
    }
    // The first call for this key builds its stack, holding the key's lock: concurrent first
    // calls share one stack, hence one memory cache and one backend call.
    let mut config = match (&key.url, parameter) {
        (Some(url), _) => Config::from_url(url),
        (None, false) => Config::from_env(),
        (None, true) => Config::from_url(
            &std::env::var(PARAMETER_SOURCE_ENV)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| "ssm://".to_owned()),
        ),
    }
    .map_err(|err| exception(py, &err))?;
    match (key.max_age, &mut config.memory) {
        (None, Some(_)) => {}
        (None, memory @ None) => *memory = Some(MemoryOptions::new(default_max_age(py)?)),
        (Some(Duration::ZERO), memory) => *memory = None,
        (Some(ttl), Some(memory)) => memory.ttl = ttl,
        (Some(ttl), memory @ None) => *memory = Some(MemoryOptions::new(ttl)),
    }
    let source = Py::new(py, Source::build(py, config)?)?;
    *slot = Some(source.clone_ref(py));
    Ok(source)
}

/// Powertools' `get_secret`: the secret `name` through `source` (a URL or a `Source`;
/// default `SECRET_LOADER_SOURCE`), kept in memory for `max_age` seconds (default: the URL's
/// `memory_ttl`, else 300 s; 0 keeps nothing); `force_fetch` reads past the caches.
#[pyfunction]
#[pyo3(signature = (name, *, source=None, transform=None, max_age=None, force_fetch=false, version_id=None, version_stage=None))]
#[allow(clippy::too_many_arguments)]
fn get_secret<'py>(
    py: Python<'py>,
    name: String,
    source: Option<&Bound<'py, PyAny>>,
    transform: Option<&str>,
    max_age: Option<f64>,
    force_fetch: bool,
    version_id: Option<String>,
    version_stage: Option<String>,
) -> PyResult<Bound<'py, PyAny>> {
    let stack = default_source(py, false, source, max_age)?;
    let version = version_selector(py, version_id, version_stage)?;
    stack.get().value(py, name, version, transform, force_fetch)
}

/// Powertools' `get_parameter`: as `get_secret`, from `SECRET_LOADER_PARAMETER_SOURCE`
/// (default `ssm://`) when no `source` is given. `decrypt` is accepted for Powertools' calls
/// and changes nothing: a SecureString always comes back decrypted (String parameters are
/// the same either way).
#[pyfunction]
#[pyo3(signature = (name, *, source=None, transform=None, decrypt=None, max_age=None, force_fetch=false))]
fn get_parameter<'py>(
    py: Python<'py>,
    name: String,
    source: Option<&Bound<'py, PyAny>>,
    transform: Option<&str>,
    decrypt: Option<bool>,
    max_age: Option<f64>,
    force_fetch: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let _ = decrypt;
    let stack = default_source(py, true, source, max_age)?;
    stack
        .get()
        .value(py, name, VersionSelector::Current, transform, force_fetch)
}

/// One field of the JSON object `name` holds, as `str`: the seed's `value["access_key"]`
/// in one call. Same `source`, `max_age` and `force_fetch` as `get_secret`.
#[pyfunction]
#[pyo3(signature = (name, field, *, source=None, max_age=None, force_fetch=false))]
fn get_field<'py>(
    py: Python<'py>,
    name: String,
    field: &str,
    source: Option<&Bound<'py, PyAny>>,
    max_age: Option<f64>,
    force_fetch: bool,
) -> PyResult<Bound<'py, PyString>> {
    let stack = default_source(py, false, source, max_age)?;
    stack.get().field(py, name, field, force_fetch)
}

/// The AWS requests the module functions' stacks have sent, by `service:Operation`, all
/// together (each `Source` counts its own: `Source.calls()`).
#[pyfunction]
fn calls(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let slots: Vec<Slot> = lock(&DEFAULTS).values().cloned().collect();
    let mut total = std::collections::BTreeMap::<String, u64>::new();
    for slot in slots {
        if let Some(source) = lock_attached(py, &slot).as_ref() {
            for (operation, count) in source.get().counter.snapshot() {
                *total.entry(operation).or_default() += count;
            }
        }
    }
    let out = PyDict::new(py);
    for (operation, count) in total {
        out.set_item(operation, count)?;
    }
    Ok(out)
}

/// Called in a forked child (`os.register_at_fork`): the parent's runtime and stacks stay
/// untouched; each is made again on first use.
#[pyfunction]
fn _after_fork_in_child() {
    GENERATION.fetch_add(1, Ordering::AcqRel);
}

/// Logs go to stderr only when asked for with `SECRET_LOADER_LOG` (e.g. `debug`), as with
/// the CLI. No log line carries a secret value.
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
        Err(err) => eprintln!("secret_loader: ignoring SECRET_LOADER_LOG: {err}"),
    }
}

#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    init_logging();
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    module.add_class::<Source>()?;
    module.add_function(wrap_pyfunction!(get_secret, module)?)?;
    module.add_function(wrap_pyfunction!(get_parameter, module)?)?;
    module.add_function(wrap_pyfunction!(get_field, module)?)?;
    module.add_function(wrap_pyfunction!(calls, module)?)?;
    module.add_function(wrap_pyfunction!(_after_fork_in_child, module)?)?;
    Ok(())
}
