//! Any text read as SealedSecrets: `check`'s lint, `introspect`'s
//! description, PEM blocks, certificates and the blob layout never panic.
//! (Opening values needs an RSA private-key operation per input, too slow to
//! fuzz usefully; the integration tests open SealedSecrets made by the real
//! sealing code of kubesealpy.)
#![no_main]

use base64::Engine as _;
use ksec::sealed::{cert::Certificate, crypto, inspect, pem};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = pem::has_blocks(text);
    let _ = pem::blocks(text);
    let _ = Certificate::from_pem(text);
    for word in text.split(|c: char| c.is_whitespace() || c == '"' || c == ',') {
        let Ok(blob) = base64::engine::general_purpose::STANDARD.decode(word) else { continue };
        if let Ok((rsa, gcm)) = crypto::split(&blob) {
            assert_eq!(rsa.len() + gcm.len() + 2, blob.len());
        }
    }
    let Ok(stream) = ksec::pipeline::parse("fuzz.yaml", text.to_owned()) else { return };
    let _ = inspect::lint(&stream);
    let _ = inspect::describe(&stream, None, &[]);
});
