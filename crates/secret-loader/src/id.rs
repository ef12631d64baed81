//! Secret ids, validated once at the edge.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// Longest accepted secret name (Secrets Manager's limit).
pub const MAX_NAME_LEN: usize = 512;
/// Longest accepted ARN (Secrets Manager's limit for a `SecretId`).
pub const MAX_ARN_LEN: usize = 2048;

/// A validated secret id: a name such as `prod/app/db`, or a Secrets Manager ARN.
///
/// Every name a service accepts is an id:
///
/// * a **name** is 1 to 512 characters from `A-Z a-z 0-9 / _ + = . @ -` (Secrets Manager's
///   set): so no spaces, no control characters, no backslashes. A leading `/`, `//` or a
///   trailing `/` are Secrets Manager names like any other (`/prod/db` is common).
/// * an **ARN** is a secret's, `arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME`, or a
///   parameter's, `arn:PARTITION:ssm:REGION:ACCOUNT:parameter/NAME` (how a parameter shared
///   from another account is read), at most 2048 characters, whose `NAME` follows the rules
///   above. Each service takes only its own ARNs ([`SecretId::arn_service`]); backends that
///   are not AWS services refuse ARNs or use [`SecretId::name`].
///
/// Path safety is where an id becomes a path: a backend that maps ids to files asks for
/// [`SecretId::path_segments`], which refuses absolute ids, empty segments and `.`/`..`.
/// Validation happens in [`SecretId::new`] (and `FromStr`), before any network call.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretId {
    id: String,
    /// Byte offset of the name inside `id` (0 for plain names).
    name_start: usize,
}

impl SecretId {
    /// Validates `id` as a secret name or ARN.
    ///
    /// # Errors
    /// [`Error::InvalidId`] naming the rule that was broken.
    pub fn new(id: impl Into<String>) -> Result<Self> {
        let id = id.into();
        let name_start = match id.strip_prefix("arn:") {
            Some(rest) => {
                if id.len() > MAX_ARN_LEN {
                    return Err(invalid(id, "ARN longer than 2048 characters"));
                }
                match parse_arn(rest) {
                    Ok(offset) => "arn:".len() + offset,
                    Err(reason) => return Err(invalid(id, reason)),
                }
            }
            None => 0,
        };
        if let Err(reason) = validate_name(&id[name_start..]) {
            return Err(invalid(id, reason));
        }
        Ok(Self { id, name_start })
    }

    /// The id as given (name or ARN).
    pub fn as_str(&self) -> &str {
        &self.id
    }

    /// The secret's name: the id itself, or the resource part of an ARN
    /// (which, for Secrets Manager ARNs, ends in a random `-XXXXXX` suffix).
    pub fn name(&self) -> &str {
        &self.id[self.name_start..]
    }

    /// True when the id is an ARN.
    pub fn is_arn(&self) -> bool {
        self.name_start > 0
    }

    /// The service an ARN id belongs to; `None` for a name.
    pub fn arn_service(&self) -> Option<ArnService> {
        if !self.is_arn() {
            return None;
        }
        Some(match self.id.split(':').nth(2) {
            Some("ssm") => ArnService::ParameterStore,
            _ => ArnService::SecretsManager,
        })
    }

    /// The `/`-separated segments of [`SecretId::name`] as a relative path, for backends
    /// that map ids to files: each non-empty, not `.` or `..`.
    ///
    /// # Errors
    /// [`Error::InvalidId`] for an absolute id (`/etc/passwd`), an empty segment (`a//b`,
    /// `a/`) or a `.`/`..` segment (`../x`): names a service takes, but no safe path.
    pub fn path_segments(&self) -> Result<Vec<&str>> {
        let name = self.name();
        let reason = if name.starts_with('/') {
            Some("absolute path (starts with `/`)")
        } else {
            name.split('/').find_map(|segment| match segment {
                "" => Some("empty path segment (`//` or trailing `/`)"),
                "." | ".." => Some("`.` or `..` path segment"),
                _ => None,
            })
        };
        match reason {
            Some(reason) => Err(invalid(self.id.clone(), reason)),
            None => Ok(name.split('/').collect()),
        }
    }
}

fn invalid(id: String, reason: &'static str) -> Error {
    // Keep error messages bounded even for absurd input.
    let id = if id.len() > 256 {
        let cut = (0..=256)
            .rev()
            .find(|&i| id.is_char_boundary(i))
            .unwrap_or(0);
        format!("{}…", &id[..cut])
    } else {
        id
    };
    Error::InvalidId { id, reason }
}

fn validate_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty");
    }
    if name.len() > MAX_NAME_LEN {
        return Err("longer than 512 characters");
    }
    if let Some(c) = name.chars().find(|c| !is_name_char(*c)) {
        return Err(if c.is_control() {
            "contains a control character"
        } else if c == '\\' {
            "contains a backslash"
        } else {
            "contains a character outside A-Z a-z 0-9 / _ + = . @ -"
        });
    }
    Ok(())
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '+' | '=' | '.' | '@' | '-')
}

/// Checks `PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME` or
/// `PARTITION:ssm:REGION:ACCOUNT:parameter/NAME` and returns NAME's offset.
fn parse_arn(rest: &str) -> Result<usize, &'static str> {
    let mut parts = rest.splitn(5, ':');
    let (Some(partition), Some(service), Some(region), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err("ARN has too few `:` fields");
    };
    if !partition.starts_with("aws") {
        return Err("ARN partition must start with `aws`");
    }
    let (kind, separator) = match service {
        "secretsmanager" => ("secret", ':'),
        "ssm" => ("parameter", '/'),
        _ => return Err("ARN is not a Secrets Manager or Parameter Store ARN"),
    };
    if region.is_empty()
        || !region
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err("ARN region is not valid");
    }
    if account.len() != 12 || !account.chars().all(|c| c.is_ascii_digit()) {
        return Err("ARN account is not 12 digits");
    }
    let name = resource
        .strip_prefix(kind)
        .and_then(|r| r.strip_prefix(separator))
        .ok_or(if service == "ssm" {
            "ARN resource is not `parameter/NAME`"
        } else {
            "ARN resource type is not `secret`"
        })?;
    Ok(rest.len() - name.len())
}

