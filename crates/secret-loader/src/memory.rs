//! An in-process backend: for tests, examples and as the base under cache layers in benchmarks.

use std::collections::HashMap;
use std::fmt;
use std::sync::RwLock;

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::id::SecretId;
use crate::source::{PutOutcome, SecretSource, SecretStore};
use crate::value::{STAGE_CURRENT, STAGE_PREVIOUS, Secret, SecretValue, VersionSelector};

const BACKEND: &str = "memory";

/// Secrets held in this process, versioned like Secrets Manager: each put adds a version
/// (ids `1`, `2`, ...), labelled `AWSCURRENT`, and the one before it `AWSPREVIOUS`.
#[derive(Default)]
pub struct InMemorySource {
    secrets: RwLock<HashMap<SecretId, Vec<SecretValue>>>,
}

impl InMemorySource {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl SecretSource for InMemorySource {
    async fn get(&self, id: &SecretId, version: &VersionSelector) -> Result<Secret> {
        let secrets = self.secrets.read().unwrap_or_else(|e| e.into_inner());
        let not_found = || Error::NotFound {
            backend: BACKEND,
            id: id.to_string(),
            source: None,
        };
        let versions = secrets.get(id).ok_or_else(not_found)?;
        let current = versions.len() - 1;
        let index = match version {
            VersionSelector::Current => Some(current),
            VersionSelector::Stage(stage) if stage == STAGE_CURRENT => Some(current),
            VersionSelector::Stage(stage) if stage == STAGE_PREVIOUS => current.checked_sub(1),
            VersionSelector::Stage(_) => None,
            VersionSelector::Id(v) => v
                .parse::<usize>()
                .ok()
                .and_then(|n| n.checked_sub(1))
                .filter(|&i| i <= current),
        }
        .ok_or_else(not_found)?;
        let stages = if index == current {
            vec![STAGE_CURRENT.to_owned()]
        } else if index + 1 == current {
            vec![STAGE_PREVIOUS.to_owned()]
        } else {
            Vec::new()
        };
        Ok(Secret::new(id.clone(), BACKEND, versions[index].clone())
            .with_version_id(Some((index + 1).to_string()))
            .with_version_stages(stages))
    }
}

#[async_trait]
impl SecretStore for InMemorySource {
    async fn put(&self, id: &SecretId, value: &SecretValue) -> Result<PutOutcome> {
        let mut secrets = self.secrets.write().unwrap_or_else(|e| e.into_inner());
        let versions = secrets.entry(id.clone()).or_default();
        versions.push(value.clone());
        Ok(PutOutcome::new(
            Some(versions.len().to_string()),
            versions.len() == 1,
        ))
    }

    async fn delete(&self, id: &SecretId) -> Result<()> {
        let mut secrets = self.secrets.write().unwrap_or_else(|e| e.into_inner());
        secrets.remove(id).map(drop).ok_or_else(|| Error::NotFound {
            backend: BACKEND,
            id: id.to_string(),
            source: None,
        })
    }
}

impl fmt::Debug for InMemorySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.secrets.read().map(|s| s.len()).unwrap_or_default();
        f.debug_struct("InMemorySource")
            .field("secrets", &count)
            .finish()
    }
}

impl fmt::Display for InMemorySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(BACKEND)
    }
}
