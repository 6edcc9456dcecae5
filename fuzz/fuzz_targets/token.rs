//! Value tokens: the cheap shape check never rejects what the strict parser
//! accepts, and a parsed token renders back to itself.
#![no_main]

use ksec::formats::kubesec::codec::{Token, looks_encrypted};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(token) = Token::parse(text) {
        assert!(looks_encrypted(text), "{text:?}");
        assert_eq!(token.render(), text);
    }
    let _ = ksec::k8s::valid_base64(text);
    let _ = ksec::k8s::decode_base64(text);
});
