//! Every shape a Secret can arrive in (issue 11, section 1): a `kind: List`
//! from `kubectl get secrets -o yaml`, typed lists, nested lists, JSON and
//! flow style, anchors, and Secrets buried in other objects. For each: no
//! command writes a clear value, `check` sees it, and `decrypt` refuses
//! ciphertext it did not open.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;

use crate::kubectl::Cluster;
use crate::support::{TestEnv, ok_stdout};

/// What `kubectl get secrets -n prod -o yaml` prints.
const LIST: &str = "\
apiVersion: v1
items:
- apiVersion: v1
  data:
    password: aHVudGVyMg==
    username: YWRtaW4=
  kind: Secret
  metadata:
    name: db
    namespace: prod
  type: Opaque
- apiVersion: v1
  kind: ConfigMap
  metadata:
    name: settings
    namespace: prod
  data:
    mode: fast
- apiVersion: v1
  kind: Secret
  metadata:
    name: api
    namespace: prod
  stringData:
    token: t0ps3cret
kind: List
metadata:
  resourceVersion: \"\"
";

const CLEAR_VALUES: [&str; 3] = ["aHVudGVyMg==", "YWRtaW4=", "t0ps3cret"];

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts that none of `values` appears in `text`.
fn assert_no_clear(text: &str, values: &[&str]) {
    for v in values {
        assert!(!text.contains(v), "clear value {v:?} in:\n{text}");
    }
}

#[test]
fn a_kubectl_list_is_encrypted_item_by_item_and_decrypts_byte_for_byte() {
    let env = TestEnv::new();
    let enc = env.encrypt(LIST);
    assert_no_clear(&enc, &CLEAR_VALUES);
    // Each Secret item carries its own footer at its own indentation; the
    // ConfigMap item passes through untouched.
    assert_eq!(enc.matches("  # kubesec:v:").count(), 2, "{enc}");
    assert!(enc.contains("  # kubesec:v:3\n") && enc.contains("  # kubesec:v:4\n"));
    assert!(enc.contains("    mode: fast\n"));
    assert!(!enc.lines().any(|l| l.starts_with("# kubesec:")), "{enc}");
    assert_eq!(env.decrypt(&enc), LIST);
    // Re-encrypting changes nothing.
    let again = env
        .ksec()
        .arg("encrypt")
        .write_stdin(enc.clone())
        .output()
        .unwrap();
    assert_eq!(ok_stdout(&again), enc);
    // introspect names the items.
    let out = env
        .ksec()
        .arg("introspect")
        .write_stdin(enc)
        .output()
        .unwrap();
    let text = ok_stdout(&out);
    assert!(
        text.contains("document 1, items[0] (line 3): Secret prod/db"),
        "{text}"
    );
    assert!(text.contains("document 1, items[2] (line "), "{text}");
}

