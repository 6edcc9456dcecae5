//! Every command and every refusal, through the built binary.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::support::{TestEnv, ok_stdout, testdata};

const SECRET: &str = "\
# db credentials
apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: prod
data:
  username: YWRtaW4=
  password: czNjcjN0
stringData:
  note: hello world
";

/// Runs `ksec ARGS` with `stdin` and asserts a refusal: the exit code, an
/// empty stdout, one error line containing every `needle`.
fn refuses(env: &TestEnv, args: &[&str], stdin: &str, code: i32, needles: &[&str]) -> String {
    let out = env.ksec().args(args).write_stdin(stdin).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "ksec {args:?}: stderr:\n{stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "ksec {args:?} printed to stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("ksec: error: "))
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "exactly one error line expected:\n{stderr}"
    );
    for n in needles {
        assert!(errors[0].contains(n), "error line lacks {n:?}:\n{stderr}");
    }
    stderr
}

fn secret_with(body: &str) -> String {
    format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n{body}")
}

#[test]
fn help_and_version() {
    let env = TestEnv::new();
    let out = ok_stdout(&env.ksec().arg("--help").output().unwrap());
    for cmd in [
        "encrypt",
        "decrypt",
        "introspect",
        "keygen",
        "recompute-mac",
        "create",
        "patch",
        "edit",
        "Exit codes",
    ] {
        assert!(out.contains(cmd), "--help lacks {cmd}");
    }
    for (cmd, words) in [
        ("encrypt", "--key"),
        ("decrypt", "--cleartext"),
        ("introspect", "--json"),
        ("keygen", "0600"),
        ("recompute-mac", "--yes"),
        ("create", "file:KEY=PATH"),
        ("patch", "~KEY"),
        ("edit", "$XDG_RUNTIME_DIR"),
        ("decrypt", "--template"),
        ("encrypt", "--parent"),
    ] {
        let help = ok_stdout(&env.ksec().args([cmd, "--help"]).output().unwrap());
        assert!(help.contains(words), "{cmd} --help lacks {words}:\n{help}");
        assert!(help.lines().count() > 5, "{cmd} --help is too thin");
    }
    let v = ok_stdout(&env.ksec().arg("--version").output().unwrap());
    assert_eq!(v, format!("ksec {}\n", env!("CARGO_PKG_VERSION")));
}

#[test]
fn encrypt_and_decrypt_through_stdin_file_output_and_in_place() {
    let env = TestEnv::new();
    let key = format!("age:{}", env.recipient);
    let enc = env.encrypt(SECRET);
    assert!(enc.starts_with("# db credentials\napiVersion: v1\n"));
    assert!(!enc.contains("YWRtaW4=") && !enc.contains("hello world"));
    assert!(enc.contains(&format!("# kubesec:age:{}:", env.recipient)));
    assert!(enc.contains("# kubesec:v:4\n"));
    assert_eq!(env.decrypt(&enc), SECRET);

    let input = env.write("in.yaml", SECRET);
    ok_stdout(
        &env.ksec()
            .args(["encrypt", "-k", &key, "in.yaml", "-o", "out.yaml"])
            .output()
            .unwrap(),
    );
    assert_eq!(env.read("in.yaml"), SECRET, "-o must not touch the input");
    assert_eq!(env.decrypt(&env.read("out.yaml")), SECRET);

    fs::set_permissions(&input, fs::Permissions::from_mode(0o640)).unwrap();
    ok_stdout(
        &env.ksec()
            .args(["encrypt", "-i", "-k", &key])
            .arg(&input)
            .output()
            .unwrap(),
    );
    let in_place = env.read("in.yaml");
    assert!(in_place.contains("# kubesec:mac:"));
    assert_eq!(
        fs::metadata(&input).unwrap().permissions().mode() & 0o777,
        0o640,
        "mode kept"
    );
    // An unchanged file is not rewritten at all.
    let before = fs::metadata(&input).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    ok_stdout(
        &env.ksec()
            .args(["encrypt", "-i"])
            .arg(&input)
            .output()
            .unwrap(),
    );
    assert_eq!(env.read("in.yaml"), in_place);
    assert_eq!(
        fs::metadata(&input).unwrap().modified().unwrap(),
        before,
        "unchanged file rewritten"
    );
    ok_stdout(
        &env.ksec()
            .args(["decrypt", "-i"])
            .arg(&input)
            .output()
            .unwrap(),
    );
    assert_eq!(env.read("in.yaml"), SECRET);
    // `-` means stdin.
    let out = ok_stdout(
        &env.ksec()
            .args(["decrypt", "-"])
            .write_stdin(enc.clone())
            .output()
            .unwrap(),
    );
    assert_eq!(out, SECRET);
}

