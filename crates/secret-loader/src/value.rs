//! Secret values, the metadata that comes with them, and version selectors.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use secrecy::{ExposeSecret, SecretSlice, SecretString};
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::id::SecretId;

/// A secret's value: text or bytes.
///
/// Never printable: `Debug` shows only the kind and length, there is no `Display` and no
/// `Serialize`. The bytes are zeroized when the last clone is dropped. Cloning is an `Arc`
/// clone, so caches hand out copies without copying the secret. Read it through
/// [`SecretValue::expose_bytes`] or [`SecretValue::expose_str`], so every use is greppable.
#[derive(Clone)]
pub struct SecretValue(Arc<Repr>);

enum Repr {
    Text(SecretString),
    Binary(SecretSlice<u8>),
}

impl SecretValue {
    /// A text value (Secrets Manager's `SecretString`).
    pub fn text(value: impl Into<String>) -> Self {
        Self(Arc::new(Repr::Text(SecretString::from(value.into()))))
    }

    /// A binary value (Secrets Manager's `SecretBinary`).
    pub fn binary(value: impl Into<Vec<u8>>) -> Self {
        Self(Arc::new(Repr::Binary(SecretSlice::from(value.into()))))
    }

    /// True for a text value, false for a binary one.
    pub fn is_text(&self) -> bool {
        matches!(*self.0, Repr::Text(_))
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.expose_bytes().len()
    }

    /// True when the value is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The raw bytes (UTF-8 for text values).
    pub fn expose_bytes(&self) -> &[u8] {
        match &*self.0 {
            Repr::Text(s) => s.expose_secret().as_bytes(),
            Repr::Binary(b) => b.expose_secret(),
        }
    }

    /// The value as text: a text value, or a binary one that happens to be UTF-8.
    /// `None` for binary values that are not UTF-8.
    pub fn expose_str(&self) -> Option<&str> {
        match &*self.0 {
            Repr::Text(s) => Some(s.expose_secret()),
            Repr::Binary(b) => std::str::from_utf8(b.expose_secret()).ok(),
        }
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.is_text() { "text" } else { "binary" };
        write!(f, "SecretValue({kind}, {} bytes, [REDACTED])", self.len())
    }
}

impl PartialEq for SecretValue {
    /// Same kind and same bytes. Not constant-time: don't use it to check a guess.
    fn eq(&self, other: &Self) -> bool {
        self.is_text() == other.is_text() && self.expose_bytes() == other.expose_bytes()
    }
}

impl Eq for SecretValue {}

/// Staging label of the current version, as in Secrets Manager.
pub const STAGE_CURRENT: &str = "AWSCURRENT";
/// Staging label of the version before the current one, as in Secrets Manager.
pub const STAGE_PREVIOUS: &str = "AWSPREVIOUS";

/// Which version of a secret to read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum VersionSelector {
    /// The current version (`AWSCURRENT` in Secrets Manager, the latest object version in S3).
    #[default]
    Current,
    /// The version carrying this staging label (Secrets Manager `VersionStage`, e.g. `AWSPREVIOUS`).
    Stage(String),
    /// This exact version (Secrets Manager `VersionId`, S3 object version id).
    Id(String),
}

impl fmt::Display for VersionSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Current => f.write_str("current"),
            Self::Stage(stage) => write!(f, "stage {stage}"),
            Self::Id(id) => write!(f, "version {id}"),
        }
    }
}

/// A secret as read from a backend: its value and where it came from.
///
/// The value is redacted in `Debug`; the metadata (backend, id, version) is shown. Cloning
/// is one reference-count increment, so caches hand out copies for free.
#[derive(Clone)]
pub struct Secret(Arc<SecretInner>);

#[derive(Clone)]
struct SecretInner {
    id: SecretId,
    backend: &'static str,
    value: SecretValue,
    version_id: Option<String>,
    version_stages: Vec<String>,
    about: Option<Box<About>>,
}

/// What a backend says about a secret besides its value and version (none of it secret).
#[derive(Clone, Default)]
struct About {
    arn: Option<String>,
    name: Option<String>,
    created: Option<SystemTime>,
    value_type: Option<String>,
}

impl Secret {
    /// A secret read by `backend` under `id`.
    pub fn new(id: SecretId, backend: &'static str, value: SecretValue) -> Self {
        Self(Arc::new(SecretInner {
            id,
            backend,
            value,
            version_id: None,
            version_stages: Vec::new(),
            about: None,
        }))
    }

