//! Golden CLI transcripts: every help text and every refusal that can be
//! triggered without network or gpg, pinned with its exact stdout, stderr
//! and exit status (issue 10). A message change shows up as a diff of a
//! file under `tests/cmd/`.
//!
//! Each `tests/cmd/<command>/*.toml` case runs `ksec` in a fresh sandbox
//! copied from `tests/cmd/fixtures/` (the throwaway test identity and the
//! checked-in encrypted files), with an empty environment: `HOME` is the
//! sandbox's `home/`, `KSEC_AGE_KEY_FILE` names the fixture identity, and
//! nothing of the developer's keys or configuration is visible.
//!
//! After an intended message change:
//! `TRYCMD=overwrite cargo test --test cli_transcripts`, then review the diff.

#[test]
fn cli_transcripts() {
    trycmd::TestCases::new()
        .timeout(std::time::Duration::from_secs(60))
        .case("tests/cmd/**/*.toml");
}
