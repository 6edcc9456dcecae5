#!/usr/bin/env python3
"""sealpeer: the other side of ksec's SealedSecret tests.

Two implementations that share no code with ksec:

* PyPI `kubesealpy` (its Sealer and Unsealer classes; its CLI is a stub);
* a reference written here with Python `cryptography`, from the controller's
  description (sealed-secrets pkg/crypto): per value a 32-byte AES key,
  wrapped with RSA-OAEP (SHA-256 for the hash and for MGF1) under the scope
  label, the value sealed with AES-256-GCM under a zero 12-byte nonce and no
  AAD; blob = u16 big-endian length of the RSA part || RSA part || GCM
  ciphertext with its tag; standard base64.

The label is what the controller derives from the SealedSecret's *top-level*
metadata: cluster-wide (annotation value exactly "true") -> empty,
namespace-wide -> namespace, else namespace/name.

    sealpeer.py ref-open KEY FILE      open every SealedSecret of FILE (YAML or
                                       JSON stream) with the reference; prints
                                       {"ns/name": {"key": base64 value}}
                                       and, per document, the label used and
                                       whether any other scope's label opens
                                       a value (it must not).
    sealpeer.py kubesealpy-open KEY FILE   the same with kubesealpy's Unsealer.
    sealpeer.py kubesealpy-seal CERT SCOPE NAME NAMESPACE
                                       stdin: {"key": base64 value}; prints the
                                       SealedSecret kubesealpy's Sealer.seal
                                       makes (its to_yaml()).
    sealpeer.py ref-open-raw KEY LABEL  stdin: one base64 blob; prints the
                                       value, base64.
    sealpeer.py expired-cert KEY OUT   a self-signed certificate for KEY that
                                       expired on 2024-01-31.

Exit 1 with the reason on stderr when anything does not open.
"""

import base64
import datetime
import json
import struct
import sys

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID

CLUSTER = "sealedsecrets.bitnami.com/cluster-wide"
NAMESPACE = "sealedsecrets.bitnami.com/namespace-wide"


def fail(msg):
    print(f"sealpeer: {msg}", file=sys.stderr)
    sys.exit(1)


def oaep(label):
    return padding.OAEP(
        mgf=padding.MGF1(algorithm=hashes.SHA256()),
        algorithm=hashes.SHA256(),
        label=label or None,
    )


def open_blob(priv, blob, label):
    if len(blob) < 2:
        raise ValueError("too short")
    (n,) = struct.unpack(">H", blob[:2])
    if len(blob) < 2 + n:
        raise ValueError("too short")
    key = priv.decrypt(blob[2 : 2 + n], oaep(label))
    return AESGCM(key).decrypt(b"\0" * 12, blob[2 + n :], None)


def labels(meta):
    ns = meta.get("namespace") or ""
    name = meta["name"]
    return {
        "strict": f"{ns}/{name}".encode(),
        "namespace-wide": ns.encode(),
        "cluster-wide": b"",
    }


def scope_of(meta):
    a = meta.get("annotations") or {}
    if a.get(CLUSTER) == "true":
        return "cluster-wide"
    if a.get(NAMESPACE) == "true":
        return "namespace-wide"
    return "strict"


def load_key(path):
    return serialization.load_pem_private_key(open(path, "rb").read(), password=None)


def sealed_docs(path):
    text = open(path).read()
    docs = [d for d in yaml.safe_load_all(text) if d]
    out = []
    for d in docs:
        if d.get("kind") == "SealedSecret":
            out.append(d)
        elif d.get("kind", "").endswith("List"):
            out.extend(i for i in d.get("items") or [] if i.get("kind") == "SealedSecret")
    if not out:
        fail(f"{path}: no SealedSecret")
    return out


def ref_open(key_path, path):
    priv = load_key(key_path)
    result = {}
    for doc in sealed_docs(path):
        meta = doc["metadata"]
        scope = scope_of(meta)
        all_labels = labels(meta)
        label = all_labels[scope]
        values = {}
        others_open = False
        for k, v in (doc["spec"].get("encryptedData") or {}).items():
            blob = base64.b64decode(v, validate=True)
            try:
                values[k] = base64.b64encode(open_blob(priv, blob, label)).decode()
            except Exception as e:  # noqa: BLE001
                fail(f"{meta['name']}: {k} does not open with label {label!r}: {e!r}")
            for other, other_label in all_labels.items():
                if other_label == label:
                    continue
                try:
                    open_blob(priv, blob, other_label)
                    others_open = True
                except Exception:  # noqa: BLE001
                    pass
        result[f"{meta.get('namespace', '')}/{meta['name']}"] = {
            "scope": scope,
            "label": label.decode(),
            "other_labels_open": others_open,
            "values": values,
            "metadata": meta,
            "template": doc["spec"].get("template"),
        }
    print(json.dumps(result, sort_keys=True))


def kubesealpy_open(key_path, path):
    from kubesealpy import SealedSecret, Unsealer

    unsealer = Unsealer.from_private_key_file(key_path)
    result = {}
    for doc in sealed_docs(path):
        try:
            secret = unsealer.unseal(SealedSecret.model_validate(doc))
        except Exception as e:  # noqa: BLE001
            fail(f"kubesealpy cannot open {doc['metadata']['name']}: {e!r}")
        meta = doc["metadata"]
        result[f"{meta.get('namespace', '')}/{meta['name']}"] = {
            "values": dict(secret.data or {}),
        }
    print(json.dumps(result, sort_keys=True))


def kubesealpy_seal(cert, scope, name, namespace):
    from kubesealpy import Sealer, SealingScope

    data = {k: base64.b64decode(v) for k, v in json.load(sys.stdin).items()}
    sealer = Sealer.from_certificate_file(cert)
    ss = sealer.seal(name=name, namespace=namespace, data=data, scope=SealingScope(scope))
    sys.stdout.write(ss.to_yaml())


def ref_open_raw(key_path, label):
    blob = base64.b64decode(sys.stdin.read().strip(), validate=True)
    try:
        value = open_blob(load_key(key_path), blob, label.encode())
    except Exception as e:  # noqa: BLE001
        fail(f"the raw value does not open with label {label!r}: {e!r}")
    print(base64.b64encode(value).decode())


def expired_cert(key_path, out):
    key = load_key(key_path)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sealed-secret")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime.datetime(2023, 1, 31, tzinfo=datetime.timezone.utc))
        .not_valid_after(datetime.datetime(2024, 1, 31, tzinfo=datetime.timezone.utc))
        .sign(key, hashes.SHA256())
    )
    open(out, "wb").write(cert.public_bytes(serialization.Encoding.PEM))


def main(argv):
    commands = {
        "ref-open": (ref_open, 2),
        "kubesealpy-open": (kubesealpy_open, 2),
        "kubesealpy-seal": (kubesealpy_seal, 4),
        "ref-open-raw": (ref_open_raw, 2),
        "expired-cert": (expired_cert, 2),
    }
    if len(argv) < 2 or argv[1] not in commands or len(argv) - 2 != commands[argv[1]][1]:
        fail(__doc__)
    commands[argv[1]][0](*argv[2:])


if __name__ == "__main__":
    main(sys.argv)