    fn about_mut(&mut self) -> &mut About {
        Arc::make_mut(&mut self.0)
            .about
            .get_or_insert_with(Box::default)
    }

    /// Sets the resource's ARN as the backend reports it (Secrets Manager, Parameter Store).
    pub fn with_arn(mut self, arn: Option<String>) -> Self {
        self.about_mut().arn = arn;
        self
    }

    /// Sets the backend's own name for the secret (Secrets Manager's `Name` for a read by
    /// ARN; a parameter's full name).
    pub fn with_name(mut self, name: Option<String>) -> Self {
        self.about_mut().name = name;
        self
    }

    /// Sets when this version was made (Secrets Manager's `CreatedDate`, Parameter Store's
    /// `LastModifiedDate`).
    pub fn with_created(mut self, created: Option<SystemTime>) -> Self {
        self.about_mut().created = created;
        self
    }

    /// Sets the backend's type of the value (Parameter Store: `SecureString`, `String`,
    /// `StringList`).
    pub fn with_value_type(mut self, value_type: Option<String>) -> Self {
        self.about_mut().value_type = value_type;
        self
    }

    /// The resource's ARN, when the backend reported one.
    pub fn arn(&self) -> Option<&str> {
        self.0.about.as_ref()?.arn.as_deref()
    }

    /// The backend's own name for the secret, when it reported one.
    pub fn name(&self) -> Option<&str> {
        self.0.about.as_ref()?.name.as_deref()
    }

    /// When this version was made, when the backend reported it.
    pub fn created(&self) -> Option<SystemTime> {
        self.0.about.as_ref()?.created
    }

    /// The backend's type of the value, when it has types (Parameter Store).
    pub fn value_type(&self) -> Option<&str> {
        self.0.about.as_ref()?.value_type.as_deref()
    }

    /// Sets the version id reported by the backend.
    pub fn with_version_id(mut self, version_id: Option<String>) -> Self {
        Arc::make_mut(&mut self.0).version_id = version_id;
        self
    }

    /// Sets the staging labels reported by the backend.
    pub fn with_version_stages(mut self, stages: Vec<String>) -> Self {
        Arc::make_mut(&mut self.0).version_stages = stages;
        self
    }

    /// The id it was requested under.
    pub fn id(&self) -> &SecretId {
        &self.0.id
    }

