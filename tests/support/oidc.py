#!/usr/bin/env python3
"""oidc.py: a test OIDC issuer — an RSA key and the RS256 JWTs it signs.

The tests' stand-in for what a CI platform or a cluster hands a job: a
GitHub Actions OIDC token, a projected Kubernetes service-account token.
Vault's JWT auth (the real OpenBao server), the GCP stand-in's STS exchange
and the Azure stand-in's federated-credential check verify these tokens with
the issuer's public key.

    oidc.py key DIR              writes DIR/issuer.key (PKCS#8 PEM) and
                                 DIR/issuer.pub (SubjectPublicKeyInfo PEM)
    oidc.py cert DIR             writes DIR/client.pem (a self-signed client
                                 certificate and its key) and DIR/client-cert.pem
    oidc.py jwt DIR CLAIMS_JSON  prints a JWT signed with DIR/issuer.key;
                                 "iat"/"exp" default to now / now+300, and
                                 numbers in CLAIMS_JSON given as strings "+N"
                                 or "-N" are taken relative to now
"""

import base64
import json
import os
import sys
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_key(directory):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "issuer.key"), "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    with open(os.path.join(directory, "issuer.pub"), "wb") as f:
        f.write(
            key.public_key().public_bytes(
                serialization.Encoding.PEM,
                serialization.PublicFormat.SubjectPublicKeyInfo,
            )
        )


def sign(key, claims, header=None):
    head = {"alg": "RS256", "typ": "JWT"}
    head.update(header or {})
    signing_input = (
        b64url(json.dumps(head, separators=(",", ":")).encode())
        + "."
        + b64url(json.dumps(claims, separators=(",", ":")).encode())
    )
    sig = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + b64url(sig)


def make_jwt(directory, claims_json):
    with open(os.path.join(directory, "issuer.key"), "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    now = int(time.time())
    claims = {"iat": now, "exp": now + 300}
    for k, v in json.loads(claims_json).items():
        if isinstance(v, str) and len(v) > 1 and v[0] in "+-" and v[1:].isdigit():
            v = now + int(v)
        claims[k] = v
    return sign(key, claims)


def make_cert(directory):
    """A self-signed client certificate (an Entra ID app's credential):
    DIR/client.pem holds the certificate and its PKCS#8 key, DIR/client-cert.pem
    the certificate alone."""
    import datetime

    from cryptography import x509
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ksec test app")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    os.makedirs(directory, exist_ok=True)
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    with open(os.path.join(directory, "client-cert.pem"), "wb") as f:
        f.write(cert_pem)
    with open(os.path.join(directory, "client.pem"), "wb") as f:
        f.write(cert_pem)
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )


def main(argv):
    if len(argv) == 2 and argv[0] == "cert":
        make_cert(argv[1])
        return 0
    if len(argv) == 2 and argv[0] == "key":
        make_key(argv[1])
        return 0
    if len(argv) == 3 and argv[0] == "jwt":
        print(make_jwt(argv[1], argv[2]))
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
