//! `ksec exec`: the command sees the values (environment or files), gets
//! the exit code it should, and nothing is left on disk — after a normal
//! exit, a failing command, and SIGTERM to ksec.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::support::{TestEnv, ok_stdout};

const TWO: &str = "\
apiVersion: v1
kind: Secret
metadata: {name: db, namespace: apps}
data:
  tls.key: n5KWAQ==
stringData:
  DB_PASSWORD: \"s3cr3t exec\"
  api-key: k-123
---
apiVersion: v1
kind: Secret
metadata: {name: other}
stringData:
  token: t0k3n
";

/// An encrypted two-Secret file, and a runtime directory for the scratch
/// files so that a test can see what is left (tmpfs is checked by ksec;
/// the test dir is not tmpfs, which only adds a warning).
fn setup() -> (TestEnv, PathBuf, PathBuf) {
    let env = TestEnv::new();
    let file = env.write("two.enc.yaml", env.encrypt(TWO));
    let runtime = env.path("runtime");
    std::fs::create_dir(&runtime).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
    (env, file, runtime)
}

fn leftovers(runtime: &PathBuf) -> Vec<String> {
    std::fs::read_dir(runtime)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn env_passes_every_value_with_sanitised_names() {
    let (env, file, runtime) = setup();
    let out = env
        .ksec()
        .env("XDG_RUNTIME_DIR", &runtime)
        .args(["exec", "--env"])
        .arg(&file)
        .args(["--", "sh", "-c", "printf '%s|%s|%s|%s' \"$DB_PASSWORD\" \"$api_key\" \"$token\" \"${KSEC_SECRETS_DIR:-none}\"; printf '%s' \"$tls_key\" | od -An -tx1"])
        .output()
        .unwrap();
    let stdout = ok_stdout(&out);
    assert!(
        stdout.starts_with("s3cr3t exec|k-123|t0k3n|none"),
        "{stdout}"
    );
    assert!(
        stdout.contains("9f 92 96 01"),
        "binary value as bytes: {stdout}"
    );
    assert!(leftovers(&runtime).is_empty());
    // The exit code is the command's.
    let out = env
        .ksec()
        .args(["exec", "--env"])
        .arg(&file)
        .args(["--", "sh", "-c", "exit 42"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(42));
    // Two keys that become one name are refused, naming both.
    let clash = env.encrypt(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: c}\nstringData:\n  a.b: val1xyz\n  a_b: val2xyz\n",
    );
    let out = env
        .ksec()
        .args(["exec", "--env"])
        .arg(env.write("clash.yaml", clash))
        .args(["--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`a_b`") && err.contains("c.a.b") && err.contains("c.a_b"),
        "{err}"
    );
    assert!(
        !err.contains("val1xyz") && !err.contains("val2xyz"),
        "{err}"
    );
    // A NUL byte cannot be in an environment variable (it can be in a file).
    let nul =
        env.encrypt("apiVersion: v1\nkind: Secret\nmetadata: {name: n}\ndata:\n  bin: AAE=\n");
    let out = env
        .ksec()
        .args(["exec", "--env"])
        .arg(env.write("nul.yaml", nul))
        .args(["--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("n.bin: the value has a NUL byte"));
    // A command that does not exist: exit 2, one line.
    let out = env
        .ksec()
        .args(["exec", "--env"])
        .arg(&file)
        .args(["--", "no-such-command-ksec"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot run `no-such-command-ksec`"));
}

#[test]
fn files_are_private_and_removed_after_success_and_failure() {
    let (env, file, runtime) = setup();
    for (script, code) in [("exit 0", 0), ("exit 3", 3)] {
        let out = env
            .ksec()
            .env("XDG_RUNTIME_DIR", &runtime)
            .args(["exec", "--files"])
            .arg(&file)
            .args([
                "--",
                "sh",
                "-c",
                &format!(
                    "cd \"$KSEC_SECRETS_DIR\" && printf '%s|' \"$KSEC_SECRETS_DIR\" && cat DB_PASSWORD && printf '|' && cat token && printf '|' && stat -c '%a' . DB_PASSWORD tls.key | tr '\\n' ' ' && od -An -tx1 tls.key; {script}"
                ),
            ])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(code),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let (dir, rest) = stdout.split_once('|').unwrap();
        assert!(dir.starts_with(runtime.to_str().unwrap()), "{dir}");
        assert!(rest.starts_with("s3cr3t exec|t0k3n|700 600 600 "), "{rest}");
        assert!(rest.contains("9f 92 96 01"), "{rest}");
        assert!(!std::path::Path::new(dir).exists(), "{dir} left behind");
        assert!(leftovers(&runtime).is_empty());
    }
}

#[test]
fn sigterm_removes_the_files_and_ends_the_command() {
    let (env, file, runtime) = setup();
    let marker = env.path("dir.txt");
    let mut child = env
        .ksec_std()
        .env("XDG_RUNTIME_DIR", &runtime)
        .args(["exec", "--files"])
        .arg(&file)
        .args(["--", "sh", "-c"])
        .arg(format!(
            "echo \"$KSEC_SECRETS_DIR\" > {}; sleep 30",
            marker.display()
        ))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&marker).is_ok_and(|s| s.ends_with('\n')) {
        assert!(Instant::now() < deadline, "the command did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let dir = std::fs::read_to_string(&marker).unwrap().trim().to_owned();
    assert!(std::path::Path::new(&dir).join("token").exists());
    let started = Instant::now();
    let st = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let status = child.wait().unwrap();
    // sh dies of the SIGTERM passed on: 128 + 15.
    assert_eq!(status.code(), Some(143));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        !std::path::Path::new(&dir).exists(),
        "{dir} left behind after SIGTERM"
    );
    assert!(leftovers(&runtime).is_empty());
}

#[test]
fn sigkill_of_ksec_leaves_no_files_either() {
    let (env, file, runtime) = setup();
    let marker = env.path("dir.txt");
    let mut child = env
        .ksec_std()
        .env("XDG_RUNTIME_DIR", &runtime)
        .args(["exec", "--files"])
        .arg(&file)
        .args(["--", "sh", "-c"])
        .arg(format!(
            "echo \"$KSEC_SECRETS_DIR\" > {}; sleep 5",
            marker.display()
        ))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&marker).is_ok_and(|s| s.ends_with('\n')) {
        assert!(Instant::now() < deadline, "the command did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let dir = std::fs::read_to_string(&marker).unwrap().trim().to_owned();
    assert!(std::path::Path::new(&dir).join("token").exists());
    child.kill().unwrap(); // SIGKILL: nothing in ksec runs; its guardian cleans up.
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::path::Path::new(&dir).exists() {
        assert!(Instant::now() < deadline, "{dir} left behind after SIGKILL");
        std::thread::sleep(Duration::from_millis(50));
    }
}
