//! Any text read as ExternalSecrets (ESO and kubernetes-external-secrets,
//! with the SecretStores of the stream) and resolved against a store that
//! answers every read: the models, JSON paths, templates and the Secret they
//! make never panic, and a stream that resolves reads back as YAML.
#![no_main]

use ksec::report::Silent;
use ksec::stores::json::Json;
use ksec::stores::{
    Backend, Connect, Failure, Find, Get, Put, PutReport, Remote, Store, StoreError,
};
use libfuzzer_sys::fuzz_target;
use zeroize::Zeroizing;

/// A store holding every key: JSON objects with nested members and arrays,
/// binary values for keys that say `bin`, plain text for keys that say `txt`.
struct Everything;

const JSON: &str = r#"{"username":"admin","password":"p@ss","port":5432,"nested":{"a":[1,"two",{"b":true}],"c.d":null},"list":["x","y"]}"#;

fn value(key: &str) -> Remote {
    if key.contains("bin") {
        Remote::Binary(Zeroizing::new(vec![0, 159, 146, 150, 255]))
    } else if key.contains("txt") {
        Remote::Text(Zeroizing::new(format!("text of {key}")))
    } else if key.contains("kv") || key.contains("data/") {
        Remote::Kv(Json::parse(Zeroizing::new(JSON.to_owned())).expect("JSON"))
    } else {
        Remote::Text(Zeroizing::new(JSON.to_owned()))
    }
}

impl Store for Everything {
    fn label(&self) -> String {
        "everything".into()
    }
    fn get_many(&self, requests: &[Get]) -> Vec<Result<Remote, StoreError>> {
        requests.iter().map(|g| Ok(value(&g.key))).collect()
    }
    fn find(&self, find: &Find) -> Result<Vec<(String, Remote)>, StoreError> {
        let base = find.path.clone().unwrap_or_default();
        Ok(["a", "b/c", "txt-d", "bin-e"]
            .iter()
            .map(|k| format!("{}/{k}", base.trim_end_matches('/')))
            .filter(|k| find.name.as_ref().is_none_or(|r| r.is_match(k)))
            .map(|k| {
                let v = value(&k);
                (k, v)
            })
            .collect())
    }
    fn put(&self, _: &Put<'_>) -> Result<PutReport, StoreError> {
        Err(StoreError::new(Failure::Other, "read-only"))
    }
}

impl Connect for Everything {
    fn connect(&self, _: &Backend) -> Result<Box<dyn Store>, StoreError> {
        Ok(Box::new(Everything))
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(stream) = ksec::pipeline::parse("fuzz.yaml", text.to_owned()) else { return };
    if let Ok(out) = ksec::stores::resolve::resolve_all(&[stream], &[], &Everything, &Silent) {
        for r in &out {
            ksec::pipeline::parse("out.yaml", r.text.to_string()).expect("a resolved stream parses");
        }
    }
});
