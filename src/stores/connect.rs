//! The real stores of a run: one shared AWS configuration and runtime,
//! one client per store.

use std::rc::Rc;

use super::{Backend, Connect, Store, StoreError};
use crate::report::Reporter;

/// How the stores of a run are reached.
#[derive(Clone)]
pub struct StoreOptions {
    /// AWS settings (`--aws-profile`, `--timeout`, `--jobs`).
    #[cfg(feature = "aws")]
    pub aws: crate::keys::aws::AwsOptions,
    /// Timeouts, concurrency and retries of the Vault client.
    #[cfg(feature = "vault")]
    pub net: crate::net::NetOptions,
    /// Where `-v` traces go.
    pub reporter: Rc<dyn Reporter>,
}

/// Opens the real stores.
pub struct Connector {
    #[cfg(feature = "aws")]
    aws: Rc<super::aws::AwsShared>,
    #[cfg(feature = "vault")]
    net: crate::net::NetOptions,
    #[cfg_attr(not(feature = "vault"), allow(dead_code))]
    reporter: Rc<dyn Reporter>,
}

impl Connector {
    /// Nothing is loaded or called until a store is used.
    pub fn new(options: StoreOptions) -> Connector {
        Connector {
            #[cfg(feature = "aws")]
            aws: super::aws::AwsShared::new(options.aws, options.reporter.clone()),
            #[cfg(feature = "vault")]
            net: options.net,
            reporter: options.reporter,
        }
    }
}

impl Connector {
    /// The AWS region stores without their own use (for the ExternalSecret
    /// `push` prints).
    pub fn aws_region(&self) -> Option<String> {
        #[cfg(feature = "aws")]
        return self.aws.default_region();
        #[cfg(not(feature = "aws"))]
        None
    }
}

impl Connect for Connector {
    fn connect(&self, backend: &Backend) -> Result<Box<dyn Store>, StoreError> {
        match backend {
            #[cfg(feature = "aws")]
            Backend::SecretsManager(a) => Ok(Box::new(super::aws::SecretsManager::new(
                self.aws.clone(),
                a.clone(),
            ))),
            #[cfg(feature = "aws")]
            Backend::ParameterStore(a) => Ok(Box::new(super::aws::ParameterStore::new(
                self.aws.clone(),
                a.clone(),
            ))),
            #[cfg(not(feature = "aws"))]
            Backend::SecretsManager(_) | Backend::ParameterStore(_) => Err(StoreError::new(
                super::Failure::Other,
                "this build of ksec has no AWS support (built without the `aws` feature)",
            )),
            #[cfg(feature = "vault")]
            Backend::Vault(v) => Ok(Box::new(super::vault::VaultKv::new(
                self.net,
                self.reporter.clone(),
                v.clone(),
            ))),
            #[cfg(not(feature = "vault"))]
            Backend::Vault(_) => Err(StoreError::new(
                super::Failure::Other,
                "this build of ksec has no Vault support (built without the `vault` feature)",
            )),
        }
    }
}