/// A stream large enough that its encrypted result is checked a part at a
/// time (parts of 256 KiB cut at `---` lines): top-level Secrets, Lists of
/// Secrets (nested documents, whose positions count across parts),
/// ConfigMaps and comments, about 1.3 MB encrypted.
#[test]
fn a_large_mixed_stream_is_encrypted_and_checked_a_part_at_a_time() {
    let env = TestEnv::new();
    let mut docs = Vec::new();
    for i in 0..300 {
        let values: String = (0..20)
            .map(|j| format!("  k{j}: value-{i}-{j}-{}\n", "x".repeat(40)))
            .collect();
        docs.push(format!(
            "# Secret {i}\napiVersion: v1\nkind: Secret\nmetadata:\n  name: s{i}\nstringData:\n{values}"
        ));
        if i % 10 == 0 {
            docs.push(LIST.to_owned());
        }
        if i % 7 == 0 {
            docs.push(format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c{i}\ndata:\n  mode: value-{i}-0\n"
            ));
        }
    }
    let stream = docs.join("---\n");
    let enc = env.encrypt(&stream);
    assert!(enc.len() > 1_000_000, "{} bytes", enc.len());
    assert_no_clear(&enc, &CLEAR_VALUES);
    for i in [0, 149, 299] {
        assert!(
            !enc.contains(&format!("value-{i}-7-")),
            "value {i}.7 in clear text"
        );
        assert!(enc.contains(&format!("# Secret {i}\n")));
    }
    // Every ConfigMap value stays; every Secret has its footer.
    assert_eq!(enc.matches("  mode: value-").count(), 43);
    assert_eq!(enc.matches("# kubesec:v:4\n").count(), 300 + 30);
    assert_eq!(env.decrypt(&enc), stream);
    let again = env
        .ksec()
        .arg("encrypt")
        .write_stdin(enc.clone())
        .output()
        .unwrap();
    assert_eq!(ok_stdout(&again), enc);
    let file = env.write("big.yaml", &enc);
    let out = env.ksec().arg("check").arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn typed_and_nested_lists_are_encrypted_too() {
    let env = TestEnv::new();
    let typed = LIST.replace("kind: List", "kind: SecretList");
    let enc = env.encrypt(&typed);
    assert_no_clear(&enc, &CLEAR_VALUES);
    assert_eq!(env.decrypt(&enc), typed);

    let nested = "\
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: List
  items:
  - apiVersion: v1
    kind: Secret
    metadata: {name: deep}
    stringData: {pw: hunter2}
- apiVersion: v1
  kind: Secret
  metadata:
    name: top
  data:
    a: c2VjcmV0IQ==
";
    let enc = env.encrypt(nested);
    assert_no_clear(&enc, &["hunter2", "c2VjcmV0IQ=="]);
    assert!(enc.contains("    # kubesec:v:4\n"), "{enc}");
    let dec = env.decrypt(&enc);
    assert!(dec.contains("stringData: {pw: \"hunter2\"}") && dec.contains("a: c2VjcmV0IQ=="));
}

#[test]
fn check_sees_clear_secrets_in_lists() {
    let env = TestEnv::new();
    env.write("dump.yaml", LIST);
    env.write("typed.yaml", LIST.replace("kind: List", "kind: SecretList"));
    let out = env
        .ksec()
        .args(["check", "dump.yaml", "typed.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains(
            "dump.yaml:5: document 1, items[0] (Secret prod/db), data.password: clear-text value"
        ),
        "{report}"
    );
    assert!(report.contains("typed.yaml:"), "{report}");
    assert_eq!(report.matches("clear-text value").count(), 6, "{report}");
    // Encrypted, it passes.
    env.write("dump.yaml", env.encrypt(LIST));
    env.ksec().args(["check", "dump.yaml"]).assert().success();
}

#[test]
fn flow_style_and_json_lists_are_refused_with_a_hint() {
    let env = TestEnv::new();
    let json = r#"{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Secret","metadata":{"name":"a"},"data":{"a":"c2VjcmV0IQ=="}}]}
"#;
    let flow = "apiVersion: v1\nkind: List\nitems: [{apiVersion: v1, kind: Secret, metadata: {name: a}, data: {a: c2VjcmV0IQ==}}]\n";
    for input in [json, flow] {
        let out = env
            .ksec()
            .arg("encrypt")
            .write_stdin(input)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
        assert!(out.stdout.is_empty());
        let e = stderr(&out);
        assert!(
            e.contains("document 1, items[0] (Secret a): a Secret in a flow-style (JSON) list of items cannot carry ksec's footer lines"),
            "{e}"
        );
        assert!(e.contains("hint: write the List in block style"), "{e}");
        env.write("in.yaml", input);
        let out = env.ksec().args(["check", "in.yaml"]).output().unwrap();
        assert_eq!(out.status.code(), Some(8));
        assert!(String::from_utf8_lossy(&out.stdout).contains("flow-style"));
    }
    // A flow mapping as an item of a block list is fine.
    let item_flow = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Secret, metadata: {name: a}, data: {a: c2VjcmV0IQ==}}\n";
    let enc = env.encrypt(item_flow);
    assert_no_clear(&enc, &["c2VjcmV0IQ=="]);
    assert!(enc.contains("\n  # kubesec:v:3\n"), "{enc}");
    assert_eq!(
        env.decrypt(&enc),
        item_flow.replace("a: c2VjcmV0IQ==", "a: \"c2VjcmV0IQ==\"")
    );
}

