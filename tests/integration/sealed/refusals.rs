//! Every refusal of `seal`, `unseal` and `reseal`: one clear line, its exit
//! code, nothing on stdout and no file written.

use std::path::Path;
use std::process::{Command, Output};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use super::{
    controller, ok, other_controller, peer, refused, run, seal, secret_yaml, unseal, yaml_docs,
};
use crate::support::TestEnv;

/// Asserts the refusal and that `-o out.yaml` was not written.
fn refused_no_file(env: &TestEnv, out: &Output, code: i32, needle: &str) -> String {
    let stderr = refused(out, code, needle);
    assert!(!env.path("out.yaml").exists(), "nothing may be written");
    stderr
}

/// A Secret sealed (strict, prod/db) for the test controller.
fn sealed_db(env: &TestEnv) -> String {
    ok(
        &seal(
            env,
            &controller().cert,
            &[],
            &secret_yaml("db", Some("prod"), None),
        ),
        "ksec seal",
    )
}

/// Unseals `text` with the test controller's key, `-o out.yaml`.
fn unseal_to_file(env: &TestEnv, text: &str) -> Output {
    unseal(env, &controller().key, &["-o", "out.yaml"], text)
}

/// The base64 blob of `key` in a sealed YAML text.
fn blob_of(text: &str, key: &str) -> String {
    yaml_docs(text)[0]["spec"]["encryptedData"][key]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn seal_refuses_an_expired_certificate() {
    let env = TestEnv::new();
    let cert = env.path("expired.pem");
    let out = peer(
        &[
            "expired-cert",
            controller().key.to_str().unwrap(),
            cert.to_str().unwrap(),
        ],
        None,
    );
    ok(&out, "making an expired certificate");
    let out = seal(
        &env,
        &cert,
        &["-o", "out.yaml"],
        &secret_yaml("db", Some("prod"), None),
    );
    let stderr = refused_no_file(
        &env,
        &out,
        6,
        "expired.pem: the certificate expired on January 31, 2024 (2024-01-31T00:00:00Z)",
    );
    assert!(stderr.contains("hint: seal for the controller's current certificate"));
}

#[test]
fn seal_refuses_a_certificate_that_is_not_rsa() {
    let env = TestEnv::new();
    let (key, cert) = (env.path("ec.key"), env.path("ec.pem"));
    let out = run(
        Command::new("openssl").args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "30",
            "-subj",
            "/CN=ec",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
        ]),
        None,
    );
    ok(&out, "openssl req (EC)");
    let out = seal(
        &env,
        &cert,
        &["-o", "out.yaml"],
        &secret_yaml("db", Some("prod"), None),
    );
    refused_no_file(&env, &out, 6, "the certificate's key is ECDSA, not RSA");
    // The EC private key is refused as a recovery key too.
    let sealed = sealed_db(&env);
    let out = unseal(&env, &key, &["-o", "out.yaml"], &sealed);
    refused_no_file(&env, &out, 6, "the private key is an EC key, not RSA");
    // A file without any certificate.
    let out = seal(
        &env,
        Path::new("ec.key"),
        &[],
        &secret_yaml("db", Some("prod"), None),
    );
    refused(&out, 6, "holds no PEM certificate");
}

#[test]
fn seal_refuses_a_secret_without_a_name() {
    let env = TestEnv::new();
    let input = secret_yaml("db", Some("prod"), None).replace("  name: db\n", "");
    let out = seal(&env, &controller().cert, &["-o", "out.yaml"], &input);
    let stderr = refused_no_file(&env, &out, 3, "the Secret has no metadata.name");
    assert!(
        stderr.contains("<stdin>:2: document 1 (Secret "),
        "{stderr}"
    );
    // --name gives it one.
    ok(
        &seal(
            &env,
            &controller().cert,
            &["--name", "db", "--namespace", "prod"],
            &input,
        ),
        "seal --name",
    );
}