#[test]
fn re_encrypting_is_byte_identical() {
    let env = TestEnv::new();
    let enc = env.encrypt(SECRET);
    let again = ok_stdout(
        &env.ksec()
            .arg("encrypt")
            .write_stdin(enc.clone())
            .output()
            .unwrap(),
    );
    assert_eq!(again, enc);
}

#[test]
fn first_use_creates_the_local_key_and_says_so() {
    let env = TestEnv::new();
    let input = env.write("s.yaml", SECRET);
    let out = env.ksec_bare().arg("encrypt").arg(&input).output().unwrap();
    let enc = ok_stdout(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let key = env.path("home/.config/ksec/age/keys.txt");
    assert!(
        stderr.contains("created a new age key") && stderr.contains(&key.display().to_string()),
        "{stderr}"
    );
    assert!(stderr.contains("back it up"), "{stderr}");
    assert_eq!(
        fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        fs::metadata(key.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
    // Second use: same key, no message; decrypt finds it without configuration.
    let out = env.ksec_bare().arg("encrypt").arg(&input).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).is_empty());
    let second = ok_stdout(&out);
    let recipient = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("# kubesec:age:"))
            .unwrap()
            .split(':')
            .nth(2)
            .unwrap()
            .to_owned()
    };
    assert_eq!(recipient(&enc), recipient(&second));
    let dec = ok_stdout(
        &env.ksec_bare()
            .arg("decrypt")
            .write_stdin(enc)
            .output()
            .unwrap(),
    );
    assert_eq!(dec, SECRET);
    // XDG_CONFIG_HOME is honoured.
    let xdg = env.path("xdg");
    let out = env
        .ksec_bare()
        .env("XDG_CONFIG_HOME", &xdg)
        .arg("encrypt")
        .arg(&input)
        .output()
        .unwrap();
    ok_stdout(&out);
    assert!(xdg.join("ksec/age/keys.txt").exists());
}

#[test]
fn quickstart_sample_round_trips() {
    let env = TestEnv::new();
    let sample = fs::read_to_string(testdata().join("secret.yaml")).unwrap();
    assert_eq!(env.decrypt(&env.encrypt(&sample)), sample);
}

#[test]
fn cleartext_mode_encodes_and_decodes_data() {
    let env = TestEnv::new();
    let key = format!("age:{}", env.recipient);
    let plain = secret_with("data:\n  password: s3cr3t!\n  cert: |\n    line1\n    line2\n");
    let enc = ok_stdout(
        &env.ksec()
            .args(["encrypt", "-x", "-k", &key])
            .write_stdin(plain.clone())
            .output()
            .unwrap(),
    );
    // Without -x, data comes back base64-encoded, as Kubernetes stores it.
    let dec = env.decrypt(&enc);
    assert!(
        dec.contains(&format!("password: {}", B64.encode("s3cr3t!"))),
        "{dec}"
    );
    assert!(
        dec.contains(&format!("cert: {}", B64.encode("line1\nline2\n"))),
        "{dec}"
    );
    // With -x it is plain text again, byte for byte.
    let dec_x = ok_stdout(
        &env.ksec()
            .args(["decrypt", "-x"])
            .write_stdin(enc)
            .output()
            .unwrap(),
    );
    assert_eq!(dec_x, plain);
    // Non-UTF-8 data shows as !!binary and goes back in with -x.
    let binary = secret_with("data:\n  bin: //4A/w==\n");
    let enc = env.encrypt(&binary);
    let dec_x = ok_stdout(
        &env.ksec()
            .args(["decrypt", "-x"])
            .write_stdin(enc)
            .output()
            .unwrap(),
    );
    assert!(dec_x.contains("bin: !!binary //4A/w==\n"), "{dec_x}");
    let again = ok_stdout(
        &env.ksec()
            .args(["encrypt", "-x", "-k", &key])
            .write_stdin(dec_x)
            .output()
            .unwrap(),
    );
    assert_eq!(env.decrypt(&again), binary);
}

