//! Many files in one process: directories, joined decrypt streams, encrypt
//! -i over a tree, multi-file introspect and recompute-mac.

use std::fs;
use std::os::unix::fs::MetadataExt as _;

use crate::support::{TestEnv, ok_stdout};

fn secret(name: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\nstringData:\n  value: val-{value}\n"
    )
}

const CONFIGMAP: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  a: b\n";

/// Writes `files` (relative paths) under the test dir, encrypting the
/// Secrets among them when `encrypt` is set.
fn tree(env: &TestEnv, files: &[(&str, &str)], encrypt: bool) {
    for (path, text) in files {
        let p = env.path(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        let body = if encrypt && text.contains("kind: Secret") {
            env.encrypt(text)
        } else {
            (*text).to_owned()
        };
        fs::write(p, body).unwrap();
    }
}

#[test]
fn decrypt_dir_prints_one_kubectl_ready_stream() {
    let env = TestEnv::new();
    tree(
        &env,
        &[
            ("k8s/b/two.yaml", &secret("two", "2")),
            ("k8s/a.yaml", &secret("one", "1")),
            ("k8s/c.yml", CONFIGMAP),
            ("k8s/notes.txt", "not a manifest"),
            ("k8s/.hidden.yaml", &secret("hidden", "h")),
            ("k8s/empty.yaml", "# nothing here\n"),
        ],
        true,
    );
    // A BOM and a leading `---` in a later file, no final line break in another.
    fs::write(
        env.path("k8s/d.yaml"),
        format!("\u{feff}---\n{}", env.encrypt(&secret("four", "4"))),
    )
    .unwrap();
    fs::write(
        env.path("k8s/e.json"),
        r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "j"}}"#,
    )
    .unwrap();
    let out = ok_stdout(&env.ksec().args(["decrypt", "-q", "k8s"]).output().unwrap());
    let expected = format!(
        "{}---\n{}---\n{}---\n{}---\n{}\n",
        secret("one", "1"),
        secret("two", "2"),
        CONFIGMAP,
        secret("four", "4"),
        r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "j"}}"#
    );
    assert_eq!(out, expected);
    assert!(!out.contains('\u{feff}'));
    assert!(!out.contains("hidden"));

    // The same stream with -o; and each file in place with -i.
    env.ksec()
        .args(["decrypt", "k8s", "-o", "all.yaml"])
        .assert()
        .success();
    assert_eq!(env.read("all.yaml"), expected);
    env.ksec().args(["decrypt", "-i", "k8s"]).assert().success();
    assert_eq!(env.read("k8s/a.yaml"), secret("one", "1"));
    assert_eq!(env.read("k8s/b/two.yaml"), secret("two", "2"));
    assert!(
        env.read("k8s/.hidden.yaml").contains("kubesec:v"),
        "hidden files are skipped"
    );
}

#[test]
fn decrypt_dir_with_one_bad_file_prints_nothing() {
    let env = TestEnv::new();
    tree(
        &env,
        &[
            ("k8s/a.yaml", &secret("one", "1")),
            ("k8s/b.yaml", &secret("two", "2")),
        ],
        true,
    );
    let tampered = env
        .read("k8s/b.yaml")
        .replace("# kubesec:mac:", "# kubesec:mac:AA");
    fs::write(env.path("k8s/b.yaml"), tampered).unwrap();
    let out = env.ksec().args(["decrypt", "k8s"]).output().unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty(), "stdout must stay empty on failure");
    assert!(String::from_utf8_lossy(&out.stderr).contains("k8s/b.yaml"));
    // Several files and directories as arguments, in argument order.
    let out = ok_stdout(
        &env.ksec()
            .args(["decrypt", "-q", "k8s/a.yaml", "k8s/a.yaml"])
            .output()
            .unwrap(),
    );
    assert_eq!(out, secret("one", "1"), "a file named twice is read once");
}

