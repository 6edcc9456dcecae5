//! With real git: `ksec textconv` behind `git diff`, and `ksec
//! merge-driver` behind `git merge` (isolated HOME and git config, author
//! from the environment).

use std::fs;
use std::process::{Command, Output};

use crate::support::{TestEnv, ksec_path};

const SECRET: &str = "\
apiVersion: v1
kind: Secret
metadata:
  name: db
  labels:
    app: db
data:
  username: YWRtaW4=
  password: czNjcjN0
stringData:
  note: first
";

/// A repository in the test dir with the ksec diff and merge drivers set up.
struct Repo {
    env: TestEnv,
}

impl Repo {
    fn new() -> Repo {
        let env = TestEnv::new();
        fs::create_dir_all(env.path("repo")).unwrap();
        env.write("gitconfig", "");
        let repo = Repo { env };
        repo.git(&["init", "-q", "-b", "main"]);
        let ksec = ksec_path().display().to_string();
        repo.git(&["config", "merge.ksec.name", "ksec"]);
        repo.git(&[
            "config",
            "merge.ksec.driver",
            &format!("{ksec} merge-driver %O %A %B %P"),
        ]);
        repo.git(&["config", "diff.ksec.textconv", &format!("{ksec} textconv")]);
        repo.write(".gitattributes", "*.yaml diff=ksec merge=ksec\n");
        repo
    }

    fn dir(&self) -> std::path::PathBuf {
        self.env.path("repo")
    }

    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.current_dir(self.dir())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.env.path("home"))
            .env("GIT_CONFIG_GLOBAL", self.env.path("gitconfig"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "Test")
            .env("GIT_AUTHOR_EMAIL", "test@example.com")
            .env("GIT_COMMITTER_NAME", "Test")
            .env("GIT_COMMITTER_EMAIL", "test@example.com")
            .env("KSEC_AGE_KEY_FILE", &self.env.key_file);
        c
    }

    fn run(&self, c: &mut Command) -> Output {
        c.output().unwrap()
    }

    /// Runs git and asserts success.
    fn git(&self, args: &[&str]) -> String {
        let out = self.run(self.command("git").args(args));
        assert!(
            out.status.success(),
            "git {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn ksec(&self, args: &[&str]) -> String {
        let out = self.run(self.command(ksec_path()).args(args));
        assert!(
            out.status.success(),
            "ksec {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn write(&self, name: &str, text: &str) {
        fs::write(self.dir().join(name), text).unwrap();
    }

    fn read(&self, name: &str) -> String {
        fs::read_to_string(self.dir().join(name)).unwrap()
    }

    fn commit(&self, message: &str) {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", message]);
    }

    /// An encrypted `db.yaml` committed on main.
    fn with_secret() -> Repo {
        let repo = Repo::new();
        repo.write("db.yaml", SECRET);
        repo.ksec(&[
            "encrypt",
            "-i",
            "-k",
            &format!("age:{}", repo.env.recipient),
            "db.yaml",
        ]);
        repo.commit("init");
        repo
    }
}

fn value_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("    "))
        .collect()
}

