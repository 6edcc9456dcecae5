//! Whole streams encrypted in the SOPS format with a fixed age key: no
//! panic, and whatever encrypts decrypts back to the same text (the
//! round trip of a clear file is byte for byte, values and comments).
#![no_main]

use std::sync::OnceLock;

use ksec::keys::{KeyChange, Keyring};
use ksec::pipeline::{self, DecryptOptions, KeyPolicy, SealOptions, Session};
use libfuzzer_sys::fuzz_target;

// A throwaway identity made for the fuzz targets only.
const IDENTITY: &str = "AGE-SECRET-KEY-1DGUHEDRWWT8WW0JJZU0RDA7CWFES5P475NVRNWMWLENL2KZ8706Q4P3P47";

fn keys() -> &'static (String, KeyChange) {
    static K: OnceLock<(String, KeyChange)> = OnceLock::new();
    K.get_or_init(|| {
        let id: age::x25519::Identity = IDENTITY.parse().expect("identity");
        let recipient = id.to_public().to_string();
        (IDENTITY.to_owned(), KeyChange::parse(&[format!("age:{recipient}")]).expect("key"))
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (identity, change) = keys();
    let session = Session::quiet(Keyring::with_age_identities(identity).expect("keyring"));
    let options = SealOptions {
        policy: KeyPolicy { change: Some(change), ..KeyPolicy::default() },
        format: ksec::formats::by_name("sops"),
        ..SealOptions::default()
    };
    let Ok(enc) = pipeline::encrypt_text(&session, "fuzz.yaml", text, options) else { return };
    let dec = pipeline::decrypt_text(&session, "fuzz.yaml", &enc.text, DecryptOptions::default())
        .expect("what ksec encrypted, ksec decrypts");
    let values = |t: &str| -> Vec<(String, String)> {
        pipeline::locate(t)
            .expect("parses")
            .iter()
            .filter(|d| d.is_secret)
            .flat_map(|d| d.sites.iter().map(|s| (s.key(t).to_owned(), s.value(t).to_owned())))
            .collect()
    };
    assert_eq!(values(&dec.text), values(text));
});
