//! The manifest locator and everything that reads its output without keys:
//! any input gives documents or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(stream) = ksec::pipeline::parse("fuzz", text.to_owned()) {
        let _ = ksec::pipeline::classify(&stream);
        let _ = ksec::pipeline::exposed(&stream);
        for format in ksec::formats::FORMATS {
            let _ = format.lint(&stream);
        }
        for doc in &stream.docs {
            if let Some(f) = &doc.footer {
                let _ = ksec::manifest::remove_footer(text, f);
            }
            for site in &doc.sites {
                let r = site.range();
                assert!(r.start <= r.end && r.end <= text.len());
                assert!(text.is_char_boundary(r.start) && text.is_char_boundary(r.end));
                let _ = (site.key(text), site.value(text));
            }
        }
    }
    let _ = ksec::manifest::count_documents(text);
    let _ = ksec::manifest::tree::parse_stream_lenient(text);
});