#[test]
fn encrypt_in_place_over_a_tree_reports_and_keeps_unchanged_files() {
    let env = TestEnv::new();
    tree(&env, &[("k8s/done.yaml", &secret("done", "d"))], true);
    tree(
        &env,
        &[
            ("k8s/new.yaml", &secret("new", "n")),
            ("k8s/sub/cm.yaml", CONFIGMAP),
        ],
        false,
    );
    let before = fs::metadata(env.path("k8s/done.yaml")).unwrap();
    let done = env.read("k8s/done.yaml");
    // Several inputs need -i.
    let out = env.ksec().args(["encrypt", "k8s"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("-i"));
    let out = env
        .ksec()
        .args([
            "encrypt",
            "-i",
            "-k",
            &format!("age:{}", env.recipient),
            "k8s",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("wrote k8s/new.yaml (1 Secret encrypted)"),
        "{stderr}"
    );
    assert!(!stderr.contains("done.yaml"), "{stderr}");
    assert!(!stderr.contains("cm.yaml"), "{stderr}");
    assert!(
        stderr.contains("1 of 3 files changed, 1 Secret newly encrypted"),
        "{stderr}"
    );
    assert_eq!(env.read("k8s/done.yaml"), done);
    let after = fs::metadata(env.path("k8s/done.yaml")).unwrap();
    assert_eq!(
        before.ino(),
        after.ino(),
        "an unchanged file is not rewritten"
    );
    assert_eq!(env.read("k8s/sub/cm.yaml"), CONFIGMAP);
    assert!(env.read("k8s/new.yaml").contains("# kubesec:age:"));
    assert_eq!(env.decrypt(&env.read("k8s/new.yaml")), secret("new", "n"));
    // --parent takes one file only; stdin cannot be written in place.
    let out = env
        .ksec()
        .args(["encrypt", "-i", "--parent", "k8s/done.yaml", "k8s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = env
        .ksec()
        .args(["encrypt", "-i", "-", "k8s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_failing_file_stops_encrypt_before_anything_is_written() {
    let env = TestEnv::new();
    tree(
        &env,
        &[
            ("k8s/a.yaml", &secret("a", "1")),
            (
                "k8s/b.yaml",
                "apiVersion: v1\nkind: Secret\ndata:\n  x: [not a string]\n",
            ),
        ],
        false,
    );
    let out = env.ksec().args(["encrypt", "-i", "k8s"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(env.read("k8s/a.yaml"), secret("a", "1"), "nothing written");
}

#[test]
fn walk_does_not_leave_the_tree() {
    let env = TestEnv::new();
    tree(&env, &[("k8s/a.yaml", &secret("a", "1"))], true);
    tree(
        &env,
        &[("outside/secret.yaml", &secret("outside", "o"))],
        true,
    );
    std::os::unix::fs::symlink(env.path("outside/secret.yaml"), env.path("k8s/link.yaml")).unwrap();
    std::os::unix::fs::symlink(env.path("outside"), env.path("k8s/dirlink")).unwrap();
    std::os::unix::fs::symlink(env.path("k8s/a.yaml"), env.path("k8s/inside.yaml")).unwrap();
    let out = ok_stdout(&env.ksec().args(["decrypt", "-q", "k8s"]).output().unwrap());
    assert!(!out.contains("outside"), "{out}");
    assert_eq!(
        out.matches("name: a").count(),
        2,
        "a link inside the tree is followed"
    );
}

#[test]
fn introspect_and_recompute_mac_take_trees() {
    let env = TestEnv::new();
    tree(
        &env,
        &[
            ("k8s/a.yaml", &secret("a", "1")),
            ("k8s/b.yaml", &secret("b", "2")),
            ("k8s/cm.yaml", CONFIGMAP),
        ],
        true,
    );
    let out = ok_stdout(
        &env.ksec()
            .args(["introspect", "--json", "k8s"])
            .output()
            .unwrap(),
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let files: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["file"].as_str().unwrap())
        .collect();
    assert_eq!(files, ["k8s/a.yaml", "k8s/b.yaml", "k8s/cm.yaml"]);
    // One file keeps its one-object shape.
    let one: serde_json::Value = serde_json::from_str(&ok_stdout(
        &env.ksec()
            .args(["introspect", "--json", "k8s/a.yaml"])
            .output()
            .unwrap(),
    ))
    .unwrap();
    assert_eq!(one["file"], "k8s/a.yaml");
    let text = ok_stdout(&env.ksec().args(["introspect", "k8s"]).output().unwrap());
    assert!(text.contains("k8s/a.yaml: document 1") && text.contains("k8s/b.yaml: document 1"));

    // recompute-mac over the tree: asks once (refused without a terminal), --yes signs all.
    let out = env.ksec().args(["recompute-mac", "k8s"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = env
        .ksec()
        .args(["recompute-mac", "--yes", "k8s"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("k8s/a.yaml:") && stderr.contains("k8s/b.yaml:"),
        "{stderr}"
    );
    assert_eq!(env.decrypt(&env.read("k8s/a.yaml")), secret("a", "1"));
}

/// A repository with a Helm chart (issue 11): its templates are Go
/// templates, not YAML; tree commands and `check` (also given the file
/// names, as pre-commit does) leave them out with a note, and
/// `.ksec.yaml` can name more paths to leave out. Other invalid YAML is
/// still refused, one line per file.
#[test]
fn helm_templates_and_ignored_paths_are_left_out_with_a_note() {
    let env = TestEnv::new();
    for dir in ["repo/chart/templates", "repo/k8s", "repo/legacy"] {
        std::fs::create_dir_all(env.path(dir)).unwrap();
    }
    env.write(
        "repo/chart/Chart.yaml",
        "apiVersion: v2\nname: app\nversion: 0.1.0\n",
    );
    env.write(
        "repo/chart/templates/secret.yaml",
        "{{- if .Values.enabled }}\napiVersion: v1\nkind: Secret\nmetadata:\n  name: {{ .Release.Name }}\n{{- end }}\n",
    );
    env.write(
        "repo/k8s/db.yaml",
        env.encrypt(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\ndata:\n  a: c2VjcmV0IQ==\n",
        ),
    );
    env.write("repo/legacy/broken.yaml", "a: [\n");
    env.write("repo/.ksec.yaml", "ignore:\n  - legacy/**\n");
    let ksec = || {
        let mut c = env.ksec();
        c.current_dir(env.path("repo"));
        c
    };
    let out = ksec().arg("check").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("left out 2 files that hold no ksec data: chart/templates/secret.yaml (a Helm chart template of chart/Chart.yaml), legacy/broken.yaml (ignored by .ksec.yaml (`legacy/**`))"),
        "{stderr}"
    );
    // pre-commit passes file names.
    let out = ksec()
        .args(["check", "chart/templates/secret.yaml", "k8s/db.yaml"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = ksec()
        .args(["check", "chart/templates/secret.yaml"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A tree decrypts without the templates.
    let out = ksec().args(["decrypt", "-q", "."]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("a: c2VjcmV0IQ==") && !text.contains("Release.Name"),
        "{text}"
    );
    // Named on its own, a template is read and refused, with a hint.
    let out = ksec()
        .args(["decrypt", "chart/templates/secret.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid YAML")
            && stderr.contains("hint: this is a template of the Helm chart chart/Chart.yaml"),
        "{stderr}"
    );
    // Other invalid YAML is still a problem.
    env.write("repo/.ksec.yaml", "rules: []\n");
    let out = ksec().arg("check").output().unwrap();
    assert_eq!(out.status.code(), Some(8));
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(report.lines().count(), 1, "{report}");
    assert!(
        report.starts_with("legacy/broken.yaml:1: invalid YAML: unclosed bracket"),
        "{report}"
    );
}