#[test]
fn branches_changing_different_keys_merge_cleanly() {
    let repo = Repo::with_secret();
    repo.git(&["checkout", "-q", "-b", "feature"]);
    repo.ksec(&[
        "patch",
        "-i",
        "db.yaml",
        "-d",
        "password=from-feature",
        "-s",
        "added=by-feature",
    ]);
    repo.commit("feature: password, added");
    repo.git(&["checkout", "-q", "main"]);
    repo.ksec(&[
        "patch",
        "-i",
        "db.yaml",
        "-s",
        "note=from-main",
        "-d",
        "~username",
        "-l",
        "tier=backend",
    ]);
    repo.commit("main: note, username removed, label");
    let ours = repo.read("db.yaml");
    // A plain text merge would conflict on the MAC line at least.
    let out = repo.run(
        repo.command("git")
            .args(["merge", "-q", "--no-edit", "feature"]),
    );
    assert!(
        out.status.success(),
        "merge failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let merged = repo.read("db.yaml");
    assert!(!merged.contains("<<<<<<<"));
    // The MAC verifies and both sides' changes are there.
    let clear = repo.ksec(&["decrypt", "-q", "-x", "db.yaml"]);
    assert!(clear.contains("  password: from-feature\n"), "{clear}");
    assert!(clear.contains("  note: from-main\n"), "{clear}");
    assert!(clear.contains("  added: by-feature\n"), "{clear}");
    assert!(!clear.contains("username"), "{clear}");
    assert!(clear.contains("    tier: backend\n"), "{clear}");
    // Our unchanged value kept its exact ciphertext.
    let note_line = value_lines(&ours)
        .into_iter()
        .find(|l| l.starts_with("  note:"))
        .unwrap();
    assert!(merged.contains(note_line));
    // Nothing clear in the work tree, and git sees a finished merge.
    assert!(!merged.contains("from-feature") && !merged.contains("from-main"));
    assert!(repo.git(&["status", "--porcelain"]).is_empty());
}

#[test]
fn a_real_conflict_leaves_our_encrypted_file_and_names_the_key() {
    let repo = Repo::with_secret();
    repo.git(&["checkout", "-q", "-b", "feature"]);
    repo.ksec(&[
        "patch",
        "-i",
        "db.yaml",
        "-d",
        "password=theirs-value",
        "-s",
        "note=fine",
    ]);
    repo.commit("feature");
    repo.git(&["checkout", "-q", "main"]);
    repo.ksec(&["patch", "-i", "db.yaml", "-d", "password=ours-value"]);
    repo.commit("main");
    let ours = repo.read("db.yaml");
    let out = repo.run(repo.command("git").args(["merge", "--no-edit", "feature"]));
    assert!(!out.status.success(), "the merge must stop on the conflict");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("data.password: changed differently on both sides"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("note"),
        "only the conflicting key is named: {stderr}"
    );
    assert_eq!(repo.read("db.yaml"), ours, "ours, encrypted, untouched");
    assert!(repo.git(&["status", "--porcelain"]).contains("UU db.yaml"));
    let clear = repo.ksec(&["decrypt", "-q", "-x", "db.yaml"]);
    assert!(clear.contains("ours-value"));
    repo.git(&["merge", "--abort"]);
}

#[test]
fn keys_changed_on_one_branch_merge_with_values_changed_on_the_other() {
    let repo = Repo::with_secret();
    let other = age::x25519::Identity::generate().to_public().to_string();
    repo.git(&["checkout", "-q", "-b", "keys"]);
    repo.ksec(&["encrypt", "-i", &format!("--key=+age:{other}"), "db.yaml"]);
    repo.commit("add a key");
    repo.git(&["checkout", "-q", "main"]);
    repo.ksec(&["patch", "-i", "db.yaml", "-s", "note=changed"]);
    repo.commit("value");
    let out = repo.run(
        repo.command("git")
            .args(["merge", "-q", "--no-edit", "keys"]),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let merged = repo.read("db.yaml");
    assert!(
        merged.contains(&format!("# kubesec:age:{other}:")),
        "{merged}"
    );
    assert!(
        repo.ksec(&["decrypt", "-q", "db.yaml"])
            .contains("note: changed")
    );
}

#[test]
fn files_without_ksec_secrets_merge_as_text() {
    let repo = Repo::new();
    repo.write("cm.yaml", "a: 1\nb: 2\nc: 3\n");
    repo.commit("init");
    repo.git(&["checkout", "-q", "-b", "f"]);
    repo.write("cm.yaml", "a: 1\nb: theirs\nc: 3\n");
    repo.commit("f");
    repo.git(&["checkout", "-q", "main"]);
    repo.write("cm.yaml", "a: 1\nb: ours\nc: 3\n");
    repo.commit("main");
    let out = repo.run(repo.command("git").args(["merge", "--no-edit", "f"]));
    assert!(!out.status.success());
    let text = repo.read("cm.yaml");
    assert!(
        text.contains("<<<<<<< ours\nb: ours\n=======\nb: theirs\n>>>>>>> theirs\n"),
        "{text}"
    );
}

#[test]
fn git_diff_shows_decrypted_changes_or_fingerprints() {
    let repo = Repo::with_secret();
    repo.write("plain.yaml", "not: [a, secret]\n");
    repo.commit("plain");
    repo.ksec(&[
        "patch",
        "-i",
        "db.yaml",
        "-d",
        "password=new-password",
        "-s",
        "extra=x",
    ]);
    repo.write("plain.yaml", "not: [a, secret, still]\n");
    let diff = repo.git(&["diff", "--no-color"]);
    assert!(
        diff.contains("-  password: czNjcjN0\n+  password: bmV3LXBhc3N3b3Jk\n"),
        "{diff}"
    );
    assert!(diff.contains("+  extra: x\n"), "{diff}");
    assert!(
        diff.contains("-not: [a, secret]\n+not: [a, secret, still]\n"),
        "{diff}"
    );
    assert!(
        !diff.contains("-  username"),
        "unchanged values are unchanged: {diff}"
    );
    // Without a key: fingerprints of the ciphertext tokens.
    let out = repo.run(
        repo.command("git")
            .env("KSEC_AGE_KEY_FILE", repo.env.path("no-such-key.txt"))
            .args(["diff", "--no-color"]),
    );
    let diff = String::from_utf8(out.stdout).unwrap();
    assert!(
        !diff.contains("czNjcjN0") && !diff.contains("new-password"),
        "{diff}"
    );
    let changed: Vec<&str> = diff
        .lines()
        .filter(|l| l.starts_with("-  ") || l.starts_with("+  "))
        .collect();
    assert_eq!(
        changed.len(),
        3,
        "password changed (2 lines) and extra added: {diff}"
    );
    assert!(
        changed.iter().all(|l| l.contains(": <encrypted:")),
        "{diff}"
    );
    assert!(
        changed
            .iter()
            .any(|l| l.starts_with("+  extra: <encrypted:")),
        "{diff}"
    );
    assert!(
        diff.contains("\n   username: <encrypted:"),
        "unchanged keep their fingerprint: {diff}"
    );
    // textconv itself never fails on what it is given.
    for (name, text) in [("bad.yaml", "a: [b\n"), ("bin.yaml", "\u{0}\u{1}")] {
        fs::write(repo.dir().join(name), text).unwrap();
        assert_eq!(repo.ksec(&["textconv", name]), text);
    }
}
