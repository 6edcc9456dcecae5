//! Footer lines: any text parses or is refused, and what parses renders
//! back to lines that parse to the same footer.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(footer) = ksec::formats::kubesec::Footer::parse(text.lines()) {
        let lines = footer.render_lines();
        let again = ksec::formats::kubesec::Footer::parse(lines.iter().map(String::as_str))
            .expect("a rendered footer parses");
        assert_eq!(again, footer);
    }
});