#[test]
fn key_changes_keep_or_rotate_the_data_key() {
    let env = TestEnv::new();
    let other = TestEnv::new();
    let (a, b) = (
        format!("age:{}", env.recipient),
        format!("age:{}", other.recipient),
    );
    let enc = env.encrypt(SECRET);
    let value_lines = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| l.starts_with("  ") && l.contains('.'))
            .map(str::to_owned)
            .collect()
    };
    // +KEY: same data key and values, new key line, new MAC.
    let added = ok_stdout(
        &env.ksec()
            .args(["encrypt", &format!("--key=+{b}")])
            .write_stdin(enc.clone())
            .output()
            .unwrap(),
    );
    assert_eq!(value_lines(&added), value_lines(&enc));
    assert!(added.contains(&format!("# kubesec:age:{}:", other.recipient)));
    assert_ne!(added, enc);
    // The other key alone opens it now.
    let kf = other.key_file.clone();
    let dec = ok_stdout(
        &env.ksec()
            .env("KSEC_AGE_KEY_FILE", &kf)
            .arg("decrypt")
            .write_stdin(added.clone())
            .output()
            .unwrap(),
    );
    assert_eq!(dec, SECRET);
    // -KEY: the data key rotates, every value changes.
    let removed = ok_stdout(
        &env.ksec()
            .args(["encrypt", &format!("--key=-{b}")])
            .write_stdin(added.clone())
            .output()
            .unwrap(),
    );
    let (old, new) = (value_lines(&added), value_lines(&removed));
    assert!(
        old.iter().zip(&new).all(|(x, y)| x != y),
        "every value must change after a removal"
    );
    assert!(!removed.contains(&other.recipient));
    refuses(&other, &["decrypt"], &removed, 6, &["no available key"]);
    // A plain list means exactly that list (replacing a with b rotates too).
    let replaced = ok_stdout(
        &env.ksec()
            .args(["encrypt", "-k", &b])
            .write_stdin(added)
            .output()
            .unwrap(),
    );
    assert!(!replaced.contains(&env.recipient) && replaced.contains(&other.recipient));
    // Same key listed twice is written once.
    let twice = ok_stdout(
        &env.ksec()
            .args(["encrypt", "-k", &a, "-k", &a])
            .write_stdin(SECRET)
            .output()
            .unwrap(),
    );
    assert_eq!(twice.matches("# kubesec:age:").count(), 1);
}

