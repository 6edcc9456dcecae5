#!/usr/bin/env python3
"""gcpkms.py: a local stand-in for Google Cloud KMS and Google's token
services, for ksec's tests.

Why a stand-in: no Cloud KMS emulator exists (Google ships none, and none
runs here), and the tests must not reach Google. So this server implements
the documented REST calls ksec makes, doing the real work:

* OAuth token endpoint `POST /token`: the service-account JWT grant
  (RFC 7523; the JWT's RS256 signature is verified with the service
  account's public key, `kid`, `iss`, `aud` = this URL, `scope`, `iat`/`exp`
  checked) and the refresh-token grant of gcloud's user credentials.
* STS `POST /v1/token` (RFC 8693 token exchange of workload identity
  federation): the subject token is a JWT from a test OIDC issuer, verified
  with the issuer's public key, its `iss` and `aud`, and the request's
  `audience` (the workload identity provider) checked.
* IAM Credentials `POST /v1/projects/-/serviceAccounts/EMAIL:generateAccessToken`
  (service-account impersonation by a federated principal).
* Metadata server `GET /computeMetadata/v1/instance/service-accounts/default/token`,
  which insists on `Metadata-Flavor: Google` and answers with it.
* Cloud KMS `POST /v1/{name}:encrypt` and `:decrypt`: bearer tokens checked,
  a per-key allow list of principals (403 PERMISSION_DENIED "... (or it may
  not exist)" for unknown keys too, as Google answers), versions with states
  (DISABLED/DESTROYED give 400 FAILED_PRECONDITION), real AES-256-GCM with a
  key per version (the ciphertext names its version), CRC32C integrity fields
  checked and returned, Google's JSON error envelope.

Control endpoints for the tests live under `/_test/` (create and rotate
keys, change version states and permissions, expire tokens, inject CRC
faults, read counters).

    gcpkms.py DIR [--issuer-pub PEM --issuer URL --wif-audience AUD] [--delay-ms N]

writes DIR/service-account.json, DIR/authorized-user.json and prints one
JSON line {"port": N} when ready. It exits when its parent process does.
"""

