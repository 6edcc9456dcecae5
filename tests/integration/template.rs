//! `ksec decrypt --template`: Go text/template output.

use crate::support::{TestEnv, ok_stdout};

const SECRET: &str = "\
apiVersion: v1
kind: Secret
metadata:
  name: db
  labels:
    app: demo
data:
  password: czNjcjN0
  username: YWRtaW4=
  tls.crt: Y2VydA==
stringData:
  note: hello world
";

fn render(env: &TestEnv, enc: &str, args: &[&str]) -> std::process::Output {
    env.ksec()
        .arg("decrypt")
        .args(args)
        .write_stdin(enc.to_owned())
        .output()
        .unwrap()
}

#[test]
fn renders_fields_ranges_and_functions() {
    let env = TestEnv::new();
    let enc = env.encrypt(SECRET);
    let out = ok_stdout(&render(
        &env,
        &enc,
        &["--template", "{{ .data.password | base64decode }}"],
    ));
    assert_eq!(out, "s3cr3t");
    let env_file = ok_stdout(&render(
        &env,
        &enc,
        &[
            "--template",
            "{{ range $k, $v := .data }}{{ $k | upper | replace \".\" \"_\" }}={{ $v | b64dec | quote }}\n{{ end }}",
        ],
    ));
    assert_eq!(
        env_file,
        "PASSWORD=\"s3cr3t\"\nTLS_CRT=\"cert\"\nUSERNAME=\"admin\"\n"
    );
    // With -x, data values are already decoded.
    let out = ok_stdout(&render(
        &env,
        &enc,
        &[
            "-x",
            "--template",
            "{{ .metadata.name }}:{{ index .data \"tls.crt\" }}:{{ .stringData.note }}:{{ .metadata.labels.app }}",
        ],
    ));
    assert_eq!(out, "db:cert:hello world:demo");
    // From a file, into a file.
    env.write(
        "t.tmpl",
        "{{ if eq .kind \"Secret\" }}user={{ .data.username | b64dec }}{{ end }}\n",
    );
    ok_stdout(&render(
        &env,
        &enc,
        &["--template-file", "t.tmpl", "-o", "out.env"],
    ));
    assert_eq!(env.read("out.env"), "user=admin\n");
}

#[test]
fn one_rendering_per_secret() {
    let env = TestEnv::new();
    let other = SECRET.replace("name: db", "name: cache");
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  a: b\n";
    let enc = env.encrypt(&format!("{SECRET}---\n{cm}---\n{other}"));
    let out = ok_stdout(&render(
        &env,
        &enc,
        &["--template", "{{ .metadata.name }}\n"],
    ));
    assert_eq!(out, "db\ncache\n");
}

#[test]
fn refusals() {
    let env = TestEnv::new();
    let enc = env.encrypt(SECRET);
    for (args, code, needle) in [
        (
            vec!["--template", "{{ .data.nope }}"],
            3,
            "map has no entry for key \"nope\"",
        ),
        (vec!["--template", "{{ if .kind }}"], 2, "missing {{end}}"),
        (
            vec!["--template", "{{ nosuch . }}"],
            2,
            "\"nosuch\" not defined",
        ),
        (
            vec!["--template", "{{ .data.password | b64dec | b64dec }}"],
            3,
            "base64",
        ),
    ] {
        let out = render(&env, &enc, &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(!err.contains("s3cr3t"), "{err}");
    }
    env.write("s.yaml", &enc);
    let out = env
        .ksec()
        .args(["decrypt", "-i", "s.yaml", "--template", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(env.read("s.yaml"), enc);
}
