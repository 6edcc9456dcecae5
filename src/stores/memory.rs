//! An in-memory store for unit tests: the controllers' golden examples
//! (notes on ESO and KES) checked without a network.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use zeroize::Zeroizing;

use super::json::Json;
use super::{
    Backend, Connect, Failure, Find, Get, Put, PutReport, Remote, Store, StoreError, Version,
};

/// A stored value.
#[derive(Clone)]
pub enum Val {
    Text(String),
    Binary(Vec<u8>),
    Kv(String),
}

impl Val {
    fn remote(&self) -> Remote {
        match self {
            Val::Text(t) => Remote::Text(Zeroizing::new(t.clone())),
            Val::Binary(b) => Remote::Binary(Zeroizing::new(b.clone())),
            Val::Kv(j) => Remote::Kv(Json::parse(Zeroizing::new(j.clone())).expect("JSON")),
        }
    }
}

/// Values by key and version.
type Values = BTreeMap<(String, Version), Val>;

/// One backend's values.
pub struct Memory {
    pub values: BTreeMap<(String, Version), Val>,
    pub calls: Rc<RefCell<Vec<Get>>>,
}

impl Store for Memory {
    fn label(&self) -> String {
        "memory".into()
    }

    fn get_many(&self, requests: &[Get]) -> Vec<Result<Remote, StoreError>> {
        self.calls.borrow_mut().extend(requests.iter().cloned());
        requests
            .iter()
            .map(|g| {
                self.values
                    .get(&(g.key.clone(), g.version.clone()))
                    .map(Val::remote)
                    .ok_or_else(|| {
                        StoreError::new(Failure::NotFound, format!("{} not found", g.key))
                    })
            })
            .collect()
    }

    fn find(&self, find: &Find) -> Result<Vec<(String, Remote)>, StoreError> {
        let prefix = find.path.clone().unwrap_or_default();
        Ok(self
            .values
            .iter()
            .filter(|((k, v), _)| *v == Version::Current && k.starts_with(&prefix))
            .filter(|((k, _), _)| {
                find.recursive || !k[prefix.len()..].trim_start_matches('/').contains('/')
            })
            .filter(|((k, _), _)| find.name.as_ref().is_none_or(|r| r.is_match(k)))
            .map(|((k, _), v)| (k.clone(), v.remote()))
            .collect())
    }

    fn put(&self, _: &Put<'_>) -> Result<PutReport, StoreError> {
        Err(StoreError::new(Failure::Other, "read-only"))
    }
}

/// Stores by backend.
#[derive(Default)]
pub struct Stores {
    pub backends: Vec<(Backend, Values)>,
    /// Every get of every store, in order.
    pub calls: Rc<RefCell<Vec<Get>>>,
}

impl Stores {
    pub fn add(&mut self, b: &Backend, key: &str, version: Version, v: Val) {
        match self.backends.iter_mut().find(|(x, _)| x == b) {
            Some((_, m)) => {
                m.insert((key.to_owned(), version), v);
            }
            None => {
                let mut m = BTreeMap::new();
                m.insert((key.to_owned(), version), v);
                self.backends.push((b.clone(), m));
            }
        }
    }
}

impl Connect for Stores {
    fn connect(&self, backend: &Backend) -> Result<Box<dyn Store>, StoreError> {
        let values = self
            .backends
            .iter()
            .find(|(b, _)| b == backend)
            .map(|(_, m)| m.clone())
            .ok_or_else(|| StoreError::new(Failure::Unreachable, format!("no store {backend}")))?;
        Ok(Box::new(Memory {
            values,
            calls: self.calls.clone(),
        }))
    }
}
