//! What every network key provider's tests check after a failure: exit code
//! 6, nothing on stdout, no file written, the input untouched, one error
//! line that says what to do, and nothing secret in it.

#![allow(dead_code)]

use assert_cmd::Command as Cmd;

use crate::support::TestEnv;

/// Decrypting `enc` (with `-o out.yaml`) and re-encrypting it in place both
/// fail cleanly, the error naming every needle. Returns the decrypt's stderr.
pub fn fails_cleanly(
    env: &TestEnv,
    ksec: &dyn Fn() -> Cmd,
    enc: &str,
    extra: &[&str],
    needles: &[&str],
) -> String {
    let input = env.write("failing.enc.yaml", enc);
    let out_file = env.path("failing-out.yaml");
    let _ = std::fs::remove_file(&out_file);
    let out = ksec()
        .args(extra)
        .args(["decrypt", "-o"])
        .arg(&out_file)
        .arg(&input)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(out.stdout.is_empty(), "stdout must stay empty");
    assert!(!out_file.exists(), "no output file may be written");
    assert_eq!(std::fs::read_to_string(&input).unwrap(), enc);
    assert_eq!(
        err.lines()
            .filter(|l| l.starts_with("ksec: error:"))
            .count(),
        1,
        "{err}"
    );
    for n in needles {
        assert!(err.contains(n), "missing {n:?} in: {err}");
    }
    no_debug_dumps(&err);
    // In-place re-encryption must leave the file alone too.
    let out = ksec()
        .args(extra)
        .args(["encrypt", "-i"])
        .arg(&input)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    assert_eq!(std::fs::read_to_string(&input).unwrap(), enc);
    err
}

/// Encrypting `plain` in place to `key` fails cleanly (exit 6, file
/// untouched, nothing on stdout), the error naming every needle. Returns
/// stderr.
pub fn encrypt_fails_cleanly(
    env: &TestEnv,
    ksec: &dyn Fn() -> Cmd,
    plain: &str,
    key: &str,
    extra: &[&str],
    needles: &[&str],
) -> String {
    let input = env.write("failing.yaml", plain);
    let out = ksec()
        .args(extra)
        .args(["encrypt", "-i", "-k", key])
        .arg(&input)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(out.stdout.is_empty());
    assert_eq!(std::fs::read_to_string(&input).unwrap(), plain);
    assert_eq!(
        err.lines()
            .filter(|l| l.starts_with("ksec: error:"))
            .count(),
        1,
        "{err}"
    );
    for n in needles {
        assert!(err.contains(n), "missing {n:?} in: {err}");
    }
    no_debug_dumps(&err);
    err
}

fn no_debug_dumps(err: &str) {
    for dump in ["Error {", "source:", "kind:", "HttpResponse", "{\"error"] {
        assert!(!err.contains(dump), "no debug dumps or raw bodies: {err}");
    }
}

/// A TCP listener that accepts connections and never answers, for as long
/// as the returned guard lives.
pub struct Silent {
    pub port: u16,
    _thread: std::thread::JoinHandle<()>,
}

impl Silent {
    pub fn start() -> Silent {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            for s in listener.incoming().take(32) {
                held.push(s);
            }
            std::thread::sleep(std::time::Duration::from_secs(30));
        });
        Silent {
            port,
            _thread: thread,
        }
    }
}