#[test]
fn key_argument_refusals() {
    let env = TestEnv::new();
    let a = format!("age:{}", env.recipient);
    refuses(&env, &["encrypt", "-k", "age"], SECRET, 2, &["TYPE:ID"]);
    refuses(
        &env,
        &["encrypt", "-k", "rot13:x"],
        SECRET,
        2,
        &["unknown key type"],
    );
    refuses(
        &env,
        &["encrypt", "-k", "age:age1notakey"],
        SECRET,
        2,
        &["not an age X25519 recipient"],
    );
    refuses(
        &env,
        &["encrypt", "-k", &a, &format!("--key=+{a}")],
        SECRET,
        2,
        &["cannot be mixed"],
    );
    let enc = env.encrypt(SECRET);
    refuses(
        &env,
        &["encrypt", &format!("--key=-{a}")],
        &enc,
        2,
        &["no key that can open"],
    );
    let other = age::x25519::Identity::generate().to_public().to_string();
    refuses(
        &env,
        &["encrypt", &format!("--key=-age:{other}")],
        &enc,
        2,
        &["no such key"],
    );
    refuses(
        &env,
        &["encrypt", "-i"],
        SECRET,
        2,
        &["--in-place needs a FILE"],
    );
    let out = env
        .ksec()
        .args(["encrypt", "-i", "-o", "x.yaml", "f.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // clap reports malformed flags itself, in its own format, with exit code 2.
    let out = env
        .ksec()
        .args(["encrypt", "--max-input-size", "lots"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`lots` is not a size"));
}

#[test]
fn manifest_refusals_are_positioned() {
    let env = TestEnv::new();
    let enc = |body: &str| secret_with(body);
    let cases: Vec<(String, i32, Vec<&str>)> = vec![
        (
            "apiVersion: v1\nkind: Secret\ndata: [unclosed\n".into(),
            3,
            vec!["<stdin>:", "invalid YAML"],
        ),
        (
            enc("data: [a, b]\n"),
            3,
            vec![":5:", "`data` must be a mapping"],
        ),
        (
            enc("data:\n  a: [x]\n"),
            3,
            vec![":6:", "data.a", "not a scalar"],
        ),
        (
            enc("data:\n  a: &x YWJj\n  b: *x\n"),
            3,
            vec![":6:", "data.a", "anchor or tag"],
        ),
        (
            enc("stringData:\n  b: !!str x\n"),
            3,
            vec!["stringData.b", "anchor or tag"],
        ),
        (
            enc("metadata2: &m x\nstringData:\n  b: *m\n"),
            3,
            vec![":7:", "stringData.b", "alias"],
        ),
        (
            enc("data:\n  a: YWJj\n  a: ZGVm\n"),
            3,
            vec![":7:", "data.a", "duplicate key"],
        ),
        (
            enc("data:\n  a: YWJj\ndata:\n  b: YWJj\n"),
            3,
            vec![":7:", "duplicate top-level key"],
        ),
        (
            enc("data:\n  a: not base64!\n"),
            3,
            vec![":6:", "data.a", "not valid base64"],
        ),
        (
            enc("stringData:\n  port: 5432\n"),
            3,
            vec!["stringData.port", "not a string"],
        ),
        (
            enc("stringData:\n  on: yes\n"),
            3,
            vec!["stringData.on", "not a string"],
        ),
        (
            enc("stringData:\n  e:\n"),
            3,
            vec!["stringData.e", "empty (null)"],
        ),
        (
            enc("stringData:\n  nul: \"a\\0b\"\n"),
            3,
            vec!["stringData.nul", "NUL"],
        ),
        (
            enc("data:\n  ? [complex]\n  : x\n"),
            3,
            vec!["key that is not a string"],
        ),
    ];
    for (input, code, needles) in cases {
        let stderr = refuses(&env, &["encrypt"], &input, code, &needles);
        if needles.contains(&"not valid base64") {
            assert!(
                stderr.contains("hint:")
                    && stderr.contains("--cleartext")
                    && stderr.contains("stringData"),
                "{stderr}"
            );
        }
        if needles.contains(&"not a string") {
            assert!(stderr.contains("hint: quote it"), "{stderr}");
        }
    }
    // A document nested past the limit is an error, not a crash.
    let deep = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {}{}\n",
        "[".repeat(300),
        "]".repeat(300)
    );
    refuses(&env, &["encrypt"], &deep, 3, &["invalid YAML"]);
    // !!binary needs -x.
    refuses(
        &env,
        &["encrypt"],
        &enc("data:\n  b: !!binary //4A/w==\n"),
        3,
        &["data.b", "--cleartext"],
    );
}

#[test]
fn state_refusals() {
    let env = TestEnv::new();
    refuses(
        &env,
        &["decrypt"],
        SECRET,
        4,
        &["document 1 (Secret prod/db)", "not encrypted"],
    );
    let enc = env.encrypt(SECRET);
    let partly = enc.replacen("  password: ", "  password: czNjcjN0\n  oops: ", 1);
    refuses(
        &env,
        &["encrypt"],
        &partly,
        4,
        &["data.password", "partly encrypted"],
    );
    refuses(&env, &["decrypt"], &partly, 4, &["partly encrypted"]);
    let footer_on_clear = format!(
        "{SECRET}# kubesec:v:3\n# kubesec:age:{}:AQID\n# kubesec:mac:X4VfM/AvTmvsgb7G.mNaSLQoWJ5ITMbe9OAUbKA==\n",
        env.recipient
    );
    refuses(
        &env,
        &["decrypt"],
        &footer_on_clear,
        4,
        &["footer but its values are in clear text"],
    );
    let bad_footer = enc.replace("# kubesec:v:4", "# kubesec:v:4\n# kubesec:gpg:x:AQID");
    refuses(
        &env,
        &["decrypt"],
        &bad_footer,
        3,
        &["unknown key type `gpg`"],
    );
    let misplaced = enc.replacen("data:\n", "data:\n# kubesec:v:4\n", 1);
    refuses(&env, &["decrypt"], &misplaced, 3, &["footer line"]);
}

#[test]
fn input_refusals() {
    let env = TestEnv::new();
    refuses(
        &env,
        &["decrypt", "missing.yaml"],
        "",
        7,
        &["missing.yaml", "cannot read"],
    );
    fs::create_dir(env.path("dir")).unwrap();
    refuses(
        &env,
        &["decrypt", "dir"],
        "",
        3,
        &["dir: no manifests found"],
    );
    let stderr = refuses(
        &env,
        &["encrypt", "--max-input-size", "100"],
        SECRET,
        3,
        &["larger than the limit of 100 bytes"],
    );
    assert!(stderr.contains("--max-input-size"), "{stderr}");
    ok_stdout(
        &env.ksec()
            .args(["encrypt", "--max-input-size", "1MiB"])
            .write_stdin(SECRET)
            .output()
            .unwrap(),
    );
    let out = env
        .ksec()
        .arg("encrypt")
        .write_stdin(b"apiVersion: v1\nkind: Secret\ndata:\n  a: \xff\n".to_vec())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("<stdin>:4: input is not UTF-8"));
}

#[test]
fn streams_without_secrets_pass_through_with_a_warning() {
    let env = TestEnv::new();
    let cm = "apiVersion: v1\nkind: ConfigMap\ndata:\n  password: hunter2\n";
    for cmd in ["encrypt", "decrypt"] {
        let out = env.ksec().arg(cmd).write_stdin(cm).output().unwrap();
        assert_eq!(ok_stdout(&out), cm);
        assert!(String::from_utf8_lossy(&out.stderr).contains("no Secret documents"));
    }
}

#[test]
fn secrets_are_recognised_only_as_v1_secret() {
    let env = TestEnv::new();
    // A `kind: Secret` of another API version is not encrypted; rather than
    // pass its values on in clear text, encrypt refuses it (issue 11).
    let other = "apiVersion: example.com/v1\nkind: Secret\ndata:\n  a: YWJj\n";
    let out = env
        .ksec()
        .arg("encrypt")
        .write_stdin(other)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains(
        "<stdin>:4: document 1 (Secret (unnamed)), data.a: `kind: Secret` without `apiVersion: v1` is not encrypted"
    ));
    let config = "apiVersion: example.com/v1\nkind: Config\ndata:\n  a: YWJj\n";
    assert_eq!(env.encrypt(config), config);
    let later_kind = "apiVersion: v1\ndata:\n  a: YWJj\nkind: Secret\n";
    assert!(env.encrypt(later_kind).contains("# kubesec:"));
}

/// Writes a v1 file by hand from the format description: no MAC, empty
/// values stored as `""`.
fn v1_file(env: &TestEnv) -> String {
    use ksec::formats::kubesec::codec;
    use ksec::keys::DataKey;
    use std::io::Write as _;
    let dek = DataKey::generate();
    let recipient: age::x25519::Recipient = env.recipient.parse().unwrap();
    let mut blob = Vec::new();
    let enc = age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
        .unwrap();
    let mut w = enc.wrap_output(&mut blob).unwrap();
    w.write_all(dek.as_bytes()).unwrap();
    w.finish().unwrap();
    let tok = |k: &str, v: &str| codec::encrypt_value(&dek, k, v, &codec::random_iv()).unwrap();
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: old\ndata:\n  a: {}\n  empty: \"\"\n# kubesec:v:1\n# kubesec:age:{}:{}\n",
        tok("a", "YWJj"),
        env.recipient,
        B64.encode(blob)
    )
}