#[test]
fn anchors_and_aliases_in_list_items_are_refused() {
    let env = TestEnv::new();
    let input = "\
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Secret
  metadata: {name: a}
  data:
    a: &pw c2VjcmV0IQ==
- apiVersion: v1
  kind: Secret
  metadata: {name: b}
  data:
    b: *pw
";
    let out = env
        .ksec()
        .arg("encrypt")
        .write_stdin(input)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    assert!(
        stderr(&out).contains("items[0] (Secret a), data.a: the value carries an anchor or tag")
    );
}

#[test]
fn a_secret_buried_in_another_object_is_refused_not_passed_through() {
    let env = TestEnv::new();
    let template = "\
apiVersion: template.openshift.io/v1
kind: Template
metadata:
  name: t
objects:
- apiVersion: v1
  kind: Secret
  metadata:
    name: inner
  stringData:
    pw: hunter2
";
    let out = env
        .ksec()
        .arg("encrypt")
        .write_stdin(template)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    let e = stderr(&out);
    assert!(
        e.contains("<stdin>:11: document 1 (Template t), objects[0] (Secret inner), stringData.pw: a Secret nested here cannot be encrypted in place"),
        "{e}"
    );
    assert!(
        e.contains("hint: give the Secret a document of its own"),
        "{e}"
    );
    env.write("t.yaml", template);
    let out = env.ksec().args(["check", "t.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(8));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("t.yaml:11: document 1 (Template t), objects[0]")
    );

    // Items of something that is not a List are not Secrets ksec handles.
    let custom = "apiVersion: example.com/v1\nkind: Bundle\nitems:\n- apiVersion: v1\n  kind: Secret\n  metadata: {name: x}\n  data: {a: c2VjcmV0IQ==}\n";
    let out = env
        .ksec()
        .arg("encrypt")
        .write_stdin(custom)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("(Bundle (unnamed)), items[0] (Secret x), data.a"));

    // A `kind: Secret` that is not `apiVersion: v1` is not encrypted: refused.
    let v2 = "apiVersion: v2\nkind: Secret\nmetadata: {name: x}\ndata: {a: c2VjcmV0IQ==}\n";
    let out = env.ksec().arg("encrypt").write_stdin(v2).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("`kind: Secret` without `apiVersion: v1` is not encrypted"));
}

#[test]
fn decrypt_refuses_ciphertext_outside_a_secret_it_opened() {
    let env = TestEnv::new();
    let enc = env.encrypt(LIST);
    // An item whose apiVersion was edited: its ciphertext would reach kubectl.
    let broken = enc.replacen("- apiVersion: v1\n  data:", "- apiVersion: v9\n  data:", 1);
    let out = env
        .ksec()
        .arg("decrypt")
        .write_stdin(broken)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    assert!(
        stderr(&out).contains("document 1, items[0] (Secret prod/db): encrypted values or a `# kubesec:` footer in a document that is not")
    );

    // Ciphertext moved into a Template's objects.
    let single = env
        .encrypt("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {pw: hunter2}\n");
    let token = single
        .lines()
        .find_map(|l| l.strip_prefix("stringData: {pw: \""))
        .and_then(|l| l.strip_suffix("\"}"))
        .unwrap()
        .to_owned();
    let template = format!(
        "apiVersion: v1\nkind: Template\nobjects:\n- apiVersion: v1\n  kind: Secret\n  metadata: {{name: s}}\n  stringData:\n    pw: {token}\n"
    );
    let out = env
        .ksec()
        .arg("decrypt")
        .write_stdin(template)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    assert!(stderr(&out).contains("objects[0] (Secret s), stringData.pw: encrypted value in a Secret that ksec does not open here"));

    // A footer line that belongs to no Secret.
    let stray = enc.replacen("kind: List\n", "kind: List\n  # kubesec:v:3\n", 1);
    let out = env
        .ksec()
        .arg("decrypt")
        .write_stdin(stray)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("a ksec/kubesec footer line that belongs to no Secret"));
}

