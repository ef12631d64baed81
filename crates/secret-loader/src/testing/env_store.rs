//! `env+kms://` as a store, for the behaviour suite: `put` seals the value as the CLI's `seal`
//! does and sets the variable in a map environment, as a deployment sets it in a function's
//! configuration. Reads go through the real [`EnvKmsSource`] and KMS.

use std::fmt;

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::{EnvKmsSource, PutOutcome, Secret, SecretId, SecretSource, SecretStore};
use crate::{SecretValue, VersionSelector};

/// An [`EnvKmsSource`] over a [map environment](crate::env::Environment::map) whose `put`
/// seals and sets the variable.
#[derive(Debug)]
pub struct SealingStore {
    source: EnvKmsSource,
}

impl SealingStore {
    /// A store writing into `source`'s own environment (make it with
    /// [`Environment::map`](crate::env::Environment::map): the process's is not ours to change).
    pub fn new(source: EnvKmsSource) -> Self {
        Self { source }
    }

    /// The source reading what this store writes.
    pub fn source(&self) -> &EnvKmsSource {
        &self.source
    }
}

impl fmt::Display for SealingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.source.fmt(f)
    }
}

#[async_trait]
impl SecretSource for SealingStore {
    fn identity(&self) -> String {
        self.source.identity()
    }

    fn identity_of(&self, id: &SecretId) -> String {
        self.source.identity_of(id)
    }

    async fn get(&self, id: &SecretId, version: &VersionSelector) -> Result<Secret> {
        self.source.get(id, version).await
    }
}

#[async_trait]
impl SecretStore for SealingStore {
    async fn put(&self, id: &SecretId, value: &SecretValue) -> Result<PutOutcome> {
        let sealed = self.source.seal(id, value, None).await?;
        let existed = self
            .source
            .environment()
            .set(&self.source.variable_name(id), sealed);
        Ok(PutOutcome::new(None, !existed))
    }

    async fn delete(&self, id: &SecretId) -> Result<()> {
        if self
            .source
            .environment()
            .remove(&self.source.variable_name(id))
        {
            Ok(())
        } else {
            Err(Error::NotFound {
                backend: crate::env::BACKEND_KMS,
                id: id.to_string(),
                source: None,
            })
        }
    }
}