#[test]
fn v1_files_need_a_flag_and_can_be_upgraded() {
    let env = TestEnv::new();
    let v1 = v1_file(&env);
    let stderr = refuses(&env, &["decrypt"], &v1, 5, &["format v1 carries no MAC"]);
    assert!(
        stderr.contains("--allow-missing-mac") && stderr.contains("ksec recompute-mac"),
        "{stderr}"
    );
    let out = env
        .ksec()
        .args(["decrypt", "--allow-missing-mac"])
        .write_stdin(v1.clone())
        .output()
        .unwrap();
    assert_eq!(
        ok_stdout(&out),
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: old\ndata:\n  a: YWJj\n  empty: \"\"\n"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning"));
    // recompute-mac asks first; without a terminal it needs --yes.
    let path = env.write("old.yaml", &v1);
    refuses(
        &env,
        &["recompute-mac", "old.yaml"],
        "",
        2,
        &["confirmation"],
    );
    assert_eq!(env.read("old.yaml"), v1);
    let out = env
        .ksec()
        .args(["recompute-mac", "--yes"])
        .arg(&path)
        .output()
        .unwrap();
    ok_stdout(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("data.a (4 bytes)") && stderr.contains("data.empty (0 bytes)"),
        "{stderr}"
    );
    assert!(!stderr.contains("YWJj"), "values must not be shown");
    let upgraded = env.read("old.yaml");
    assert!(upgraded.contains("# kubesec:v:3\n") && upgraded.contains("# kubesec:mac:"));
    let dec = ok_stdout(&env.ksec().arg("decrypt").arg(&path).output().unwrap());
    assert!(dec.contains("  a: YWJj\n  empty: \"\"\n"), "{dec}");
}

#[test]
fn recompute_mac_repairs_a_mismatch() {
    let env = TestEnv::new();
    let enc = env.encrypt(SECRET);
    // Remove a value: the MAC no longer verifies.
    let cut: String = enc
        .lines()
        .filter(|l| !l.starts_with("  password:"))
        .map(|l| format!("{l}\n"))
        .collect();
    refuses(&env, &["decrypt"], &cut, 5, &["MAC does not verify"]);
    let path = env.write("cut.yaml", &cut);
    ok_stdout(
        &env.ksec()
            .args(["recompute-mac", "-y"])
            .arg(&path)
            .output()
            .unwrap(),
    );
    let dec = ok_stdout(&env.ksec().arg("decrypt").arg(&path).output().unwrap());
    assert!(!dec.contains("password") && dec.contains("username: YWRtaW4="));
}

#[test]
fn keygen_creates_once() {
    let env = TestEnv::new();
    let file = env.path("new/dir/keys.txt");
    let out = env
        .ksec()
        .env("KSEC_AGE_KEY_FILE", &file)
        .arg("keygen")
        .output()
        .unwrap();
    let recipient = ok_stdout(&out);
    assert!(recipient.starts_with("age1") && recipient.ends_with('\n'));
    let text = fs::read_to_string(&file).unwrap();
    assert!(
        text.contains(&format!("# public key: {}", recipient.trim()))
            && text.contains("AGE-SECRET-KEY-1")
    );
    assert!(text.starts_with("# created: 20"));
    assert_eq!(
        fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        fs::metadata(env.path("new/dir"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
    let out = env
        .ksec()
        .env("KSEC_AGE_KEY_FILE", &file)
        .arg("keygen")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("exists already"));
    assert_eq!(fs::read_to_string(&file).unwrap(), text);
}

#[test]
fn introspect_text_and_json() {
    let env = TestEnv::new();
    let stream = format!(
        "{}---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n---\n{}",
        env.encrypt(SECRET),
        secret_with("data: {}\n")
    );
    let text = ok_stdout(
        &env.ksec()
            .arg("introspect")
            .write_stdin(stream.clone())
            .output()
            .unwrap(),
    );
    assert!(
        text.contains("document 1 (line 2): Secret prod/db"),
        "{text}"
    );
    assert!(
        text.contains("format: kubesec v4")
            && text.contains(&format!("age {}", env.recipient))
            && text.contains("mac: present"),
        "{text}"
    );
    assert!(text.contains("readable by kubesec: no"), "{text}");
    assert!(
        text.contains("document 2") && text.contains("not a Secret"),
        "{text}"
    );
    assert!(
        text.contains("document 3") && text.contains("not encrypted"),
        "{text}"
    );
    let json = ok_stdout(
        &env.ksec()
            .args(["introspect", "--json", "-"])
            .write_stdin(stream)
            .output()
            .unwrap(),
    );
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let d = &v["documents"][0];
    assert_eq!(d["state"], "encrypted");
    assert_eq!(d["version"], 4);
    assert_eq!(d["name"], "db");
    assert_eq!(d["namespace"], "prod");
    assert_eq!(d["mac"], true);
    assert_eq!(d["kubesec_compatible"], false);
    assert_eq!(d["keys"][0]["type"], "age");
    assert_eq!(d["keys"][0]["id"], env.recipient.as_str());
    assert_eq!(d["data_keys"], serde_json::json!(["username", "password"]));
    assert_eq!(v["documents"][1]["state"], "not-a-secret");
    assert_eq!(v["documents"][2]["state"], "plain");
    assert!(!json.contains("YWRtaW4"), "no values in introspect output");
}

#[test]
fn closed_stdout_pipe_is_success() {
    let env = TestEnv::new();
    let big = secret_with(&format!(
        "stringData:\n{}",
        (0..20_000)
            .map(|i| format!("  k{i}: value number {i}\n"))
            .collect::<String>()
    ));
    let enc = env.write("big.enc.yaml", env.encrypt(&big));
    let ksec = assert_cmd::cargo::cargo_bin("ksec");
    let status = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -o pipefail; '{}' decrypt '{}' | head -c 10 >/dev/null",
            ksec.display(),
            enc.display()
        ))
        .env("KSEC_AGE_KEY_FILE", &env.key_file)
        .env("HOME", env.path("home"))
        .status()
        .unwrap();
    assert!(
        status.success(),
        "ksec must exit 0 when the reader goes away"
    );
}

#[test]
fn a_clear_copy_in_last_applied_configuration_is_refused() {
    let env = TestEnv::new();
    // As `kubectl get secret -o yaml` exports it after a client-side apply.
    let exported = "apiVersion: v1\nkind: Secret\nmetadata:\n  annotations:\n    kubectl.kubernetes.io/last-applied-configuration: |\n      {\"apiVersion\":\"v1\",\"data\":{\"password\":\"czNjcjN0\"},\"kind\":\"Secret\"}\n  name: db\ndata:\n  password: czNjcjN0\n";
    let stderr = refuses(
        &env,
        &["encrypt"],
        exported,
        3,
        &[
            ":5:",
            "kubectl.kubernetes.io/last-applied-configuration",
            "clear copy",
        ],
    );
    assert!(stderr.contains("hint: delete that annotation"), "{stderr}");
    // Other annotations are fine.
    let fine = exported.replace(
        "kubectl.kubernetes.io/last-applied-configuration",
        "example.com/note",
    );
    assert!(env.encrypt(&fine).contains("# kubesec:mac:"));
}

#[test]
fn anchors_and_aliases_outside_secrets_pass_through() {
    let env = TestEnv::new();
    let stream = format!(
        "{SECRET}---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  a: &shared value\n  b: *shared\n"
    );
    let enc = env.encrypt(&stream);
    assert!(enc.ends_with("  a: &shared value\n  b: *shared\n"));
    assert_eq!(env.decrypt(&enc), stream);
}

#[test]
fn ciphertext_outside_a_secret_is_refused_by_encrypt_too() {
    let env = TestEnv::new();
    // A Secret whose kind was edited: ksec no longer sees a Secret, but the
    // file still carries its ciphertext and footer.
    let enc = env.encrypt(SECRET).replace("kind: Secret", "kind: Sekret");
    refuses(
        &env,
        &["encrypt"],
        &enc,
        3,
        &["is not an `apiVersion: v1` `kind: Secret`"],
    );
    refuses(
        &env,
        &["decrypt"],
        &enc,
        3,
        &["is not an `apiVersion: v1` `kind: Secret`"],
    );
}

/// Comments on value lines stay clear text (issue 11): encrypt and check
/// warn, and the quickstart sample has none.
#[test]
fn comments_inside_values_are_warned_about() {
    let env = TestEnv::new();
    let key = format!("age:{}", env.recipient);
    let with = secret_with(
        "data:\n  username: YWRtaW4=   # admin\n  # the password of the app\n  password: czNjcjN0\n",
    );
    let out = env
        .ksec()
        .args(["encrypt", "-k", &key])
        .write_stdin(with)
        .output()
        .unwrap();
    let enc = ok_stdout(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("<stdin>:6: document 1 (Secret s): 2 comments inside data/stringData (lines 6, 7) stay readable when the values are encrypted; move what they say about a value out of the Secret\n"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("admin") && !stderr.contains("the password"),
        "{stderr}"
    );
    env.write("s.yaml", &enc);
    let out = env.ksec().args(["check", "s.yaml"]).output().unwrap();
    assert!(out.status.success(), "a warning does not fail check");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            "warning: s.yaml:6: document 1 (Secret s): 2 comments inside data/stringData"
        )
    );
    let out = env
        .ksec()
        .args(["check", "--format", "json", "s.yaml"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["warnings"][0]["code"], "comment-in-values");
    assert_eq!(report["warnings"][0]["line"], 6);
    assert_eq!(report["problems"].as_array().unwrap().len(), 0);

    let sample = fs::read_to_string(testdata().join("secret.yaml")).unwrap();
    let out = env
        .ksec()
        .args(["encrypt", "-k", &key])
        .write_stdin(sample)
        .output()
        .unwrap();
    ok_stdout(&out);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("warning"));
}

