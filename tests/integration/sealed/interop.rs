//! ksec against kubesealpy and the reference implementation, both ways, in
//! every scope; the blob layout byte by byte; the checked-in reference
//! SealedSecrets.

use std::fs;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::json;

use super::{
    controller, fixture_values, ok, peer, peer_open, refused, sample, sample_values, seal,
    secret_data, secret_yaml, small_controller, unseal, yaml_docs,
};
use crate::support::TestEnv;

const CLUSTER: &str = "sealedsecrets.bitnami.com/cluster-wide";
const NAMESPACE: &str = "sealedsecrets.bitnami.com/namespace-wide";

#[test]
fn ksec_seals_what_kubesealpy_and_the_reference_open_in_every_scope() {
    let c = controller();
    let env = TestEnv::new();
    // (flags, scope annotation on the input, the scope that must result)
    let cases: [(&[&str], Option<&str>, &str); 6] = [
        (&[], None, "strict"),
        (&["--scope", "namespace-wide"], None, "namespace-wide"),
        (&["--scope", "cluster-wide"], None, "cluster-wide"),
        (&[], Some("namespace-wide"), "namespace-wide"),
        (&[], Some("cluster-wide"), "cluster-wide"),
        // An explicit --scope replaces the input's annotation, strict too.
        (&["--scope", "strict"], Some("cluster-wide"), "strict"),
    ];
    for (flags, annotation, scope) in cases {
        let text = ok(
            &seal(
                &env,
                &c.cert,
                flags,
                &secret_yaml("db", Some("prod"), annotation),
            ),
            "ksec seal",
        );
        assert!(text.starts_with("# the database credentials\napiVersion: bitnami.com/v1alpha1\n"));
        let file = env.write("sealed.yaml", &text);
        let reference = peer_open("ref-open", &c.key, &file);
        let kubesealpy = peer_open("kubesealpy-open", &c.key_pkcs1, &file);
        let got = &reference["prod/db"];
        assert_eq!(got["values"], fixture_values(), "reference, {scope}");
        assert_eq!(
            kubesealpy["prod/db"]["values"],
            fixture_values(),
            "kubesealpy, {scope}"
        );
        // The label is exactly the scope's, and no other scope's label opens a value.
        assert_eq!(got["scope"], scope);
        let label = match scope {
            "strict" => "prod/db",
            "namespace-wide" => "prod",
            _ => "",
        };
        assert_eq!(got["label"], label);
        assert_eq!(got["other_labels_open"], false, "{scope}");
        // kubeseal's shape: the top-level metadata is name, namespace and the
        // scope annotation only; the template has the Secret's metadata
        // without server fields and the last-applied copy.
        let annotation_of = |s: &str| match s {
            "namespace-wide" => Some(NAMESPACE),
            "cluster-wide" => Some(CLUSTER),
            _ => None,
        };
        let mut top = json!({"name": "db", "namespace": "prod"});
        let mut template_annotations = json!({"owner": "team-a"});
        if let Some(a) = annotation_of(scope) {
            top["annotations"] = json!({ a: "true" });
            template_annotations[a] = json!("true");
        }
        assert_eq!(got["metadata"], top, "{scope}");
        assert_eq!(
            got["template"],
            json!({
                "metadata": {
                    "name": "db",
                    "namespace": "prod",
                    "labels": {"app": "db"},
                    "annotations": template_annotations,
                },
                "type": "Opaque",
            }),
            "{scope}"
        );
    }
}

#[test]
fn the_blob_layout_is_the_controllers() {
    let env = TestEnv::new();
    for (c, head, rsa_len) in [(controller(), "Ag", 512), (small_controller(), "AQ", 256)] {
        let text = ok(
            &seal(&env, &c.cert, &[], &secret_yaml("db", Some("prod"), None)),
            "ksec seal",
        );
        let docs = yaml_docs(&text);
        let sealed = docs[0]["spec"]["encryptedData"].as_object().unwrap();
        let values = fixture_values();
        assert_eq!(sealed.len(), values.as_object().unwrap().len());
        for (key, blob64) in sealed {
            let blob64 = blob64.as_str().unwrap();
            // Standard base64 with padding, no line breaks.
            assert!(
                blob64
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
            );
            assert!(blob64.starts_with(head), "{key}: {}", &blob64[..4]);
            assert!(
                "ABCD".contains(&blob64[2..3]),
                "{key}: the first RSA byte is below the modulus: {}",
                &blob64[..4]
            );
            let blob = B64.decode(blob64).unwrap();
            let value = B64.decode(values[key].as_str().unwrap()).unwrap();
            assert_eq!(
                &blob[..2],
                &(rsa_len as u16).to_be_bytes(),
                "{key}: u16 big-endian length prefix"
            );
            assert_eq!(
                blob.len(),
                2 + rsa_len + value.len() + 16,
                "{key}: 2 + RSA + value + GCM tag ({}-bit key)",
                c.bits
            );
        }
    }
}

