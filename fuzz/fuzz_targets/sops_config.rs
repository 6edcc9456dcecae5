//! `.sops.yaml` text: parses or is refused with an error, never a panic;
//! a rule that parses matches paths without panicking.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(config) = ksec::config::Config::parse(text, Path::new("/repo/.sops.yaml")) {
        for p in ["/repo/prod/db.yaml", "/elsewhere/x.yaml", "/repo/a.json"] {
            let _ = config.rule_for(Path::new(p));
        }
    }
});