/// `-i`/`-o` on unusual targets (issue 11): a symbolic link is written
/// through and stays a link, a read-only file is refused unless --force,
/// owner and group are kept (as root), and a FIFO is written to directly.
#[test]
fn in_place_writes_through_links_keep_owners_and_respect_read_only() {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let env = TestEnv::new();
    let key = format!("age:{}", env.recipient);
    let plain = secret_with("stringData:\n  a: hunter2\n");
    env.write("real.yaml", &plain);
    std::os::unix::fs::symlink("real.yaml", env.path("link.yaml")).unwrap();
    env.ksec()
        .args(["encrypt", "-i", "-k", &key, "link.yaml"])
        .assert()
        .success();
    let link = fs::symlink_metadata(env.path("link.yaml")).unwrap();
    assert!(
        link.file_type().is_symlink(),
        "the link was replaced by a file"
    );
    let real = env.read("real.yaml");
    assert!(
        !real.contains("hunter2") && real.contains("# kubesec:v:4"),
        "{real}"
    );

    // Read-only: refused, the file untouched; --force replaces it.
    env.write("ro.yaml", &plain);
    fs::set_permissions(env.path("ro.yaml"), fs::Permissions::from_mode(0o444)).unwrap();
    let out = env
        .ksec()
        .args(["encrypt", "-i", "-k", &key, "ro.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ro.yaml: the file is read-only; not replaced")
            && stderr.contains("--force"),
        "{stderr}"
    );
    assert_eq!(env.read("ro.yaml"), plain);
    env.ksec()
        .args(["--force", "encrypt", "-i", "-k", &key, "ro.yaml"])
        .assert()
        .success();
    let meta = fs::metadata(env.path("ro.yaml")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o444, "the mode is kept");
    assert!(!env.read("ro.yaml").contains("hunter2"));

    // Owner and group are kept (only root can give files away).
    if running_as_root() {
        env.write("owned.yaml", &plain);
        std::os::unix::fs::chown(env.path("owned.yaml"), Some(65534), Some(65534)).unwrap();
        env.ksec()
            .args(["encrypt", "-i", "-k", &key, "owned.yaml"])
            .assert()
            .success();
        let meta = fs::metadata(env.path("owned.yaml")).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
    }

    // A FIFO is written to directly.
    let fifo = env.path("out.fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let reader = std::thread::spawn({
        let fifo = fifo.clone();
        move || fs::read_to_string(fifo).unwrap()
    });
    let enc = env.read("real.yaml");
    env.write("enc.yaml", &enc);
    env.ksec()
        .args(["decrypt", "-q", "-o"])
        .arg(&fifo)
        .arg("enc.yaml")
        .assert()
        .success();
    assert_eq!(reader.join().unwrap(), plain);
    use std::os::unix::fs::FileTypeExt as _;
    assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
}

