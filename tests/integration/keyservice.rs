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
    for dump in [
        "Error {",
        "Some(",
        "kind: ",
        "HttpResponse",
        "raw_response",
        "{\"error",
    ] {
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

/// A plain HTTP/1.1 request to a test server on 127.0.0.1 (stand-in
/// control endpoints): the status and the JSON body.
pub fn http_json(
    port: u16,
    method: &str,
    path: &str,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let data = body.to_string();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{data}",
        data.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let status: u16 = answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let json = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| serde_json::from_str(b).unwrap_or(serde_json::Value::Null))
        .unwrap_or(serde_json::Value::Null);
    (status, json)
}

/// A stand-in server run by `python3 tests/support/NAME.py ARGS`: it prints
/// `{"port": N}` when ready and exits with the test process (or on drop).
pub struct StandIn {
    pub port: u16,
    /// Where `/_test/` controls are served (`http_port`, else `port`).
    pub control_port: u16,
    child: std::process::Child,
}

impl StandIn {
    pub fn start(script: &str, args: &[&std::ffi::OsStr]) -> StandIn {
        use std::io::BufRead as _;
        let mut child = std::process::Command::new("python3")
            .arg(crate::support::support_script(script))
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("python3 {script}: {e} (scripts/install-test-tools)"));
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let info: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|_| panic!("{script} did not start: {line:?}"));
        let port = info["port"].as_u64().expect("port") as u16;
        let control_port = info["http_port"].as_u64().map_or(port, |p| p as u16);
        StandIn {
            port,
            control_port,
            child,
        }
    }

    /// `POST /_test/WHAT` with `body`; panics unless it answers 200.
    pub fn control(&self, what: &str, body: serde_json::Value) -> serde_json::Value {
        let (status, json) = http_json(self.control_port, "POST", &format!("/_test/{what}"), &body);
        assert_eq!(status, 200, "control {what}: {json}");
        json
    }

    /// The stand-in's counters (`GET /_test/stats`).
    pub fn stats(&self) -> serde_json::Value {
        http_json(
            self.control_port,
            "GET",
            "/_test/stats",
            &serde_json::Value::Null,
        )
        .1
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A name no other test of this process uses.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}