#[test]
fn seal_refuses_a_strict_or_namespace_wide_secret_without_a_namespace() {
    let env = TestEnv::new();
    let cert = &controller().cert;
    let input = secret_yaml("db", None, None);
    for flags in [&[][..], &["--scope", "namespace-wide"][..]] {
        let mut args = flags.to_vec();
        args.extend(["-o", "out.yaml"]);
        let out = seal(&env, cert, &args, &input);
        let stderr = refused_no_file(&env, &out, 3, "the Secret has no metadata.namespace, which");
        assert!(stderr.contains("hint: add metadata.namespace, pass --namespace NS"));
    }
    // --namespace gives it one; cluster-wide needs none.
    let sealed = ok(
        &seal(&env, cert, &["--namespace", "prod"], &input),
        "seal -n",
    );
    assert_eq!(yaml_docs(&sealed)[0]["metadata"]["namespace"], "prod");
    let sealed = ok(
        &seal(&env, cert, &["--scope", "cluster-wide"], &input),
        "cluster-wide",
    );
    assert!(yaml_docs(&sealed)[0]["metadata"].get("namespace").is_none());
    // A namespace that differs from the Secret's is refused.
    let out = seal(
        &env,
        cert,
        &["--namespace", "staging", "-o", "out.yaml"],
        &secret_yaml("db", Some("prod"), None),
    );
    refused_no_file(
        &env,
        &out,
        3,
        "namespace mismatch: the Secret is in namespace prod but --namespace staging was given",
    );
}

#[test]
fn seal_refuses_a_secret_without_values_unless_allowed() {
    let env = TestEnv::new();
    let input = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: empty\n  namespace: prod\n";
    let out = seal(&env, &controller().cert, &["-o", "out.yaml"], input);
    let stderr = refused_no_file(&env, &out, 3, "the Secret has no data or stringData values");
    assert!(stderr.contains("--allow-empty-data"));
    let sealed = ok(
        &seal(&env, &controller().cert, &["--allow-empty-data"], input),
        "seal --allow-empty-data",
    );
    assert_eq!(
        yaml_docs(&sealed)[0]["spec"]["encryptedData"],
        serde_json::json!({})
    );
}

#[test]
fn raw_needs_what_its_scope_seals_in() {
    let env = TestEnv::new();
    let cert = &controller().cert;
    let out = seal(&env, cert, &["--raw", "--namespace", "prod"], "v");
    refused(&out, 2, "--raw with --scope strict needs --name");
    let out = seal(&env, cert, &["--raw", "--scope", "namespace-wide"], "v");
    refused(
        &out,
        2,
        "--raw with --scope namespace-wide needs --namespace",
    );
    let out = seal(&env, cert, &["--raw", "db.yaml"], "v");
    refused(
        &out,
        2,
        "--raw seals standard input (or --from-file); it takes no PATH",
    );
    // clap's own usage error.
    let out = seal(&env, cert, &["--from-file", "x"], "v");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--raw"));
}

#[test]
fn unseal_refuses_a_key_that_does_not_open_it() {
    let env = TestEnv::new();
    let sealed = sealed_db(&env);
    let out = unseal(&env, &other_controller().key, &["-o", "out.yaml"], &sealed);
    let stderr = refused_no_file(
        &env,
        &out,
        6,
        "(SealedSecret prod/db), spec.encryptedData.binary: no recovery key opens it as strict scope (label `prod/db`; 1 key tried)",
    );
    assert!(stderr.contains("hint: it was sealed with another controller key"));
}

#[test]
fn unseal_refuses_a_renamed_moved_or_rescoped_strict_sealed_secret() {
    let env = TestEnv::new();
    let sealed = sealed_db(&env);
    assert!(sealed.contains("\nmetadata:\n  name: db\n  namespace: prod\nspec:\n"));
    let renamed = sealed.replacen("\n  name: db\n", "\n  name: db2\n", 1);
    refused_no_file(&env, &unseal_to_file(&env, &renamed), 6, "label `prod/db2`");
    let moved = sealed.replacen("\n  namespace: prod\n", "\n  namespace: staging\n", 1);
    refused_no_file(&env, &unseal_to_file(&env, &moved), 6, "label `staging/db`");
    let rescoped = sealed.replacen(
        "\nmetadata:\n  name: db\n",
        "\nmetadata:\n  annotations:\n    sealedsecrets.bitnami.com/cluster-wide: \"true\"\n  name: db\n",
        1,
    );
    refused_no_file(
        &env,
        &unseal_to_file(&env, &rescoped),
        6,
        "no recovery key opens it as cluster-wide scope (label ``;",
    );
    // The template's annotations do not decide: the top-level ones do.
    let template_only = sealed.replacen(
        "    metadata:\n      annotations:\n",
        "    metadata:\n      annotations:\n        sealedsecrets.bitnami.com/cluster-wide: \"true\"\n",
        1,
    );
    assert_ne!(template_only, sealed);
    ok(&unseal_to_file(&env, &template_only), "unseal");
}