/// The AWS service an ARN id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArnService {
    /// `arn:...:secretsmanager:...:secret:NAME`.
    SecretsManager,
    /// `arn:...:ssm:...:parameter/NAME`.
    ParameterStore,
}

impl FromStr for SecretId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

impl TryFrom<&str> for SecretId {
    type Error = Error;

    fn try_from(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

impl TryFrom<String> for SecretId {
    type Error = Error;

    fn try_from(s: String) -> Result<Self> {
        Self::new(s)
    }
}

impl AsRef<str> for SecretId {
    fn as_ref(&self) -> &str {
        &self.id
    }
}

impl fmt::Display for SecretId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

impl fmt::Debug for SecretId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretId({:?})", self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf";

    #[test]
    fn accepts_names_and_arns() {
        for ok in ["a", "prod/app/db", "x.y_z+1=2@3-4", &"n".repeat(512)] {
            let id = SecretId::new(ok).unwrap();
            assert_eq!(id.as_str(), ok);
            assert_eq!(id.name(), ok);
            assert!(!id.is_arn());
        }
        let id = SecretId::new(ARN).unwrap();
        assert!(id.is_arn());
        assert_eq!(id.name(), "prod/db-AbCdEf");
        assert_eq!(id.path_segments().unwrap(), ["prod", "db-AbCdEf"]);
        let gov = "arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:x";
        assert_eq!(SecretId::new(gov).unwrap().name(), "x");
        assert_eq!(id.arn_service(), Some(ArnService::SecretsManager));
        assert_eq!(SecretId::new("a").unwrap().arn_service(), None);
        let parameter =
            SecretId::new("arn:aws:ssm:eu-west-1:123456789012:parameter/prod/db").unwrap();
        assert!(parameter.is_arn());
        assert_eq!(parameter.name(), "prod/db");
        assert_eq!(parameter.arn_service(), Some(ArnService::ParameterStore));
    }

    #[test]
    fn rejects_each_bad_shape_with_its_reason() {
        let long = "n".repeat(513);
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            (&long, "longer than 512 characters"),
            ("a\nb", "contains a control character"),
            ("a\0b", "contains a control character"),
            ("a\\b", "contains a backslash"),
            (
                "a b",
                "contains a character outside A-Z a-z 0-9 / _ + = . @ -",
            ),
            (
                "é",
                "contains a character outside A-Z a-z 0-9 / _ + = . @ -",
            ),
            (
                "arn:aws:s3:::bucket",
                "ARN is not a Secrets Manager or Parameter Store ARN",
            ),
            ("arn:aws:secretsmanager:x", "ARN has too few `:` fields"),
            (
                "arn:aws:kms:us-east-1:123456789012:key:abc",
                "ARN is not a Secrets Manager or Parameter Store ARN",
            ),
            (
                "arn:aws:ssm:us-east-1:123456789012:document/x",
                "ARN resource is not `parameter/NAME`",
            ),
            (
                "arn:aws:ssm:us-east-1:123456789012:parameter",
                "ARN resource is not `parameter/NAME`",
            ),
            ("arn:aws:ssm:us-east-1:123456789012:parameter/", "empty"),
            (
                "arn:aws:secretsmanager:us-east-1:1234:secret:x",
                "ARN account is not 12 digits",
            ),
            (
                "arn:aws:secretsmanager:us-east-1:123456789012:key:x",
                "ARN resource type is not `secret`",
            ),
            (
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:",
                "empty",
            ),
        ];
        for (input, want) in cases {
            match SecretId::new(*input) {
                Err(Error::InvalidId { reason, .. }) => assert_eq!(reason, *want, "{input:?}"),
                other => panic!("{input:?} gave {other:?}"),
            }
        }
    }

    /// Names Secrets Manager accepts are ids; they are refused only where an id becomes a
    /// path, each with its reason.
    #[test]
    fn service_names_are_ids_and_path_safety_is_asked_for_where_it_matters() {
        for (name, path_reason) in [
            ("/etc/passwd", "absolute path (starts with `/`)"),
            ("/prod/db", "absolute path (starts with `/`)"),
            ("../x", "`.` or `..` path segment"),
            ("a/../../b", "`.` or `..` path segment"),
            ("a/./b", "`.` or `..` path segment"),
            ("..", "`.` or `..` path segment"),
            ("a//b", "empty path segment (`//` or trailing `/`)"),
            ("a/", "empty path segment (`//` or trailing `/`)"),
            (
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:../x",
                "`.` or `..` path segment",
            ),
        ] {
            let id = SecretId::new(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            match id.path_segments() {
                Err(Error::InvalidId { reason, .. }) => assert_eq!(reason, path_reason, "{name}"),
                other => panic!("{name} gave {other:?}"),
            }
        }
        assert_eq!(
            SecretId::new("team/app/db")
                .unwrap()
                .path_segments()
                .unwrap(),
            ["team", "app", "db"]
        );
    }

    #[test]
    fn error_message_is_bounded() {
        let err = SecretId::new("é".repeat(5000)).unwrap_err();
        assert!(err.to_string().len() < 400, "{}", err.to_string().len());
    }
}