#[test]
fn two_kind_lines_are_refused_in_either_order() {
    let env = TestEnv::new();
    for (first, second) in [("Secret", "ConfigMap"), ("ConfigMap", "Secret")] {
        let input = format!(
            "apiVersion: v1\nkind: {first}\nmetadata: {{name: x}}\nkind: {second}\ndata:\n  a: c2VjcmV0IQ==\n"
        );
        let out = env
            .ksec()
            .arg("encrypt")
            .write_stdin(input)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(3),
            "{first}/{second}: {}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains("duplicate top-level key `kind`"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn encrypt_and_check_refuse_streams_decrypt_would_refuse() {
    let env = TestEnv::new();
    let secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: a}\ndata:\n  a: c2VjcmV0IQ==\n";
    let cases = [
        ("directive", format!("%YAML 1.2\n---\n{secret}")),
        (
            "end marker",
            format!("{secret}...\n{}", secret.replace("name: a", "name: b")),
        ),
        (
            "content on the --- line",
            format!("{secret}--- {{apiVersion: v1, kind: ConfigMap, metadata: {{name: c}}}}\n"),
        ),
    ];
    for (what, input) in cases {
        let out = env
            .ksec()
            .arg("encrypt")
            .write_stdin(input.clone())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{what}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{what}");
        assert!(stderr(&out).contains("kubectl"), "{what}: {}", stderr(&out));
        env.write("s.yaml", &input);
        let out = env.ksec().args(["check", "s.yaml"]).output().unwrap();
        assert_eq!(out.status.code(), Some(8), "{what}");
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(report.contains("kubectl"), "{what}: {report}");
        let json = env
            .ksec()
            .args(["check", "--format", "json", "s.yaml"])
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&json.stdout).contains("\"kubectl-split\""),
            "{what}"
        );
    }
    // `--- !!map` on its own and a leading `---` are fine for kubectl.
    let fine = format!("--- !!map\n{secret}");
    let enc = env.encrypt(&fine);
    assert_eq!(env.decrypt(&enc), fine);
}

#[test]
fn edit_that_wraps_the_secret_in_a_list_saves_it_encrypted() {
    let env = TestEnv::new();
    let run = env.path("run");
    fs::create_dir(&run).unwrap();
    fs::set_permissions(&run, fs::Permissions::from_mode(0o700)).unwrap();
    let secret =
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\ndata:\n  password: hunter2\n";
    let enc = env.encrypt(&secret.replace("hunter2", "aHVudGVyMg=="));
    env.write("s.yaml", &enc);
    // The editor indents the Secret under `items:` of a List.
    let editor = env.write(
        "wrap.sh",
        "#!/bin/sh\nset -e\n{ printf 'apiVersion: v1\\nkind: List\\nitems:\\n'; sed -e '1s/^/- /' -e '2,$s/^/  /' \"$1\"; } > \"$1.new\"\nmv \"$1.new\" \"$1\"\n",
    );
    fs::set_permissions(&editor, fs::Permissions::from_mode(0o755)).unwrap();
    let out = env
        .ksec()
        .args(["edit", "s.yaml"])
        .env("EDITOR", &editor)
        .env("XDG_RUNTIME_DIR", &run)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let saved = env.read("s.yaml");
    assert!(
        saved.starts_with("apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n"),
        "{saved}"
    );
    assert_no_clear(&saved, &["aHVudGVyMg==", "hunter2"]);
    assert!(saved.contains("\n  # kubesec:mac:"), "{saved}");
    assert!(env.decrypt(&saved).contains("    password: aHVudGVyMg==\n"));
    assert!(fs::read_dir(&run).unwrap().next().is_none());
}