#[test]
fn unseal_refuses_truncated_damaged_and_swapped_values() {
    let env = TestEnv::new();
    let sealed = sealed_db(&env);
    let blob = blob_of(&sealed, "password");
    // Cut inside the RSA part: shorter than its own length prefix.
    let truncated = sealed.replace(&blob, &blob[..100]);
    let stderr = refused_no_file(
        &env,
        &unseal_to_file(&env, &truncated),
        3,
        "spec.encryptedData.password: damaged: 75 bytes, too short for a sealed value (514 at least)",
    );
    assert!(stderr.contains("<stdin>:"));
    // The AES-GCM part edited: the key opens, the value does not verify.
    let mut bytes = B64.decode(&blob).unwrap();
    *bytes.last_mut().unwrap() ^= 1;
    let damaged = sealed.replace(&blob, &B64.encode(&bytes));
    refused_no_file(
        &env,
        &unseal_to_file(&env, &damaged),
        5,
        "spec.encryptedData.password: damaged: the value does not verify (AES-GCM)",
    );
    // A value taken from another SealedSecret: sealed under its label.
    let other = ok(
        &seal(
            &env,
            &controller().cert,
            &[],
            &secret_yaml("api", Some("prod"), None),
        ),
        "seal api",
    );
    let swapped = sealed.replace(&blob, &blob_of(&other, "password"));
    refused_no_file(
        &env,
        &unseal_to_file(&env, &swapped),
        6,
        "spec.encryptedData.password: no recovery key opens it as strict scope (label `prod/db`",
    );
    // Not base64 at all.
    let junk = sealed.replace(&blob, "not-base64!");
    refused_no_file(&env, &unseal_to_file(&env, &junk), 3, "is not base64");
}

#[test]
fn unseal_refuses_templates_ksec_cannot_render() {
    let env = TestEnv::new();
    let sealed = sealed_db(&env);
    for (template, needle) in [
        (
            "{{ .password | sha256sum }}",
            "spec.template.data.dsn: ksec cannot render this template (template:1: function \"sha256sum\" not defined)",
        ),
        (
            "{{ .nope }}",
            "spec.template.data.dsn: ksec cannot render this template (template:1: map has no entry for key \"nope\")",
        ),
        (
            "{{ .password ",
            "spec.template.data.dsn: ksec cannot render this template (template:1:",
        ),
    ] {
        let with = sealed.replacen(
            "  template:\n",
            &format!("  template:\n    data:\n      dsn: '{template}'\n"),
            1,
        );
        let stderr = refused_no_file(&env, &unseal_to_file(&env, &with), 3, needle);
        assert!(stderr.contains("hint: ksec renders a subset of Go templates"));
    }
}

#[test]
fn recovery_key_files_that_hold_no_key_are_refused() {
    let env = TestEnv::new();
    let sealed = sealed_db(&env);
    env.write("notes.txt", "not a key\n");
    let out = unseal(&env, Path::new("notes.txt"), &[], &sealed);
    refused(
        &out,
        3,
        "notes.txt: holds neither a PEM private key nor Secrets with a tls.key",
    );
    env.write(
        "secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\ndata:\n  other: eA==\n",
    );
    let out = unseal(&env, Path::new("secret.yaml"), &[], &sealed);
    refused(
        &out,
        3,
        "the Secret has no tls.key: not a sealed-secrets key",
    );
    // The certificate is not a private key.
    let out = unseal(&env, &controller().cert, &[], &sealed);
    refused(&out, 3, "holds no private key");
}

#[test]
fn reseal_refuses_what_unseal_refuses_and_writes_nothing() {
    let env = TestEnv::new();
    let sealed = sealed_db(&env);
    let file = env.write("sealed.yaml", &sealed);
    let out = env
        .ksec()
        .args(["reseal", "-i", "sealed.yaml", "--recovery-key"])
        .arg(&other_controller().key)
        .arg("--cert")
        .arg(&other_controller().cert)
        .output()
        .unwrap();
    refused(&out, 6, "no recovery key opens it");
    assert_eq!(std::fs::read_to_string(file).unwrap(), sealed, "untouched");
}
