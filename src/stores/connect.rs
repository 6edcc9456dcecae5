//! The real stores of a run: one shared AWS configuration and runtime,
//! one client per store.

use std::rc::Rc;

use super::{Backend, Connect, Failure, Store, StoreError};
use crate::report::Reporter;

/// How the stores of a run are reached.
#[derive(Clone)]
pub struct StoreOptions {
    /// AWS settings (`--aws-profile`, `--timeout`, `--jobs`).
    #[cfg(feature = "aws")]
    pub aws: crate::keys::aws::AwsOptions,
    /// Where `-v` traces go.
    pub reporter: Rc<dyn Reporter>,
}

/// Opens the real stores.
pub struct Connector {
    #[cfg(feature = "aws")]
    aws: Rc<super::aws::AwsShared>,
    #[allow(dead_code)]
    reporter: Rc<dyn Reporter>,
}

impl Connector {
    /// Nothing is loaded or called until a store is used.
    pub fn new(options: StoreOptions) -> Connector {
        Connector {
            #[cfg(feature = "aws")]
            aws: super::aws::AwsShared::new(options.aws, options.reporter.clone()),
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
                Failure::Other,
                "this build of ksec has no AWS support (built without the `aws` feature)",
            )),
            Backend::Vault(_) => Err(StoreError::new(
                Failure::Other,
                "Vault KV stores need ksec's shared Vault client (issue 13), which this build does not have yet",
            )),
        }
    }
}