#[test]
fn updatekeys_and_recompute_mac_refuse_to_write_a_clear_secret_back() {
    let env = TestEnv::new();
    let enc = env
        .encrypt("apiVersion: v1\nkind: Secret\nmetadata: {name: a}\ndata:\n  a: c2VjcmV0IQ==\n");
    env.write("mixed.yaml", format!("{enc}---\napiVersion: v1\nkind: Secret\nmetadata: {{name: b}}\ndata:\n  b: aHVudGVyMg==\n"));
    let before = env.read("mixed.yaml");
    let out = env
        .ksec()
        .args(["recompute-mac", "--yes", "mixed.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("document 2 (Secret b): the Secret is not encrypted"));
    assert!(stderr(&out).contains("hint: encrypt it first"));
    assert_eq!(env.read("mixed.yaml"), before);
}

#[test]
fn a_decrypted_list_goes_through_kubectl() {
    let c = Cluster::new();
    c.encrypted("dump.yaml", LIST);
    // kubectl validates a List against the server's OpenAPI document, which
    // the stand-in does not serve; what is sent is what matters here.
    let p = c.pipe(
        &["decrypt", "-q", "dump.yaml"],
        &["apply", "--validate=false", "-f", "-"],
    );
    let said = p.ok();
    assert!(said.contains("secret/db created"), "{said}");
    assert!(said.contains("secret/api created"), "{said}");
    let stored = c.api.object("secrets", "prod", "db").unwrap();
    assert_eq!(stored["data"]["password"], "aHVudGVyMg==");
}

#[test]
fn patch_changes_a_secret_inside_a_list() {
    let env = TestEnv::new();
    let one = "\
apiVersion: v1
items:
- apiVersion: v1
  data:
    password: aHVudGVyMg==
  kind: Secret
  metadata:
    name: db
kind: List
";
    env.write("one.yaml", env.encrypt(one));
    let before = env.read("one.yaml");
    env.ksec()
        .args([
            "patch", "-i", "one.yaml", "-d", "user=bob", "-s", "note=hi", "-l", "app=x",
        ])
        .assert()
        .success();
    let after = env.read("one.yaml");
    assert_no_clear(&after, &["aHVudGVyMg==", "Ym9i", "note: hi"]);
    // The unchanged value keeps its ciphertext.
    let token = |t: &str| {
        t.lines()
            .find(|l| l.starts_with("    password: "))
            .unwrap()
            .to_owned()
    };
    assert_eq!(token(&before), token(&after));
    assert_eq!(
        env.decrypt(&after),
        "\
apiVersion: v1
items:
- apiVersion: v1
  data:
    password: aHVudGVyMg==
    user: Ym9i
  kind: Secret
  metadata:
    name: db
    labels:
      app: x
  stringData:
    note: hi
kind: List
"
    );
}

#[test]
fn merge_driver_merges_secrets_inside_a_list() {
    let env = TestEnv::new();
    let base = env.encrypt(LIST);
    let change = |from: &str, to: &str| {
        let clear = env.decrypt(&base).replace(from, to);
        let out = env
            .ksec()
            .args(["encrypt", "--parent", "base.yaml"])
            .write_stdin(clear)
            .output()
            .unwrap();
        ok_stdout(&out)
    };
    env.write("base.yaml", &base);
    let ours = change("password: aHVudGVyMg==", "password: b3Vycw==");
    let theirs = change("token: t0ps3cret", "token: theirs");
    env.write("ours.yaml", &ours);
    env.write("theirs.yaml", &theirs);
    env.ksec()
        .args([
            "merge-driver",
            "base.yaml",
            "ours.yaml",
            "theirs.yaml",
            "dump.yaml",
        ])
        .assert()
        .success();
    let merged = env.read("ours.yaml");
    assert_no_clear(&merged, &["b3Vycw==", "theirs", "YWRtaW4="]);
    let clear = env.decrypt(&merged);
    assert!(
        clear.contains("password: b3Vycw==") && clear.contains("token: theirs"),
        "{clear}"
    );
}
