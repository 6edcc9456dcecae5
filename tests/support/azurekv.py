#!/usr/bin/env python3
"""azurekv.py: a local stand-in for Azure Key Vault and Microsoft Entra ID,
for ksec's tests.

Why a stand-in: there is no Key Vault emulator (Microsoft ships none that
runs here) and the tests must not reach Azure. So this server implements the
documented REST calls the official Azure SDK for Rust makes for ksec, doing
the real work:

* HTTPS with a certificate from a CA made at start-up (DIR/ca.pem), as the
  SDK insists on https for the vault and the authority.
* Entra ID `POST /{tenant}/oauth2/v2.0/token`, client-credentials grant for
  the scope `https://vault.azure.net/.default`: a client secret, a
  certificate assertion (RS256 JWT verified with the registered
  certificate's key, `x5t` = its SHA-1 thumbprint, `aud` = this URL,
  `iss` = `sub` = the client id, lifetime, unique `jti`), or a federated
  token (workload identity: a JWT from a test OIDC issuer, its `iss`, `sub`
  and `aud` = `api://AzureADTokenExchange` checked). Entra's error bodies
  (AADSTS codes).
* The App Service managed-identity endpoint (plain http, as App Service
  serves it): `GET /msi/token` with `X-IDENTITY-HEADER`.
* Key Vault: the authentication challenge (401 + `WWW-Authenticate`) the
  SDK starts with, bearer tokens, per-key RBAC (403 ForbiddenByRbac), key
  versions (404 KeyNotFound, 403 KeyDisabled), `GET /keys/NAME[/VERSION]`,
  `POST /keys/NAME/VERSION/encrypt|decrypt` with real RSA-OAEP-256 (SHA-256,
  MGF1-SHA-256) under an RSA-2048 key per version, base64url values.

Control endpoints (`/_test/...`) and the managed-identity endpoint are on a
second, plain-http port.

    azurekv.py DIR --tenant T [--issuer-pub PEM] [--delay-ms N]

writes DIR/ca.pem and prints {"port": HTTPS, "http_port": HTTP} when ready;
exits when its parent process does.
"""

import base64
import datetime
import hashlib
import http.server
import ipaddress
import json
import os
import secrets
import ssl
import sys
import threading
import time
import urllib.parse

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

SCOPE = "https://vault.azure.net/.default"
OAEP = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def jwt_parts(jwt):
    parts = jwt.split(".")
    if len(parts) != 3:
        raise ValueError("not a JWT")
    return json.loads(b64url_decode(parts[0])), json.loads(b64url_decode(parts[1])), parts


def verify_rs256(parts, public_key):
    public_key.verify(
        b64url_decode(parts[2]), (parts[0] + "." + parts[1]).encode(), padding.PKCS1v15(), hashes.SHA256()
    )


