//! `ksec edit` with scripted editors: every way out, and what stays on disk.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt as _;

use crate::support::{TestEnv, changed_lines, ok_stdout};

const SECRET: &str = "\
# db credentials
apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: prod
type: Opaque
data:
  username: YWRtaW4=
  password: czNjcjN0
  bin: //4A/w==
stringData:
  note: hello world
";

/// A test environment with an encrypted `s.yaml`, a private runtime
/// directory for scratch files, and editor scripts.
struct Edit {
    env: TestEnv,
    run_dir: PathBuf,
}

impl Edit {
    fn new() -> Self {
        let env = TestEnv::new();
        let run_dir = env.path("run");
        fs::create_dir(&run_dir).unwrap();
        fs::set_permissions(&run_dir, fs::Permissions::from_mode(0o700)).unwrap();
        let enc = env.encrypt(SECRET);
        env.write("s.yaml", enc);
        Edit { env, run_dir }
    }

    /// Writes an executable editor script; `$1` is the file to edit.
    fn editor(&self, name: &str, body: &str) -> PathBuf {
        let p = self.env.write(name, format!("#!/bin/sh\nset -e\n{body}\n"));
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    fn ksec(&self, editor: &Path) -> assert_cmd::Command {
        let mut c = self.env.ksec();
        c.env("EDITOR", editor)
            .env("XDG_RUNTIME_DIR", &self.run_dir);
        c
    }

    fn file(&self) -> String {
        self.env.read("s.yaml")
    }

    /// Asserts that no scratch directory (and so no clear text) is left.
    fn assert_no_scratch(&self) {
        let left: Vec<_> = fs::read_dir(&self.run_dir).unwrap().collect();
        assert!(left.is_empty(), "scratch left behind: {left:?}");
    }
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn one_changed_value_changes_two_lines() {
    let e = Edit::new();
    let before = e.file();
    let ed = e.editor(
        "ed.sh",
        "cp \"$1\" seen.yaml\nsed -i 's/password: s3cr3t/password: n3w-pass/' \"$1\"",
    );
    let out = e.ksec(&ed).args(["edit", "s.yaml"]).output().unwrap();
    ok_stdout(&out);
    e.assert_no_scratch();
    // The editor saw the clear text, data decoded, binary tagged.
    let seen = e.env.read("seen.yaml");
    assert!(seen.contains("  username: admin\n"), "{seen}");
    assert!(seen.contains("  password: s3cr3t\n"), "{seen}");
    assert!(seen.contains("  bin: !!binary //4A/w==\n"), "{seen}");
    assert!(!seen.contains("# kubesec:"), "{seen}");
    let after = e.file();
    let changed = changed_lines(&before, &after);
    assert_eq!(changed.len(), 2, "{changed:#?}");
    assert!(changed[0].1.starts_with("  password: "));
    assert!(changed[1].1.starts_with("# kubesec:mac:"));
    assert_eq!(before.lines().count(), after.lines().count());
    assert_eq!(
        e.env.decrypt(&after),
        SECRET.replace("czNjcjN0", "bjN3LXBhc3M=")
    );
    // The warning about a disk-backed directory (the test dir is on disk,
    // unless the machine's /tmp is tmpfs).
    let _ = stderr(&out);
}

#[test]
fn scratch_file_is_private_and_named_yaml() {
    let e = Edit::new();
    let ed = e.editor(
        "ed.sh",
        "stat -c '%a' \"$1\" > mode-file\nstat -c '%a' \"$(dirname \"$1\")\" > mode-dir\nbasename \"$1\" > name\necho \"$1\" > path",
    );
    ok_stdout(&e.ksec(&ed).args(["edit", "s.yaml"]).output().unwrap());
    assert_eq!(e.env.read("mode-file").trim(), "600");
    assert_eq!(e.env.read("mode-dir").trim(), "700");
    assert_eq!(e.env.read("name").trim(), "s.yaml");
    let path = e.env.read("path");
    assert!(
        path.starts_with(&e.run_dir.display().to_string()),
        "scratch not in XDG_RUNTIME_DIR: {path}"
    );
    e.assert_no_scratch();
}

#[test]
fn tmpfs_is_used_without_warning_and_disk_with_one() {
    let e = Edit::new();
    let ed = e.editor("ed.sh", "echo \"$1\" > path");
    // Disk-backed runtime dir: a warning.
    let disk = e
        .ksec(&ed)
        .env("XDG_RUNTIME_DIR", &e.run_dir)
        .args(["edit", "s.yaml"])
        .output()
        .unwrap();
    ok_stdout(&disk);
    let on_tmpfs = Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(&e.run_dir)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "tmpfs")
        .unwrap_or(false);
    if !on_tmpfs {
        assert!(
            stderr(&disk).contains("no memory-backed directory"),
            "{}",
            stderr(&disk)
        );
    }
    // A tmpfs runtime dir (under /dev/shm): no warning.
    if Path::new("/dev/shm").is_dir() {
        let shm = tempfile::tempdir_in("/dev/shm").unwrap();
        let out = e
            .ksec(&ed)
            .env("XDG_RUNTIME_DIR", shm.path())
            .args(["edit", "s.yaml"])
            .output()
            .unwrap();
        ok_stdout(&out);
        assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
        assert!(
            e.env
                .read("path")
                .starts_with(&shm.path().display().to_string())
        );
        assert_eq!(fs::read_dir(shm.path()).unwrap().count(), 0);
    }
}

#[test]
fn base64_flag_shows_values_as_stored() {
    let e = Edit::new();
    let before = e.file();
    let ed = e.editor(
        "ed.sh",
        "cp \"$1\" seen.yaml\nsed -i 's/username: YWRtaW4=/username: cm9vdA==/' \"$1\"",
    );
    ok_stdout(&e.ksec(&ed).args(["edit", "-b", "s.yaml"]).output().unwrap());
    let seen = e.env.read("seen.yaml");
    assert!(seen.contains("  username: YWRtaW4=\n") && seen.contains("  bin: //4A/w==\n"));
    let after = e.file();
    assert_eq!(changed_lines(&before, &after).len(), 2);
    assert!(e.env.decrypt(&after).contains("username: cm9vdA==\n"));
}

#[test]
fn add_remove_and_rename_keys_in_both_sections() {
    let e = Edit::new();
    let before = e.file();
    let ed = e.editor(
        "ed.sh",
        "sed -i -e 's/^  username: admin$/  login: admin/' -e '/^  note:/d' -e 's/^stringData:$/stringData:\\n  token: abc def/' -e '/^  bin:/a\\  extra: more' \"$1\"",
    );
    ok_stdout(&e.ksec(&ed).args(["edit", "s.yaml"]).output().unwrap());
    let after = e.file();
    let dec = e.env.decrypt(&after);
    assert!(dec.contains("  login: YWRtaW4=\n"), "{dec}");
    assert!(!dec.contains("username"), "{dec}");
    assert!(dec.contains("  extra: bW9yZQ==\n"), "{dec}");
    assert!(
        dec.contains("  token: abc def\n") && !dec.contains("note"),
        "{dec}"
    );
    // Untouched values keep their ciphertext.
    for key in ["  password: ", "  bin: "] {
        let line = |t: &str| t.lines().find(|l| l.starts_with(key)).unwrap().to_owned();
        assert_eq!(line(&before), line(&after), "{key}");
    }
}

#[test]
fn metadata_and_comments_may_change() {
    let e = Edit::new();
    let before = e.file();
    let ed = e.editor(
        "ed.sh",
        "sed -i -e 's/^# db credentials$/# database credentials/' -e 's/namespace: prod/namespace: staging/' \"$1\"",
    );
    ok_stdout(&e.ksec(&ed).args(["edit", "s.yaml"]).output().unwrap());
    let after = e.file();
    let changed = changed_lines(&before, &after);
    // The MAC does not cover metadata or comments, the binding covers the
    // namespace: those two lines and the binding line.
    assert_eq!(changed.len(), 3, "{changed:#?}");
    assert!(changed[2].2.starts_with("# ksec:bind:"), "{changed:#?}");
    assert!(after.starts_with("# database credentials\n"));
    assert!(after.contains("namespace: staging\n"));
}

#[test]
fn no_change_writes_nothing() {
    let e = Edit::new();
    let before = e.file();
    let mtime = fs::metadata(e.env.path("s.yaml"))
        .unwrap()
        .modified()
        .unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let ed = e.editor("ed.sh", "touch \"$1\"");
    let out = e.ksec(&ed).args(["edit", "s.yaml"]).output().unwrap();
    ok_stdout(&out);
    assert!(stderr(&out).contains("no changes"), "{}", stderr(&out));
    assert_eq!(e.file(), before);
    assert_eq!(
        fs::metadata(e.env.path("s.yaml"))
            .unwrap()
            .modified()
            .unwrap(),
        mtime
    );
    e.assert_no_scratch();
}

#[test]
fn editor_failure_writes_nothing() {
    let e = Edit::new();
    let before = e.file();
    let ed = e.editor("ed.sh", "sed -i 's/s3cr3t/lost/' \"$1\"\nexit 3");
    let out = e.ksec(&ed).args(["edit", "s.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the editor exited with status 3"),
        "{}",
        stderr(&out)
    );
    assert_eq!(e.file(), before);
    e.assert_no_scratch();
    // An editor that cannot be started.
    let out = e
        .ksec(Path::new("/nonexistent/editor"))
        .args(["edit", "s.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("cannot start the editor"));
    e.assert_no_scratch();
}

#[test]
fn invalid_save_without_terminal_fails_and_writes_nothing() {
    let e = Edit::new();
    let before = e.file();
    for (name, script, code, needle) in [
        (
            "yaml.sh",
            "printf 'data: [unclosed\\n' > \"$1\"",
            3,
            "invalid YAML",
        ),
        (
            "kind.sh",
            "sed -i 's/kind: Secret/kind: Secrets/' \"$1\"",
            3,
            "no longer a Secret",
        ),
        (
            "key.sh",
            "sed -i 's/username:/user name:/' \"$1\"",
            3,
            "not a valid Secret key",
        ),
        (
            "bool.sh",
            "sed -i 's/note: hello world/note: yes/' \"$1\"",
            3,
            "not a string",
        ),
    ] {
        let ed = e.editor(name, script);
        let out = e.ksec(&ed).args(["edit", "s.yaml"]).output().unwrap();
        assert_eq!(out.status.code(), Some(code), "{name}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{name}: {}", stderr(&out));
        assert_eq!(e.file(), before, "{name}");
        e.assert_no_scratch();
    }
}

/// Runs `ksec ARGS` under `script`, so that its stdin is a terminal.
fn on_terminal(e: &Edit, editor: &Path, args: &str) -> std::process::Output {
    let bin = assert_cmd::cargo::cargo_bin("ksec");
    let mut c = Command::new("script");
    c.args(["-qec", &format!("{} {args}", bin.display()), "/dev/null"])
        .current_dir(e.env.dir.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", e.env.path("home"))
        .env("KSEC_AGE_KEY_FILE", &e.env.key_file)
        .env("EDITOR", editor)
        .env("XDG_RUNTIME_DIR", &e.run_dir)
        .env("TERM", "dumb")
        .stdin(Stdio::null());
    c.output().unwrap()
}

#[test]
fn invalid_save_on_a_terminal_reopens_the_editor() {
    let e = Edit::new();
    let before = e.file();
    // First round: break the YAML. Second round: keep what the editor was
    // given (the error header and the broken text) to check it, then fix it.
    let ed = e.editor(
        "ed.sh",
        "n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count\n\
         if [ $n = 1 ]; then sed -i 's/password: s3cr3t/password: [fixed/' \"$1\"; exit 0; fi\n\
         cp \"$1\" second.yaml\n\
         sed -i -e 's/password: \\[fixed/password: fixed/' -e '/^# ksec edit/d' -e '/^#   /d' -e '/^# Fix it/d' -e '/^#$/d' \"$1\"",
    );
    let out = on_terminal(&e, &ed, "edit s.yaml");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(e.env.read("count").trim(), "2");
    let second = e.env.read("second.yaml");
    assert!(
        second.starts_with("# ksec edit: this text could not be saved:\n#   s.yaml:"),
        "{second}"
    );
    assert!(second.contains("invalid YAML"), "{second}");
    assert!(
        second.contains("  password: [fixed\n"),
        "the user's text is kept: {second}"
    );
    assert!(text.contains("re-opening the editor"), "{text}");
    let after = e.file();
    assert_eq!(changed_lines(&before, &after).len(), 2);
    assert!(
        e.env
            .decrypt(&after)
            .contains(&format!("password: {}", base64_of("fixed")))
    );
    e.assert_no_scratch();
}

#[test]
fn saving_the_broken_text_unchanged_gives_up() {
    let e = Edit::new();
    let before = e.file();
    let ed = e.editor(
        "ed.sh",
        "if [ ! -e done ]; then touch done; sed -i 's/kind: Secret/kind: Secrets/' \"$1\"; fi",
    );
    let out = on_terminal(&e, &ed, "edit s.yaml");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(text.contains("edit given up"), "{text}");
    assert_eq!(e.file(), before);
    e.assert_no_scratch();
}

fn base64_of(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Starts `ksec edit` with an editor that blocks, sends `signal`, and
/// returns the exit code.
fn killed_while_editing(e: &Edit, signal: &str) -> Option<i32> {
    let ed = e.editor(
        &format!("block-{signal}.sh"),
        "cp \"$1\" seen.yaml\ntouch started\nexec sleep 30",
    );
    let _ = fs::remove_file(e.env.path("started"));
    let mut child = Command::cargo_bin("ksec")
        .unwrap()
        .current_dir(e.env.dir.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", e.env.path("home"))
        .env("KSEC_AGE_KEY_FILE", &e.env.key_file)
        .env("EDITOR", &ed)
        .env("XDG_RUNTIME_DIR", &e.run_dir)
        .args(["edit", "s.yaml"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !e.env.path("started").exists() {
        assert!(Instant::now() < deadline, "editor did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The clear text is there while the editor runs...
    assert_eq!(fs::read_dir(&e.run_dir).unwrap().count(), 1);
    let status = Command::new("kill")
        .args([format!("-{signal}"), child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st.code();
        }
        assert!(
            Instant::now() < deadline,
            "ksec did not exit after SIG{signal}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn signals_remove_the_clear_text() {
    let e = Edit::new();
    let before = e.file();
    for (signal, code) in [("TERM", 143), ("HUP", 129), ("INT", 130)] {
        assert_eq!(killed_while_editing(&e, signal), Some(code), "SIG{signal}");
        // ...and gone afterwards; the file is untouched.
        e.assert_no_scratch();
        assert_eq!(e.file(), before, "SIG{signal}");
    }
    assert!(e.env.read("seen.yaml").contains("password: s3cr3t"));
}

#[test]
fn file_changed_on_disk_meanwhile_is_not_overwritten() {
    let e = Edit::new();
    let ed = e.editor(
        "ed.sh",
        "echo '# someone else was here' >> s.yaml\nsed -i 's/s3cr3t/mine/' \"$1\"",
    );
    let out = e.ksec(&ed).args(["edit", "s.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let theirs = e.file();
    assert!(
        theirs.ends_with("# someone else was here\n"),
        "original untouched"
    );
    let aside: Vec<PathBuf> = fs::read_dir(e.env.dir.path())
        .unwrap()
        .map(|d| d.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.starts_with("s.yaml.ksec-edit-") && n.ends_with(".yaml")
        })
        .collect();
    assert_eq!(aside.len(), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains(&aside[0].file_name().unwrap().to_string_lossy().into_owned()));
    let kept = fs::read_to_string(&aside[0]).unwrap();
    assert!(
        !kept.contains("mine") && !kept.contains("s3cr3t"),
        "never clear text"
    );
    assert!(
        e.env
            .decrypt(&kept)
            .contains(&format!("password: {}", base64_of("mine")))
    );
    e.assert_no_scratch();
}

#[test]
fn create_from_template_with_keys() {
    let e = Edit::new();
    let other = TestEnv::new();
    let key = format!("age:{}", other.recipient);
    let ed = e.editor(
        "ed.sh",
        "cp \"$1\" seen.yaml\nsed -i 's/KEY: value/password: hunter2/' \"$1\"",
    );
    // Without -f a missing file is an error.
    let out = e
        .ksec(&ed)
        .args(["edit", "new-app.enc.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7));
    assert!(stderr(&out).contains("-f"));
    ok_stdout(
        &e.ksec(&ed)
            .args(["edit", "-f", "-k", &key, "new-app.enc.yaml"])
            .output()
            .unwrap(),
    );
    let seen = e.env.read("seen.yaml");
    assert_eq!(
        seen,
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: new-app\ntype: Opaque\ndata:\n  KEY: value\n"
    );
    let created = e.env.read("new-app.enc.yaml");
    assert!(created.contains(&format!("# kubesec:age:{}:", other.recipient)));
    assert!(!created.contains(&e.env.recipient));
    assert_eq!(
        other.decrypt(&created),
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: new-app\ntype: Opaque\ndata:\n  password: {}\n",
            base64_of("hunter2")
        )
    );
    // An unchanged template creates nothing.
    let keep = e.editor("keep.sh", "true");
    let out = e
        .ksec(&keep)
        .args(["edit", "-f", "other.yaml"])
        .output()
        .unwrap();
    ok_stdout(&out);
    assert!(stderr(&out).contains("not created"));
    assert!(!e.env.path("other.yaml").exists());
    e.assert_no_scratch();
}

#[test]
fn rotate_and_key_changes() {
    let e = Edit::new();
    let before = e.file();
    let keep = e.editor("keep.sh", "true");
    ok_stdout(
        &e.ksec(&keep)
            .args(["edit", "--rotate", "s.yaml"])
            .output()
            .unwrap(),
    );
    let after = e.file();
    let changed = changed_lines(&before, &after);
    // Every value, the key line and the MAC (and maybe the rotation record).
    assert!(changed.len() >= 6, "{changed:#?}");
    assert_eq!(e.env.decrypt(&after), SECRET);
    // +KEY without any other change adds a key line and keeps the values.
    let other = TestEnv::new();
    ok_stdout(
        &e.ksec(&keep)
            .args(["edit", &format!("--key=+age:{}", other.recipient), "s.yaml"])
            .output()
            .unwrap(),
    );
    let added = e.file();
    assert_eq!(other.decrypt(&added), SECRET);
    assert_eq!(added.lines().count(), after.lines().count() + 1);
}

#[test]
fn editor_command_is_split_like_a_shell() {
    let e = Edit::new();
    let dir = e.env.path("my tools");
    fs::create_dir(&dir).unwrap();
    let script = dir.join("edit it.sh");
    fs::write(
        &script,
        "#!/bin/sh\necho \"$1\" > flag\nsed -i 's/s3cr3t/spaced/' \"$2\"\n",
    )
    .unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let mut c = e.env.ksec();
    c.env("XDG_RUNTIME_DIR", &e.run_dir)
        .env("EDITOR", "false")
        .env("VISUAL", format!("'{}' --wait", script.display()))
        .args(["edit", "s.yaml"]);
    ok_stdout(&c.output().unwrap());
    assert_eq!(e.env.read("flag").trim(), "--wait");
    assert!(e.env.decrypt(&e.file()).contains(&base64_of("spaced")));
}
