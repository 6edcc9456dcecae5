//! Shell integration: completions and the man page from the clap
//! definitions; the progress line (terminal only).

use std::process::Command;

use crate::support::{TestEnv, ksec_path, ok_stdout};

const SUBCOMMANDS: [&str; 9] = [
    "encrypt",
    "decrypt",
    "check",
    "updatekeys",
    "textconv",
    "merge-driver",
    "recompute-mac",
    "completion",
    "introspect",
];

#[test]
fn completions_know_the_subcommands() {
    let env = TestEnv::new();
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef ksec"),
        ("fish", "complete -c ksec"),
    ] {
        let out = ok_stdout(&env.ksec().args(["completion", shell]).output().unwrap());
        assert!(out.contains(marker), "{shell}: {marker} missing");
        for cmd in SUBCOMMANDS {
            assert!(out.contains(cmd), "{shell} completion lacks {cmd}");
        }
        assert!(
            out.contains("verify"),
            "{shell}: subcommand flags are completed"
        );
    }
    let out = env.ksec().args(["completion", "tcsh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_man_page_is_roff_and_renders() {
    let env = TestEnv::new();
    let page = ok_stdout(&env.ksec().arg("man").output().unwrap());
    assert!(
        page.starts_with(".ie \\n(.g .ds Aq") || page.contains(".TH ksec 1"),
        "{page}"
    );
    for section in [
        ".TH ksec 1",
        ".SH NAME",
        ".SH SYNOPSIS",
        ".SH DESCRIPTION",
        ".SH OPTIONS",
        ".SH SUBCOMMANDS",
    ] {
        assert!(page.contains(section), "man page lacks {section}");
    }
    for cmd in SUBCOMMANDS {
        let roff = format!("ksec\\-{}", cmd.replace('-', "\\-"));
        assert!(page.contains(&roff), "man page lacks {roff}");
    }
    // Rendered by man(1) where it exists.
    let file = env.write("ksec.1", &page);
    if let Ok(out) = Command::new("man")
        .args(["-l"])
        .arg(&file)
        .env("MANWIDTH", "80")
        .env("MAN_KEEP_FORMATTING", "0")
        .output()
        && out.status.success()
    {
        // Undo overstrike bold (`XX\x08` pairs) that man uses off a terminal.
        let mut text = String::new();
        for c in String::from_utf8_lossy(&out.stdout).chars() {
            if c == '\u{8}' {
                text.pop();
            } else {
                text.push(c);
            }
        }
        assert!(
            text.contains("ksec(1)") && text.contains("SUBCOMMANDS"),
            "{text}"
        );
        assert!(text.contains("ksec-merge-driver(1)"), "{text}");
    }
}

fn many_secrets(env: &TestEnv, n: usize) {
    std::fs::create_dir_all(env.path("k8s")).unwrap();
    let enc =
        env.encrypt("apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n  a: b\n");
    for i in 0..n {
        env.write(&format!("k8s/s{i:03}.yaml"), &enc);
    }
}

#[test]
fn progress_only_on_a_terminal() {
    let env = TestEnv::new();
    many_secrets(&env, 60);
    // Not a terminal: no progress, no carriage return.
    let out = env.ksec().args(["decrypt", "-q", "k8s"]).output().unwrap();
    assert!(out.status.success());
    assert!(
        !out.stderr.contains(&b'\r'),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // On a terminal (script(1) gives ksec a pseudo-terminal): redrawn with
    // \r, erased at the end.
    let available = Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        eprintln!("script(1) not found; the terminal half of this test is skipped");
        return;
    }
    let cmd = format!("{} decrypt -q k8s -o all.yaml", ksec_path().display());
    let out = Command::new("script")
        .args(["-q", "-e", "-c", &cmd, "/dev/null"])
        .current_dir(env.dir.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", env.path("home"))
        .env("KSEC_AGE_KEY_FILE", &env.key_file)
        .env("TERM", "dumb")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("\r\x1b[2Kksec: "),
        "no progress line: {shown:?}"
    );
    assert!(shown.contains("/60 files"), "{shown:?}");
    assert!(
        shown.trim_end_matches(['\r', '\n']).ends_with("\r\x1b[2K"),
        "not cleared: {shown:?}"
    );
    assert_eq!(env.read("all.yaml").matches("name: s").count(), 60);
}