def make_ca_and_cert(directory):
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ksec test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    with open(os.path.join(directory, "ca.pem"), "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    server_pem = os.path.join(directory, "server.pem")
    with open(server_pem, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return server_pem


class State:
    def __init__(self, directory, tenant, issuer_pub):
        self.lock = threading.Lock()
        self.dir = directory
        self.tenant = tenant
        self.port = None
        self.issuer_key = None
        if issuer_pub:
            with open(issuer_pub, "rb") as f:
                self.issuer_key = serialization.load_pem_public_key(f.read())
        self.apps = {}  # client_id -> {"secret", "thumbprint", "cert_key", "federated", "principal"}
        self.msi = None  # {"secret", "principal"}
        self.tokens = {}  # token -> (principal, expiry)
        self.keys = {}  # name -> {"versions": [(id, key, enabled)], "allow": {op: set}}
        self.jtis = set()
        self.counts = {}
        self.api_versions = set()
        self.delay = 0.0  # seconds added to each Key Vault call (benchmarks)

    def count(self, what):
        self.counts[what] = self.counts.get(what, 0) + 1

    def issue(self, principal):
        token = "eyJ0eXAiOiJKV1Qi.standin." + secrets.token_urlsafe(24)
        self.tokens[token] = (principal, time.time() + 3600)
        return token

    def kid(self, name, version):
        return "https://127.0.0.1:%d/keys/%s/%s" % (self.port, name, version)


def entra_error(status, error, code, description):
    return status, {
        "error": error,
        "error_description": "AADSTS%d: %s\r\nTrace ID: 00000000-0000-0000-0000-000000000000\r\nTimestamp: %s" % (code, description, time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())),
        "error_codes": [code],
        "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
    }


def kv_error(status, code, message, inner=None):
    body = {"error": {"code": code, "message": message}}
    if inner:
        body["error"]["innererror"] = {"code": inner}
    return status, body


class Base(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without TCP_NODELAY, delayed
    # ACKs would add ~40 ms to every keep-alive request.
    disable_nagle_algorithm = True
    state = None

    def log_message(self, fmt, *args):
        if os.environ.get("STANDIN_LOG"):
            sys.stderr.write("%s %s\n" % (self.__class__.__name__, fmt % args))

    def reply(self, code, body, headers=None):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""


class Secure(Base):
    """Entra ID and Key Vault, over https."""

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        with self.state.lock:
            return self.vault("GET", url, b"")

    def do_POST(self):
        raw = self.body()
        url = urllib.parse.urlparse(self.path)
        if self.state.delay and url.path.startswith("/keys/"):
            time.sleep(self.state.delay)  # a network round trip, outside the lock
        with self.state.lock:
            if url.path == "/%s/oauth2/v2.0/token" % self.state.tenant:
                return self.token(urllib.parse.parse_qs(raw.decode()))
            if url.path.endswith("/oauth2/v2.0/token"):
                return self.reply(*entra_error(400, "invalid_request", 90002, "Tenant '%s' not found." % url.path.split("/")[1]))
            return self.vault("POST", url, raw)

    def token(self, form):
        s = self.state
        get = lambda k: form.get(k, [""])[0]
        if get("grant_type") != "client_credentials":
            return self.reply(*entra_error(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type."))
        if get("scope") != SCOPE:
            return self.reply(*entra_error(400, "invalid_scope", 70011, "The provided value for the input parameter 'scope' is not valid."))
        client_id = get("client_id")
        app = s.apps.get(client_id)
        if app is None:
            return self.reply(*entra_error(400, "unauthorized_client", 700016, "Application with identifier '%s' was not found in the directory." % client_id))
        if get("client_secret"):
            if get("client_secret") != app.get("secret"):
                return self.reply(*entra_error(401, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID."))
            s.count("client_secret")
            return self.issue_token(app)
        if get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
            return self.reply(*entra_error(401, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."))
        try:
            header, claims, parts = jwt_parts(get("client_assertion"))
        except ValueError:
            return self.reply(*entra_error(401, "invalid_client", 50027, "JWT token is invalid or malformed."))
        now = time.time()
        if "x5t" in header:
            if header.get("alg") != "RS256" or header["x5t"] != app.get("thumbprint"):
                return self.reply(*entra_error(401, "invalid_client", 700027, "The certificate with identifier used to sign the client assertion is not registered on application."))
            try:
                verify_rs256(parts, app["cert_key"])
            except (InvalidSignature, ValueError):
                return self.reply(*entra_error(401, "invalid_client", 700027, "Client assertion contains an invalid signature."))
            audience = "https://127.0.0.1:%d/%s/oauth2/v2.0/token" % (s.port, s.tenant)
            if claims.get("aud") != audience:
                return self.reply(*entra_error(401, "invalid_client", 700021, "Client assertion audience claim does not match Realm issuer."))
            if claims.get("iss") != client_id or claims.get("sub") != client_id:
                return self.reply(*entra_error(401, "invalid_client", 700023, "Client assertion audience claim does not match the client."))
            if not (claims.get("exp", 0) > now and claims.get("exp", 0) - claims.get("nbf", now) <= 3600 and claims.get("nbf", 0) <= now + 300):
                return self.reply(*entra_error(401, "invalid_client", 700024, "Client assertion is not within its valid time range."))
            jti = claims.get("jti")
            if not jti or jti in s.jtis:
                return self.reply(*entra_error(401, "invalid_client", 700025, "Client assertion jti is missing or was used before."))
            s.jtis.add(jti)
            s.count("certificate")
            return self.issue_token(app)
        fed = app.get("federated")
        if fed is None or s.issuer_key is None:
            return self.reply(*entra_error(400, "invalid_client", 70021, "No matching federated identity record found for presented assertion."))
        try:
            verify_rs256(parts, s.issuer_key)
        except (InvalidSignature, ValueError):
            return self.reply(*entra_error(400, "invalid_client", 700211, "No matching federated identity record found for presented assertion issuer."))
        if claims.get("iss") != fed["issuer"] or claims.get("sub") != fed["subject"] or claims.get("aud") != "api://AzureADTokenExchange":
            return self.reply(*entra_error(400, "invalid_client", 70021, "No matching federated identity record found for presented assertion. Assertion Issuer: '%s'. Assertion Subject: '%s'. Assertion Audience: '%s'." % (claims.get("iss"), claims.get("sub"), claims.get("aud"))))
        if claims.get("exp", 0) < now:
            return self.reply(*entra_error(400, "invalid_client", 700024, "Client assertion is not within its valid time range."))
        s.count("federated")
        return self.issue_token(app)

    def issue_token(self, app):
        return self.reply(200, {
            "token_type": "Bearer",
            "expires_in": 3599,
            "ext_expires_in": 3599,
            "access_token": self.state.issue(app["principal"]),
        })

    def principal(self):
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return None, False
        entry = self.state.tokens.get(auth[7:])
        if entry is None or entry[1] < time.time():
            return None, True
        return entry[0], True

    def vault(self, method, url, raw):
        s = self.state
        query = urllib.parse.parse_qs(url.query)
        s.api_versions.update(query.get("api-version", []))
        principal, presented = self.principal()
        if not presented:
            s.count("challenge")
            challenge = 'Bearer authorization="https://127.0.0.1:%d/%s", resource="https://vault.azure.net"' % (s.port, s.tenant)
            return self.reply(*kv_error(401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token."), {"WWW-Authenticate": challenge})
        if principal is None:
            return self.reply(*kv_error(401, "Unauthorized", "AKV10032: Invalid issuer or expired token."))
        segs = [urllib.parse.unquote(p) for p in url.path.strip("/").split("/")]
        if len(segs) < 2 or segs[0] != "keys":
            return self.reply(*kv_error(400, "BadParameter", "Unknown path"))
        name = segs[1]
        version = segs[2] if len(segs) > 2 else ""
        op = segs[3] if len(segs) > 3 else ("get" if method == "GET" else "")
        key = s.keys.get(name)
        action = {"get": "read", "encrypt": "encrypt/action", "decrypt": "decrypt/action"}.get(op, op)
        if key is not None and principal not in key["allow"].get(op, set()):
            return self.reply(*kv_error(403, "Forbidden", "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: appid=%s\r\nAction: 'Microsoft.KeyVault/vaults/keys/%s'\r\nResource: '/keys/%s'" % (principal, action, name), "ForbiddenByRbac"))
        not_found = kv_error(404, "KeyNotFound", "A key with (name/id) %s was not found in this key vault. If you recently deleted this key you may be able to recover it using the correct recovery command." % name)
        if key is None:
            return self.reply(*not_found)
        versions = key["versions"]
        if version == "":
            entry = versions[-1]
        else:
            matches = [v for v in versions if v["id"] == version]
            if not matches:
                return self.reply(*not_found)
            entry = matches[0]
        if op == "get":
            s.count("get")
            pub = entry["key"].public_key().public_numbers()
            n = pub.n.to_bytes((pub.n.bit_length() + 7) // 8, "big")
            return self.reply(200, {
                "key": {"kid": s.kid(name, entry["id"]), "kty": "RSA", "key_ops": ["encrypt", "decrypt", "wrapKey", "unwrapKey"], "n": b64url(n), "e": "AQAB"},
                "attributes": {"enabled": entry["enabled"], "created": 1700000000, "updated": 1700000000, "recoveryLevel": "Recoverable+Purgeable"},
            })
        if op not in ("encrypt", "decrypt"):
            return self.reply(*kv_error(400, "BadParameter", "Unsupported operation " + op))
        if not entry["enabled"]:
            return self.reply(*kv_error(403, "Forbidden", "Operation %s is not allowed on a disabled key." % op, "KeyDisabled"))
        try:
            body = json.loads(raw)
            value = b64url_decode(body["value"])
        except (ValueError, KeyError):
            return self.reply(*kv_error(400, "BadParameter", "Property 'value' is missing or not base64url."))
        if body.get("alg") != "RSA-OAEP-256":
            return self.reply(*kv_error(400, "BadParameter", "Algorithm '%s' is not supported here; RSA-OAEP-256 is expected." % body.get("alg")))
        s.count(op)
        if op == "encrypt":
            out = entry["key"].public_key().encrypt(value, OAEP)
        else:
            try:
                out = entry["key"].decrypt(value, OAEP)
            except ValueError:
                return self.reply(*kv_error(400, "BadParameter", "Error while decrypting: the ciphertext does not decrypt with this key."))
        return self.reply(200, {"kid": s.kid(name, entry["id"]), "value": b64url(out)})


class Plain(Base):
    """The App Service managed-identity endpoint and the test controls."""

    def do_GET(self):
        s = self.state
        url = urllib.parse.urlparse(self.path)
        query = urllib.parse.parse_qs(url.query)
        with s.lock:
            if url.path == "/msi/token":
                if s.msi is None or self.headers.get("X-IDENTITY-HEADER") != s.msi["secret"]:
                    return self.reply(401, {"statusCode": 401, "message": "Unauthorized request: X-IDENTITY-HEADER is missing or wrong."})
                if query.get("resource", [""])[0] != "https://vault.azure.net":
                    return self.reply(400, {"statusCode": 400, "message": "Invalid resource."})
                s.count("managed_identity")
                principal = s.msi["principal"]
                if "client_id" in query:
                    principal = "msi:" + query["client_id"][0]
                return self.reply(200, {
                    "access_token": s.issue(principal),
                    "expires_on": str(int(time.time()) + 3600),
                    "resource": "https://vault.azure.net",
                    "token_type": "Bearer",
                    "client_id": "managed-identity",
                })
            if url.path == "/_test/stats":
                return self.reply(200, {"counts": s.counts, "api_versions": sorted(s.api_versions)})
        return self.reply(404, {})

    def do_POST(self):
        s = self.state
        body = json.loads(self.body() or b"{}")
        what = urllib.parse.urlparse(self.path).path
        with s.lock:
            if what == "/_test/app":
                app = {"principal": body.get("principal", body["client_id"])}
                if "secret" in body:
                    app["secret"] = body["secret"]
                if "cert_pem" in body:
                    cert = x509.load_pem_x509_certificate(body["cert_pem"].encode())
                    app["thumbprint"] = b64url(hashlib.sha1(cert.public_bytes(serialization.Encoding.DER)).digest())
                    app["cert_key"] = cert.public_key()
                if "federated" in body:
                    app["federated"] = body["federated"]
                s.apps[body["client_id"]] = app
                return self.reply(200, {})
            if what == "/_test/msi":
                s.msi = body
                return self.reply(200, {})
            if what == "/_test/key":
                key = s.keys.setdefault(body["name"], {"versions": [], "allow": {}})
                version = secrets.token_hex(16)
                key["versions"].append({"id": version, "key": rsa.generate_private_key(public_exponent=65537, key_size=2048), "enabled": True})
                for op in ("get", "encrypt", "decrypt"):
                    key["allow"].setdefault(op, set()).update(body.get("allow", []))
                return self.reply(200, {"version": version})
            if what == "/_test/disable":
                for v in s.keys[body["name"]]["versions"]:
                    if v["id"] == body["version"]:
                        v["enabled"] = body.get("enabled", False)
                return self.reply(200, {})
            if what == "/_test/allow":
                s.keys[body["name"]]["allow"][body["op"]] = set(body["principals"])
                return self.reply(200, {})
            if what == "/_test/static-token":
                s.tokens[body["token"]] = (body["principal"], time.time() + 3600)
                return self.reply(200, {})
            if what == "/_test/expire-tokens":
                s.tokens = {t: (p, 0) for t, (p, _) in s.tokens.items()}
                return self.reply(200, {})
            if what == "/_test/private-key":
                for v in s.keys[body["name"]]["versions"]:
                    if v["id"] == body["version"]:
                        pem = v["key"].private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
                        return self.reply(200, {"pem": pem.decode()})
                return self.reply(404, {})
        return self.reply(404, {"error": "unknown control " + what})


def main(argv):
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("dir")
    p.add_argument("--tenant", required=True)
    p.add_argument("--issuer-pub")
    p.add_argument("--delay-ms", type=float, default=0, help="added to each Key Vault call, as a network round trip would")
    args = p.parse_args(argv)
    state = State(args.dir, args.tenant, args.issuer_pub)
    state.delay = args.delay_ms / 1000
    Base.state = state
    server_pem = make_ca_and_cert(args.dir)
    secure = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Secure)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(server_pem)
    secure.socket = context.wrap_socket(secure.socket, server_side=True)
    secure.daemon_threads = True
    plain = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Plain)
    plain.daemon_threads = True
    state.port = secure.server_address[1]
    threading.Thread(target=plain.serve_forever, daemon=True).start()
    parent = os.getppid()

    def watch():
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch, daemon=True).start()
    print(json.dumps({"port": state.port, "http_port": plain.server_address[1]}), flush=True)
    secure.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
