//! Links the release binary with the functions its common commands run
//! placed first (`ld/hot-functions.txt`, made by `scripts/hot-functions`):
//! a local-key encrypt or decrypt then maps 1.4 to 1.9 MB of the binary's
//! code instead of 2.6 to 7 MB (PERFORMANCE.md, "Hot functions first").
//!
//! Only where the toolchain's own linker does the linking: release builds
//! for x86_64-unknown-linux-gnu, which Rust links with its bundled LLD
//! (since 1.90; ksec needs 1.94), and no linker of the user's choosing
//! (`linker`, `-C linker=`, `-C linker-features`, `-C link-self-contained`,
//! `-C link-arg=-fuse-ld=…`), which might not know
//! `--symbol-ordering-file` (GNU ld does not). `KSEC_NO_HOT_FUNCTIONS=1`
//! turns it off. Names the build no longer has are skipped (quietly), so a
//! stale list orders less and never fails a build.

use std::env;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=ld/hot-functions.txt");
    println!("cargo:rerun-if-env-changed=KSEC_NO_HOT_FUNCTIONS");
    let var = |name: &str| env::var(name).unwrap_or_default();
    let flags = var("CARGO_ENCODED_RUSTFLAGS");
    let own_linker = var("RUSTC_LINKER").is_empty()
        && !["linker", "link-self-contained", "fuse-ld"]
            .iter()
            .any(|f| flags.contains(f));
    let list = Path::new(&var("CARGO_MANIFEST_DIR")).join("ld/hot-functions.txt");
    if var("TARGET") == "x86_64-unknown-linux-gnu"
        && var("PROFILE") == "release"
        && own_linker
        && var("KSEC_NO_HOT_FUNCTIONS").is_empty()
        && list.is_file()
    {
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
            list.display()
        );
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}