fn running_as_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Smaller refusals of issue 11: Secret keys the API server rejects, `-k`
/// with secret key material or a line break (never echoed, one line), and
/// a v3 footer on a Secret with stringData (the version line is not under
/// the MAC).
#[test]
fn invalid_keys_secret_key_specs_and_v3_with_string_data() {
    let env = TestEnv::new();
    let key = format!("age:{}", env.recipient);
    for bad in ["a/b", "\"\"", "\"a\\tb\"", "ключ"] {
        let input = secret_with(&format!("stringData:\n  {bad}: x\n"));
        let out = env
            .ksec()
            .args(["encrypt", "-k", &key])
            .write_stdin(input)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{bad}");
        assert!(out.stdout.is_empty());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("not a valid Secret key"),
            "{bad}"
        );
    }
    let identity = "AGE-SECRET-KEY-1QUW8ZJ5CGGX2KFL9T00RZPZEC28RRZTXXQSHX8TQV4JWV4Y8XWLQJAY4Q5";
    for spec in [
        format!("age:{identity}"),
        identity.to_owned(),
        format!("age:{}\nage:x", env.recipient),
    ] {
        let out = env
            .ksec()
            .args(["encrypt", "-k", &spec])
            .write_stdin(secret_with("stringData:\n  a: b\n"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("QUW8ZJ5"), "secret key echoed: {stderr}");
        assert_eq!(
            stderr
                .lines()
                .filter(|l| l.starts_with("ksec: error:"))
                .count(),
            1
        );
        assert!(
            stderr
                .lines()
                .all(|l| l.starts_with("ksec: error:") || l.starts_with("  hint:")),
            "{stderr}"
        );
    }
    let enc = env.encrypt(&secret_with("stringData:\n  a: b\n"));
    env.write("v3.yaml", enc.replace("# kubesec:v:4", "# kubesec:v:3"));
    let out = env
        .ksec()
        .args(["check", "--format", "json", "v3.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(8));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["problems"][0]["code"], "version-mismatch");
}
