#!/usr/bin/env python3
"""tokenreview.py: a stand-in for the one Kubernetes API call Vault's
Kubernetes auth makes, `POST /apis/authentication.k8s.io/v1/tokenreviews`.

Why a stand-in: no Kubernetes API server runs here, and Vault (the real
OpenBao server in the tests) validates a pod's service-account token by
asking the cluster. This server answers as the API server does: the token
is authenticated when its RS256 signature verifies with the cluster's
service-account signing key (the test issuer's public key), and the user
is the service account its claims name.

    tokenreview.py ISSUER_PUB_PEM      prints {"port": N} when ready;
                                       exits when its parent process does
"""

import base64
import http.server
import json
import os
import sys
import threading
import time

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    key = None
    reviews = 0

    def log_message(self, *args):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        spec = json.loads(self.rfile.read(n) or b"{}").get("spec", {})
        status = {"authenticated": False, "error": "invalid bearer token"}
        try:
            head, claims, sig = spec.get("token", "").split(".")
            self.key.verify(b64url_decode(sig), (head + "." + claims).encode(), padding.PKCS1v15(), hashes.SHA256())
            c = json.loads(b64url_decode(claims))
            if c.get("exp", 0) > time.time():
                ns = c["kubernetes.io/serviceaccount/namespace"]
                name = c["kubernetes.io/serviceaccount/service-account.name"]
                status = {
                    "authenticated": True,
                    "user": {
                        "username": "system:serviceaccount:%s:%s" % (ns, name),
                        "uid": c["kubernetes.io/serviceaccount/service-account.uid"],
                        "groups": ["system:serviceaccounts", "system:serviceaccounts:" + ns],
                    },
                    "audiences": spec.get("audiences") or [],
                }
        except (ValueError, KeyError, InvalidSignature):
            pass
        if self.path != "/apis/authentication.k8s.io/v1/tokenreviews":
            body, code = {"kind": "Status", "status": "Failure", "code": 404}, 404
        else:
            body, code = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "status": status}, 201
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def main(argv):
    with open(argv[0], "rb") as f:
        Handler.key = serialization.load_pem_public_key(f.read())
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    parent = os.getppid()

    def watch():
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch, daemon=True).start()
    print(json.dumps({"port": server.server_address[1]}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