    /// The backend that produced it (`secretsmanager`, ...).
    pub fn backend(&self) -> &'static str {
        self.0.backend
    }

    /// The value.
    pub fn value(&self) -> &SecretValue {
        &self.0.value
    }

    /// Consumes the secret, returning its value.
    pub fn into_value(self) -> SecretValue {
        self.0.value.clone()
    }

    /// The version id, when the backend versions secrets.
    pub fn version_id(&self) -> Option<&str> {
        self.0.version_id.as_deref()
    }

    /// The staging labels of this version (Secrets Manager), e.g. `["AWSCURRENT"]`.
    pub fn version_stages(&self) -> &[String] {
        &self.0.version_stages
    }

    /// The value as text.
    ///
    /// # Errors
    /// [`Error::InvalidFormat`] when the value is binary and not UTF-8.
    pub fn expose_str(&self) -> Result<&str> {
        self.0
            .value
            .expose_str()
            .ok_or_else(|| self.invalid_format("is binary and not UTF-8"))
    }

    /// The value as a [`SecretString`] (a copy, zeroized on drop).
    ///
    /// # Errors
    /// [`Error::InvalidFormat`] when the value is binary and not UTF-8.
    pub fn to_secret_string(&self) -> Result<SecretString> {
        self.expose_str().map(SecretString::from)
    }

    /// Deserializes the value, which must be JSON, into `T`.
    ///
    /// Intermediate strings made by the JSON parser are not zeroized; give `T` zeroizing
    /// fields (e.g. [`SecretString`]) to keep the result itself safe.
    ///
    /// # Errors
    /// [`Error::InvalidFormat`] when the value is not JSON or not of `T`'s shape. The message
    /// gives the position and class of the problem, never the value.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(self.0.value.expose_bytes()).map_err(|err| {
            // serde_json's message can quote the offending input ("invalid type: string
            // \"hunter2\""); keep only what cannot contain the value.
            let class = match err.classify() {
                serde_json::error::Category::Io => "could not be read",
                serde_json::error::Category::Syntax => "is not valid JSON",
                serde_json::error::Category::Eof => "is truncated JSON",
                serde_json::error::Category::Data => "is JSON of an unexpected shape",
            };
            self.invalid_format(format!(
                "{class} (line {}, column {})",
                err.line(),
                err.column()
            ))
        })
    }

    /// One top-level field of a JSON object value, as text: a JSON string as is,
    /// any other JSON value (number, object, ...) in its JSON form.
    ///
    /// # Errors
    /// [`Error::InvalidFormat`] when the value is not a JSON object or lacks the field.
    pub fn json_field(&self, field: &str) -> Result<SecretString> {
        let mut object: serde_json::Map<String, serde_json::Value> = self.deserialize()?;
        match object.remove(field) {
            Some(serde_json::Value::String(text)) => Ok(SecretString::from(text)),
            Some(other) => Ok(SecretString::from(other.to_string())),
            None => Err(self.invalid_format(format!("has no JSON field `{field}`"))),
        }
    }

    fn invalid_format(&self, reason: impl Into<String>) -> Error {
        Error::InvalidFormat {
            backend: self.0.backend,
            id: self.0.id.to_string(),
            reason: reason.into(),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secret")
            .field("id", &self.0.id)
            .field("backend", &self.0.backend)
            .field("value", &self.0.value)
            .field("version_id", &self.0.version_id)
            .field("version_stages", &self.0.version_stages)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALUE: &str = r#"{"access_key":"AKIDEXAMPLE","secret_key":"wJalrXUtnFEMI","port":5432}"#;

    fn secret(value: SecretValue) -> Secret {
        Secret::new(SecretId::new("app/creds").unwrap(), "test", value)
    }

    #[test]
    fn debug_never_shows_the_value() {
        let s = secret(SecretValue::text(VALUE)).with_version_id(Some("v1".into()));
        let debug = format!("{s:?} {:?} {s:#?}", s.value());
        for fragment in ["AKIDEXAMPLE", "wJalrXUtnFEMI", "access_key"] {
            assert!(!debug.contains(fragment), "{debug}");
        }
        assert!(debug.contains("REDACTED") && debug.contains("v1") && debug.contains("app/creds"));
        let bin = format!("{:?}", SecretValue::binary(b"hunter2".to_vec()));
        assert_eq!(bin, "SecretValue(binary, 7 bytes, [REDACTED])");
    }

    #[test]
    fn fields_and_typed_deserialize() {
        let s = secret(SecretValue::text(VALUE));
        assert_eq!(
            s.json_field("access_key").unwrap().expose_secret(),
            "AKIDEXAMPLE"
        );
        assert_eq!(
            s.json_field("secret_key").unwrap().expose_secret(),
            "wJalrXUtnFEMI"
        );
        assert_eq!(s.json_field("port").unwrap().expose_secret(), "5432");

        #[derive(serde::Deserialize)]
        struct Creds {
            access_key: String,
            port: u16,
        }
        let creds: Creds = s.deserialize().unwrap();
        assert_eq!(
            (creds.access_key.as_str(), creds.port),
            ("AKIDEXAMPLE", 5432)
        );
    }

    #[test]
    fn format_errors_never_quote_the_value() {
        let s = secret(SecretValue::text(VALUE));
        let missing = s.json_field("password").unwrap_err();
        assert_eq!(missing.kind(), crate::ErrorKind::InvalidFormat);
        assert!(missing.to_string().contains("no JSON field `password`"));

        // serde_json itself would say: invalid type: string "AKIDEXAMPLE", expected u32
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Wrong {
            access_key: u32,
        }
        let wrong = s.deserialize::<Wrong>().unwrap_err();
        let not_json = secret(SecretValue::text("hunter2 is not json")).deserialize::<Wrong>();
        let not_utf8 = secret(SecretValue::binary(vec![0xff, 0xfe, b'h', b'u']));
        let errors = [
            wrong,
            not_json.unwrap_err(),
            not_utf8.expose_str().unwrap_err(),
        ];
        for err in errors {
            let text = format!("{err} {err:?}");
            for fragment in ["AKIDEXAMPLE", "hunter2", "wJalr"] {
                assert!(!text.contains(fragment), "{text}");
            }
            assert_eq!(err.kind(), crate::ErrorKind::InvalidFormat);
        }
    }

    #[test]
    fn binary_utf8_reads_as_text() {
        let v = SecretValue::binary(b"plain".to_vec());
        assert!(!v.is_text());
        assert_eq!(v.expose_str(), Some("plain"));
        assert_ne!(v, SecretValue::text("plain"));
        assert_eq!(v.clone(), v);
    }
}