import base64
import http.server
import json
import os
import secrets
import sys
import threading
import time
import urllib.parse

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SCOPES = ("https://www.googleapis.com/auth/cloud-platform", "https://www.googleapis.com/auth/cloudkms")


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def verify_jwt(jwt, public_key):
    """Returns (header, claims) of an RS256 JWT whose signature verifies."""
    parts = jwt.split(".")
    if len(parts) != 3:
        raise ValueError("not a JWT")
    header = json.loads(b64url_decode(parts[0]))
    claims = json.loads(b64url_decode(parts[1]))
    if header.get("alg") != "RS256":
        raise ValueError("alg is not RS256")
    try:
        public_key.verify(
            b64url_decode(parts[2]),
            (parts[0] + "." + parts[1]).encode(),
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
    except InvalidSignature:
        raise ValueError("Invalid JWT Signature.")
    return header, claims


class State:
    def __init__(self, directory, issuer_pub, issuer, wif_audience):
        self.lock = threading.Lock()
        self.dir = directory
        self.port = None
        self.sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.sa_key_id = secrets.token_hex(20)
        self.sa_email = "ksec-test@standin-project.iam.gserviceaccount.com"
        self.user = {
            "client_id": "standin-client.apps.googleusercontent.com",
            "client_secret": secrets.token_urlsafe(16),
            "refresh_token": "1//" + secrets.token_urlsafe(32),
        }
        self.issuer_key = None
        if issuer_pub:
            with open(issuer_pub, "rb") as f:
                self.issuer_key = serialization.load_pem_public_key(f.read())
        self.issuer = issuer
        self.wif_audience = wif_audience
        self.static_tokens = {}  # token -> principal
        self.tokens = {}  # token -> (principal, expiry)
        self.keys = {}  # name -> {"versions": [{"aes": bytes, "state": str}], "primary": int, "allow": set}
        self.impersonators = {}  # service account email -> set of principals
        self.faults = {"bad_response_crc": 0}
        self.counts = {}
        self.requests = []  # (path, sorted body keys) of KMS calls
        self.delay = 0.0  # seconds added to each KMS call (benchmarks)

    def count(self, what):
        self.counts[what] = self.counts.get(what, 0) + 1

    def issue(self, principal, ttl=3600):
        token = "ya29.standin-" + secrets.token_urlsafe(24)
        self.tokens[token] = (principal, time.time() + ttl)
        return token

    def write_files(self):
        base = "http://127.0.0.1:%d" % self.port
        sa = {
            "type": "service_account",
            "project_id": "standin-project",
            "private_key_id": self.sa_key_id,
            "private_key": self.sa_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode(),
            "client_email": self.sa_email,
            "client_id": "1234567890",
            "token_uri": base + "/token",
        }
        user = dict(self.user, type="authorized_user", token_uri=base + "/token", quota_project_id="standin-project")
        for name, content in (("service-account.json", sa), ("authorized-user.json", user)):
            path = os.path.join(self.dir, name)
            with open(path, "w") as f:
                json.dump(content, f, indent=2)
            os.chmod(path, 0o600)


def google_error(code, status, message):
    return code, {"error": {"code": code, "message": message, "status": status}}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without TCP_NODELAY, delayed
    # ACKs would add ~40 ms to every keep-alive request.
    disable_nagle_algorithm = True
    state = None

    def log_message(self, *args):
        pass

    def reply(self, code, body, headers=None):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def bearer(self):
        auth = self.headers.get("Authorization", "")
        return auth[7:] if auth.startswith("Bearer ") else None

    def principal(self):
        s = self.state
        token = self.bearer()
        if token is None:
            return None
        if token in s.static_tokens:
            return s.static_tokens[token]
        entry = s.tokens.get(token)
        if entry is None or entry[1] < time.time():
            return None
        return entry[0]

    # ----------------------------------------------------------------- GET
    def do_GET(self):
        s = self.state
        path = urllib.parse.urlparse(self.path).path
        with s.lock:
            if path == "/computeMetadata/v1/instance/service-accounts/default/token":
                if self.headers.get("Metadata-Flavor") != "Google":
                    return self.reply(403, {"error": "Missing required header: Metadata-Flavor"})
                s.count("metadata")
                token = s.issue("gce-default@standin-project.iam.gserviceaccount.com")
                return self.reply(
                    200,
                    {"access_token": token, "expires_in": 3599, "token_type": "Bearer"},
                    {"Metadata-Flavor": "Google"},
                )
            if path == "/_test/stats":
                return self.reply(200, {"counts": s.counts, "requests": s.requests})
            if path == "/_test/subject":
                # A subject-token URL (credential_source.url), as GitHub's
                # ACTIONS_ID_TOKEN_REQUEST_URL answers: {"value": JWT}.
                if self.headers.get("Authorization") != "bearer request-token":
                    return self.reply(401, {"message": "bad request token"})
                with open(os.path.join(s.dir, "subject-token")) as f:
                    return self.reply(200, {"value": f.read().strip()})
        return self.reply(*google_error(404, "NOT_FOUND", "no such path " + path))

    # ---------------------------------------------------------------- POST
    def do_POST(self):
        s = self.state
        raw = self.body()
        path = urllib.parse.urlparse(self.path).path
        if s.delay and path.startswith("/v1/projects/") and ":" in path:
            time.sleep(s.delay)  # a network round trip, outside the lock
        with s.lock:
            if path == "/token":
                return self.token(urllib.parse.parse_qs(raw.decode()))
            if path == "/v1/token":
                return self.sts(urllib.parse.parse_qs(raw.decode()))
            if path.startswith("/v1/projects/-/serviceAccounts/") and path.endswith(":generateAccessToken"):
                return self.impersonate(path, raw)
            if path.startswith("/v1/projects/") and (path.endswith(":encrypt") or path.endswith(":decrypt")):
                return self.kms(path, raw)
            if path.startswith("/_test/"):
                return self.control(path[len("/_test/"):], json.loads(raw or b"{}"))
        return self.reply(*google_error(404, "NOT_FOUND", "no such path " + path))

    def token_error(self, error, description):
        return self.reply(400, {"error": error, "error_description": description})

    def token(self, form):
        s = self.state
        grant = form.get("grant_type", [""])[0]
        if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            try:
                header, claims = verify_jwt(form.get("assertion", [""])[0], s.sa_key.public_key())
            except ValueError as e:
                return self.token_error("invalid_grant", str(e))
            now = time.time()
            url = "http://127.0.0.1:%d/token" % s.port
            if header.get("kid") != s.sa_key_id:
                return self.token_error("invalid_grant", "Invalid JWT: Key ID is unknown.")
            if claims.get("iss") != s.sa_email:
                return self.token_error("invalid_grant", "Invalid JWT: iss is not the service account.")
            if claims.get("aud") != url:
                return self.token_error("invalid_grant", "Invalid JWT: Failed audience check.")
            if not any(sc in claims.get("scope", "").split() for sc in SCOPES):
                return self.token_error("invalid_scope", "Invalid OAuth scope or ID token audience provided.")
            iat, exp = claims.get("iat", 0), claims.get("exp", 0)
            if iat > now + 60 or exp < now or exp - iat > 3600:
                return self.token_error("invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.")
            s.count("jwt-bearer")
            return self.reply(200, {"access_token": s.issue(s.sa_email), "expires_in": 3599, "token_type": "Bearer"})
        if grant == "refresh_token":
            u = s.user
            if form.get("client_id", [""])[0] != u["client_id"] or form.get("client_secret", [""])[0] != u["client_secret"]:
                return self.reply(401, {"error": "invalid_client", "error_description": "The OAuth client was not found."})
            if form.get("refresh_token", [""])[0] != u["refresh_token"]:
                return self.token_error("invalid_grant", "Token has been expired or revoked.")
            s.count("refresh_token")
            return self.reply(200, {"access_token": s.issue("user:alice@example.com"), "expires_in": 3599, "token_type": "Bearer"})
        return self.token_error("unsupported_grant_type", "Invalid grant_type: " + grant)

    def sts(self, form):
        s = self.state
        get = lambda k: form.get(k, [""])[0]
        if get("grant_type") != "urn:ietf:params:oauth:grant-type:token-exchange":
            return self.reply(400, {"error": "invalid_request", "error_description": "Invalid grant_type."})
        if get("audience") != s.wif_audience:
            return self.reply(400, {"error": "invalid_target", "error_description": "The target service indicated by the \"audience\" parameters is invalid."})
        if get("subject_token_type") not in ("urn:ietf:params:oauth:token-type:jwt", "urn:ietf:params:oauth:token-type:id_token"):
            return self.reply(400, {"error": "invalid_request", "error_description": "Invalid subject_token_type."})
        if get("requested_token_type") != "urn:ietf:params:oauth:token-type:access_token":
            return self.reply(400, {"error": "invalid_request", "error_description": "Invalid requested_token_type."})
        if not any(sc in get("scope").split() for sc in SCOPES):
            return self.reply(400, {"error": "invalid_scope", "error_description": "Invalid scope."})
        if s.issuer_key is None:
            return self.reply(400, {"error": "invalid_grant", "error_description": "No identity provider configured."})
        try:
            _, claims = verify_jwt(get("subject_token"), s.issuer_key)
        except ValueError as e:
            return self.reply(400, {"error": "invalid_grant", "error_description": "Invalid subject token: " + str(e)})
        if claims.get("iss") != s.issuer:
            return self.reply(400, {"error": "invalid_grant", "error_description": "The issuer in the subject token is not configured for the provider."})
        if claims.get("aud") not in ("https:" + s.wif_audience, s.wif_audience):
            return self.reply(400, {"error": "invalid_grant", "error_description": "The audience in the subject token does not match the provider."})
        if claims.get("exp", 0) < time.time():
            return self.reply(400, {"error": "invalid_grant", "error_description": "The subject token has expired."})
        s.count("sts")
        principal = "principal:" + str(claims.get("sub"))
        return self.reply(200, {
            "access_token": s.issue(principal),
            "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "token_type": "Bearer",
            "expires_in": 3599,
        })

    def impersonate(self, path, raw):
        s = self.state
        email = path[len("/v1/projects/-/serviceAccounts/"):-len(":generateAccessToken")]
        principal = self.principal()
        if principal is None:
            return self.reply(*google_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials."))
        if principal not in s.impersonators.get(email, set()):
            return self.reply(*google_error(403, "PERMISSION_DENIED", "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist)."))
        body = json.loads(raw or b"{}")
        if not any(sc in body.get("scope", []) for sc in SCOPES):
            return self.reply(*google_error(400, "INVALID_ARGUMENT", "Scope required."))
        s.count("impersonate")
        expire = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
        return self.reply(200, {"accessToken": s.issue(email), "expireTime": expire})

    def kms(self, path, raw):
        s = self.state
        name, op = path[len("/v1/"):].rsplit(":", 1)
        principal = self.principal()
        if principal is None:
            return self.reply(*google_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential."))
        perm = "cloudkms.cryptoKeyVersions.useTo" + ("Encrypt" if op == "encrypt" else "Decrypt")
        key = s.keys.get(name)
        if key is None or principal not in key["allow"].get(op, set()):
            return self.reply(*google_error(403, "PERMISSION_DENIED", "Permission '%s' denied on resource '%s' (or it may not exist)." % (perm, name)))
        try:
            body = json.loads(raw)
        except ValueError:
            return self.reply(*google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received."))
        s.requests.append((op, sorted(body)))
        s.count(op)
        field = "plaintext" if op == "encrypt" else "ciphertext"
        try:
            data = base64.b64decode(body.get(field, ""), validate=True)
        except ValueError:
            return self.reply(*google_error(400, "INVALID_ARGUMENT", "Invalid value at '%s' (TYPE_BYTES), Base64 decoding failed." % field))
        if field + "Crc32c" in body and int(body[field + "Crc32c"]) != crc32c(data):
            return self.reply(*google_error(400, "INVALID_ARGUMENT", "The checksum in field %s_crc32c did not match the data in field %s." % (field, field)))
        aad = base64.b64decode(body.get("additionalAuthenticatedData", ""))
        if op == "encrypt":
            number = key["primary"]
            version = key["versions"][number - 1]
            if version["state"] != "ENABLED":
                return self.reply(*google_error(400, "FAILED_PRECONDITION", "%s/cryptoKeyVersions/%d is not enabled, current state is: %s." % (name, number, version["state"])))
            nonce = os.urandom(12)
            out = number.to_bytes(4, "big") + nonce + AESGCM(version["aes"]).encrypt(nonce, data, aad)
            crc = crc32c(out)
            if s.faults["bad_response_crc"] > 0:
                s.faults["bad_response_crc"] -= 1
                crc ^= 1
            return self.reply(200, {
                "name": "%s/cryptoKeyVersions/%d" % (name, number),
                "ciphertext": base64.b64encode(out).decode(),
                "ciphertextCrc32c": str(crc),
                "verifiedPlaintextCrc32c": "plaintextCrc32c" in body,
                "verifiedAdditionalAuthenticatedDataCrc32c": False,
                "protectionLevel": "SOFTWARE",
            })
        bad = google_error(400, "INVALID_ARGUMENT", "Decryption failed: verify that 'name' refers to the correct CryptoKey.")
        if len(data) < 4 + 12 + 16:
            return self.reply(*bad)
        number = int.from_bytes(data[:4], "big")
        if not 1 <= number <= len(key["versions"]):
            return self.reply(*bad)
        version = key["versions"][number - 1]
        if version["state"] != "ENABLED":
            return self.reply(*google_error(400, "FAILED_PRECONDITION", "%s/cryptoKeyVersions/%d is not enabled, current state is: %s." % (name, number, version["state"])))
        try:
            plain = AESGCM(version["aes"]).decrypt(data[4:16], data[16:], aad)
        except InvalidTag:
            return self.reply(*bad)
        crc = crc32c(plain)
        if s.faults["bad_response_crc"] > 0:
            s.faults["bad_response_crc"] -= 1
            crc ^= 1
        return self.reply(200, {
            "plaintext": base64.b64encode(plain).decode(),
            "plaintextCrc32c": str(crc),
            "usedPrimary": number == key["primary"],
            "protectionLevel": "SOFTWARE",
        })

    def control(self, what, body):
        s = self.state
        if what == "keys":
            s.keys[body["name"]] = {
                "versions": [{"aes": os.urandom(32), "state": "ENABLED"}],
                "primary": 1,
                "allow": {"encrypt": set(body.get("allow", [])), "decrypt": set(body.get("allow", []))},
            }
            return self.reply(200, {})
        if what == "rotate":
            key = s.keys[body["name"]]
            key["versions"].append({"aes": os.urandom(32), "state": "ENABLED"})
            key["primary"] = len(key["versions"])
            return self.reply(200, {"primary": key["primary"]})
        if what == "state":
            s.keys[body["name"]]["versions"][body["version"] - 1]["state"] = body["state"]
            return self.reply(200, {})
        if what == "allow":
            s.keys[body["name"]]["allow"][body["op"]] = set(body["principals"])
            return self.reply(200, {})
        if what == "static-token":
            s.static_tokens[body["token"]] = body["principal"]
            return self.reply(200, {})
        if what == "impersonators":
            s.impersonators[body["email"]] = set(body["principals"])
            return self.reply(200, {})
        if what == "expire-tokens":
            s.tokens = {t: (p, 0) for t, (p, _) in s.tokens.items()}
            return self.reply(200, {})
        if what == "faults":
            s.faults.update(body)
            return self.reply(200, {})
        if what == "reset-stats":
            s.counts, s.requests = {}, []
            return self.reply(200, {})
        return self.reply(404, {"error": "unknown control " + what})


def main(argv):
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("dir")
    p.add_argument("--issuer-pub")
    p.add_argument("--issuer", default="https://token.actions.githubusercontent.com")
    p.add_argument("--wif-audience", default="//iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/ci/providers/github")
    p.add_argument("--delay-ms", type=float, default=0, help="added to each KMS call, as a network round trip would")
    args = p.parse_args(argv)
    state = State(args.dir, args.issuer_pub, args.issuer, args.wif_audience)
    state.delay = args.delay_ms / 1000
    Handler.state = state
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    state.write_files()
    parent = os.getppid()

    def watch():
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch, daemon=True).start()
    print(json.dumps({"port": state.port}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
