//! Any text read as a SOPS file: detection, the metadata, the walk, `check`'s
//! lint and opening with a fixed data key never panic; an ENC string that
//! parses renders back to itself; a metadata block that parses renders (in
//! sops' layout) to one that parses to the same metadata.
#![no_main]

use ksec::formats::sops::{self, meta, value};
use ksec::formats::{Format, OpenOptions, State};
use ksec::keys::DataKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for word in text.split_whitespace() {
        if let Ok(enc) = value::Enc::parse(word) {
            assert_eq!(value::Enc::parse(&enc.render()).unwrap(), enc);
        }
    }
    let _ = meta::mac_aad(text);
    let Ok(stream) = ksec::pipeline::parse("fuzz.yaml", text.to_owned()) else { return };
    let _ = sops::Sops.detect(&stream);
    let _ = sops::Sops.lint(&stream);
    let _ = sops::Sops.remove_metadata(&stream);
    if let Ok(Some(m)) = sops::read_meta(&stream) {
        let block = meta::render_yaml(&m, 0, "\n");
        let again = ksec::pipeline::parse("again.yaml", block).expect("a rendered block parses");
        let docs = again.commented().expect("commented");
        if let Some(root) = docs.first().and_then(|d| d.root.as_ref())
            && let Some(items) = root.items()
            && let Some(ksec::manifest::commented::Item::Entry(_, v)) = items.first()
        {
            let reread = meta::parse(&meta::to_json(v), m.store).expect("a rendered block reads back");
            assert_eq!(reread.lines, m.lines);
            assert_eq!(reread.selection, m.selection);
            assert_eq!(reread.lastmodified, m.lastmodified);
        }
    }
    if let Ok(envelopes) = sops::Sops.envelopes(&stream) {
        for e in &envelopes {
            if matches!(e.state, State::Sealed(_)) {
                let _ = sops::Sops.open_with_key(&stream, e, DataKey::from_bytes([7; 32]), OpenOptions::default());
            }
        }
    }
});