#[test]
fn kubesealpy_sealed_opens_with_ksec_with_every_key_form() {
    let c = controller();
    let env = TestEnv::new();
    let values = fixture_values().to_string();
    for scope in ["strict", "namespace-wide", "cluster-wide"] {
        let out = peer(
            &[
                "kubesealpy-seal",
                c.cert.to_str().unwrap(),
                scope,
                "db",
                "prod",
            ],
            Some(&values),
        );
        let sealed = ok(&out, "kubesealpy Sealer.seal");
        for key in [&c.key, &c.key_pkcs1, &c.backup] {
            let clear = ok(&unseal(&env, key, &[], &sealed), "ksec unseal");
            assert_eq!(
                secret_data(&clear)["prod/db"],
                fixture_values(),
                "{scope}, {}",
                key.display()
            );
        }
    }
}

#[test]
fn the_reference_sealed_secrets_open_with_every_key_form() {
    let env = TestEnv::new();
    let mut files = 0;
    for entry in fs::read_dir(sample("")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if !name.starts_with("sealed-") {
            continue;
        }
        files += 1;
        let input = fs::read_to_string(&path).unwrap();
        for key in ["tls.key", "tls-pkcs1.key", "key-backup.yaml"] {
            let clear = ok(&unseal(&env, &sample(key), &[], &input), "ksec unseal");
            let data = secret_data(&clear);
            assert_eq!(data["myns/mysecret"], sample_values(), "{name} with {key}");
        }
    }
    assert_eq!(
        files, 9,
        "three scopes × (reference JSON, YAML, kubesealpy YAML)"
    );
}

#[test]
fn kubesealpys_scope_bug_is_refused_as_the_controller_would() {
    // kubesealpy's seal_secret() writes a cluster-wide annotation but seals
    // with the strict label; the controller reads the annotation and fails.
    let env = TestEnv::new();
    let input = fs::read_to_string(sample("kubesealpy-seal_secret-annotation-bug.yaml")).unwrap();
    let out = unseal(&env, &sample("tls.key"), &[], &input);
    refused(
        &out,
        6,
        "no recovery key opens it as cluster-wide scope (label ``;",
    );
}

#[test]
fn raw_values_open_with_the_reference_under_their_label() {
    let c = controller();
    let env = TestEnv::new();
    let value = "line one\nline two\n";
    let cases: [(&[&str], &str); 3] = [
        (&["--name", "db", "--namespace", "prod"], "prod/db"),
        (
            &["--scope", "namespace-wide", "--namespace", "prod"],
            "prod",
        ),
        (&["--scope", "cluster-wide"], ""),
    ];
    for (flags, label) in cases {
        let mut args = vec!["--raw"];
        args.extend_from_slice(flags);
        let blob = ok(&seal(&env, &c.cert, &args, value), "ksec seal --raw");
        assert!(!blob.ends_with('\n'), "bare base64, as kubeseal --raw");
        let out = peer(
            &["ref-open-raw", c.key.to_str().unwrap(), label],
            Some(&blob),
        );
        assert_eq!(
            ok(&out, "ref-open-raw").trim(),
            B64.encode(value),
            "{label:?}"
        );
    }
    // --from-file: any bytes; the KEY= part is ignored, as kubeseal does.
    let bytes: Vec<u8> = (0u8..=255).collect();
    env.write("value.bin", &bytes);
    let blob = ok(
        &seal(
            &env,
            &c.cert,
            &[
                "--raw",
                "--scope",
                "cluster-wide",
                "--from-file",
                "k=value.bin",
            ],
            "",
        ),
        "ksec seal --raw --from-file",
    );
    let out = peer(&["ref-open-raw", c.key.to_str().unwrap(), ""], Some(&blob));
    assert_eq!(ok(&out, "ref-open-raw").trim(), B64.encode(&bytes));
}

#[test]
fn values_sealed_by_ksec_unseal_with_ksec_as_the_controller_would() {
    let c = controller();
    let env = TestEnv::new();
    let sealed = ok(
        &seal(
            &env,
            &c.cert,
            &[],
            &secret_yaml("db", Some("prod"), Some("namespace-wide")),
        ),
        "ksec seal",
    );
    let clear = ok(&unseal(&env, &c.backup, &[], &sealed), "ksec unseal");
    let docs = yaml_docs(&clear);
    // The Secret the controller creates: the template's metadata, every value
    // in `data`, the type; no ownerReferences offline.
    assert_eq!(
        docs[0],
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": "db",
                "namespace": "prod",
                "labels": {"app": "db"},
                "annotations": {"owner": "team-a", NAMESPACE: "true"},
            },
            "type": "Opaque",
            "data": fixture_values(),
        })
    );
    assert!(clear.starts_with("# the database credentials\napiVersion: v1\nkind: Secret\n"));
}
