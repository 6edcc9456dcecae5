#!/usr/bin/env python3
"""kreader: an independent reader of the kubesec v3/v4 file format.

A second opinion for ksec's tests, written from the format description
(DESIGN.md section 4 and README.md "File format"), sharing no code with ksec:
given a file and its data key (DEK), it decrypts every value of the encrypted
Secret, checks the MAC, and prints the clear values. Anything that does not
verify makes it exit 1 with the reasons on stderr and nothing on stdout.

    kreader.py --key HEX FILE          the DEK as 64 hex digits
    kreader.py --key-file PATH FILE    the DEK in a file (hex text or 32 raw bytes)
    FILE may be - for stdin; --json prints a JSON object instead of text.

Text output (Python reprs, so every string is unambiguous):

    version 4 (keys: pgp:F4D4..., age:age1...)
    data {'password': 'czNjcjN0', 'username': 'YWRtaW4='}
    stringData {'note': 'hello'}
    MAC OK

The format, as read here:

* The file is a YAML stream; exactly one document must be a Secret
  (`apiVersion: v1`, `kind: Secret`) carrying a footer. Footer lines are
  comment lines at column 0 inside that document's text (between its `---`
  markers) that start with `# kubesec:`; lines starting with `# ksec:` are
  ksec's own and are ignored, like every other comment. CRLF is accepted.
  Only top-level Secrets are read (as kubesec does): not Secrets in a List.
* Footer: `# kubesec:v:N` once (N = 3 or 4 here: versions 1 and 2 carry no
  MAC); one `# kubesec:<type>:<id>:<blob>` line per key, type one of pgp,
  gcp, aws, and ksec's age, vault, azkv, the id being everything between the type and the last `:`
  (ARNs contain `:`), the blob standard base64; `# kubesec:mac:<iv>.<tag>`
  once.
* Each value of `data` and `stringData` is `b64(ct).b64(iv).b64(tag)`, or
  `b64(iv).b64(tag)` when ct is empty: AES-256-GCM under the DEK, 12-byte IV,
  16-byte tag, associated data = the map key in UTF-8. The plaintext is the
  clear value (for `data`, its base64 text) right-padded with NUL bytes to a
  multiple of 48; the clear value is the plaintext cut at its first NUL. This
  reader also insists that everything after that NUL is NUL and that the
  length is a multiple of 48, which is what a correct writer produces.
* MAC: AES-256-GCM under the DEK with an empty plaintext (the tag alone),
  associated data = for each `data` entry in byte-wise key order, key then
  clear value (UTF-8), then the same for `stringData`, then each key id (no
  type) in kubesec's key order: an insertion sort of the footer's key lines
  with less(a, b) = rank(type a) < rank(type b) and id(a) < id(b), ranks
  pgp < gcp < aws < (age = vault = azkv). (Not a proper sort: keys of one
  type keep their order.)
"""

import argparse
import base64
import binascii
import json
import re
import sys

try:
    import yaml
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
except ImportError as e:  # pragma: no cover - environment problem
    sys.stderr.write(
        f"kreader: error: {e}; it needs Python `cryptography` and `PyYAML` "
        "(scripts/install-test-tools installs them)\n"
    )
    sys.exit(2)

PAD = 48
IV_LEN = 12
TAG_LEN = 16
KEY_TYPES = {"pgp": 0, "gcp": 1, "aws": 2, "age": 3, "vault": 3, "azkv": 3}
SECTIONS = ("data", "stringData")

DOC_START = re.compile(r"^---(?:[ \t]|$)")
DOC_END = re.compile(r"^\.\.\.(?:[ \t]|$)")


class Invalid(Exception):
    """The file does not verify; the message says why."""


class StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing duplicate mapping keys."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:
                continue  # unhashable keys: the base class reports them
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def b64(text, what, length=None):
    """Strict standard base64 (alphabet, padding, canonical form)."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise Invalid(f"{what}: not standard base64 ({e})") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise Invalid(f"{what}: not canonical standard base64")
    if length is not None and len(raw) != length:
        raise Invalid(f"{what}: {len(raw)} bytes, expected {length}")
    return raw


def read_key(args):
    if args.key is not None:
        text = args.key.strip()
        source = "--key"
    else:
        try:
            with open(args.key_file, "rb") as f:
                raw = f.read()
        except OSError as e:
            raise Invalid(f"cannot read the key file: {e}") from None
        if len(raw) == 32:
            return raw
        try:
            text = raw.decode("ascii").strip()
        except UnicodeDecodeError:
            raise Invalid(
                f"{args.key_file}: neither 32 raw bytes nor hex text"
            ) from None
        source = args.key_file
    if not re.fullmatch(r"[0-9a-fA-F]{64}", text):
        raise Invalid(f"{source}: the data key must be 64 hex digits (32 bytes)")
    return bytes.fromhex(text)


def split_documents(text):
    """The stream's documents as lists of (line number, line without EOL)."""
    docs, current = [], []
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    for number, line in enumerate(lines, start=1):
        if line.endswith("\r"):
            line = line[:-1]
        if DOC_START.match(line):
            docs.append(current)
            current = [(number, line)]
        elif DOC_END.match(line):
            docs.append(current)
            current = []
        else:
            current.append((number, line))
    docs.append(current)
    return docs


def parse_footer(lines):
    """(version, [(type, id)], (mac iv, mac tag)) from `# kubesec:` lines."""
    version, keys, mac = None, [], None
    for number, line in lines:
        where = f"line {number}"
        body = line[len("# kubesec:"):]
        kind, sep, rest = body.partition(":")
        if not sep:
            raise Invalid(f"{where}: footer line without a field: {line!r}")
        if kind == "v":
            if version is not None:
                raise Invalid(f"{where}: a second version line")
            if rest not in ("1", "2", "3", "4"):
                raise Invalid(f"{where}: unknown format version {rest!r}")
            version = int(rest)
        elif kind == "mac":
            if mac is not None:
                raise Invalid(f"{where}: a second MAC line")
            parts = rest.split(".")
            if len(parts) != 2:
                raise Invalid(f"{where}: the MAC is not <b64 iv>.<b64 tag>")
            mac = (
                b64(parts[0], f"{where}: MAC IV", IV_LEN),
                b64(parts[1], f"{where}: MAC tag", TAG_LEN),
            )
        elif kind in KEY_TYPES:
            key_id, sep, blob = rest.rpartition(":")
            if not sep or not key_id or not blob:
                raise Invalid(f"{where}: a {kind} key line needs <id>:<blob>")
            b64(blob, f"{where}: the {kind} key blob")
            keys.append((kind, key_id))
        else:
            raise Invalid(f"{where}: unknown footer line type {kind!r}")
    if version is None:
        raise Invalid("the footer has no `# kubesec:v:N` line")
    if version < 3:
        raise Invalid(
            f"format version {version} carries no MAC; this reader verifies v3/v4"
        )
    if mac is None:
        raise Invalid("the footer has no `# kubesec:mac:` line")
    if not keys:
        raise Invalid("the footer names no key")
    return version, keys, mac


def kubesec_key_order(keys):
    """kubesec's insertion sort (see the module docstring)."""
    keys = list(keys)

    def less(a, b):
        return KEY_TYPES[a[0]] < KEY_TYPES[b[0]] and a[1] < b[1]

    for i in range(1, len(keys)):
        j = i
        while j > 0 and less(keys[j], keys[j - 1]):
            keys[j], keys[j - 1] = keys[j - 1], keys[j]
            j -= 1
    return keys


def decrypt_value(aead, section, key, token):
    where = f"{section}.{key}"
    if not isinstance(token, str):
        raise Invalid(f"{where}: the value is not a string")
    parts = token.split(".")
    if len(parts) == 3:
        if parts[0] == "":
            raise Invalid(f"{where}: empty ciphertext field (write <iv>.<tag>)")
        ct = b64(parts[0], f"{where}: ciphertext")
        parts = parts[1:]
    elif len(parts) == 2:
        ct = b""
    else:
        raise Invalid(f"{where}: not an encrypted value (<ct>.<iv>.<tag>)")
    iv = b64(parts[0], f"{where}: IV", IV_LEN)
    tag = b64(parts[1], f"{where}: tag", TAG_LEN)
    try:
        padded = aead.decrypt(iv, ct + tag, key.encode("utf-8"))
    except InvalidTag:
        raise Invalid(
            f"{where}: does not decrypt (wrong data key, or its ciphertext, IV, "
            "tag or key name changed)"
        ) from None
    if len(padded) % PAD:
        raise Invalid(f"{where}: plaintext of {len(padded)} bytes, not a multiple of {PAD}")
    clear, nul, padding = padded.partition(b"\0")
    if nul and padding.strip(b"\0"):
        raise Invalid(f"{where}: bytes other than NUL after the first NUL")
    try:
        return clear.decode("utf-8")
    except UnicodeDecodeError:
        raise Invalid(f"{where}: the clear value is not UTF-8") from None


def read_secret(text, dek):
    if text.startswith("\ufeff"):
        text = text[1:]
    found = []
    for index, lines in enumerate(split_documents(text), start=1):
        footer = [(n, l) for n, l in lines if l.startswith("# kubesec:")]
        body = "\n".join(l for _, l in lines) + "\n"
        try:
            doc = yaml.load(body, Loader=StrictLoader)
        except yaml.YAMLError as e:
            first = lines[0][0] if lines else 1
            raise Invalid(f"document starting at line {first}: invalid YAML: {e}") from None
        is_secret = (
            isinstance(doc, dict)
            and doc.get("apiVersion") == "v1"
            and doc.get("kind") == "Secret"
        )
        if footer and not is_secret:
            raise Invalid(f"line {footer[0][0]}: a kubesec footer outside a v1 Secret")
        if is_secret and not footer:
            raise Invalid(f"document {index}: a Secret without a kubesec footer")
        if is_secret:
            found.append((index, doc, footer))
    if not found:
        raise Invalid("no encrypted Secret in the file")
    if len(found) > 1:
        raise Invalid(
            f"{len(found)} encrypted Secrets (documents "
            f"{', '.join(str(i) for i, _, _ in found)}); each has its own data key: "
            "give this reader one at a time"
        )
    _, doc, footer = found[0]
    version, keys, (mac_iv, mac_tag) = parse_footer(footer)

    aead = AESGCM(dek)
    problems, clear = [], {}
    for section in SECTIONS:
        values = doc.get(section)
        if values is None:
            values = {}
        if not isinstance(values, dict):
            raise Invalid(f"{section} is not a mapping")
        clear[section] = {}
        for key, token in values.items():
            if not isinstance(key, str):
                problems.append(f"{section}: key {key!r} is not a string")
                continue
            try:
                clear[section][key] = decrypt_value(aead, section, key, token)
            except Invalid as e:
                problems.append(str(e))
    if problems:
        raise Invalid("\n".join(problems))

    aad = bytearray()
    for section in SECTIONS:
        for key in sorted(clear[section], key=lambda k: k.encode("utf-8")):
            aad += key.encode("utf-8") + clear[section][key].encode("utf-8")
    for _, key_id in kubesec_key_order(keys):
        aad += key_id.encode("utf-8")
    try:
        aead.decrypt(mac_iv, mac_tag, bytes(aad))
    except InvalidTag:
        raise Invalid(
            "the MAC does not verify (a value, key name or key line was added, "
            "removed or changed, or the MAC line itself)"
        ) from None

    for section in SECTIONS:
        clear[section] = dict(
            sorted(clear[section].items(), key=lambda kv: kv[0].encode("utf-8"))
        )
    return version, keys, clear


def main(argv):
    parser = argparse.ArgumentParser(
        prog="kreader.py",
        description="Decrypt and verify a kubesec v3/v4 file with its data key.",
    )
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--key", metavar="HEX", help="the data key, 64 hex digits")
    group.add_argument(
        "--key-file", metavar="PATH", help="a file holding the data key (hex or 32 raw bytes)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("file", metavar="FILE", help="the encrypted file, or - for stdin")
    args = parser.parse_args(argv)

    name = "<stdin>" if args.file == "-" else args.file
    try:
        dek = read_key(args)
        try:
            if args.file == "-":
                raw = sys.stdin.buffer.read()
            else:
                with open(args.file, "rb") as f:
                    raw = f.read()
        except OSError as e:
            raise Invalid(f"cannot read it: {e}") from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise Invalid(f"not UTF-8: {e}") from None
        version, keys, clear = read_secret(text, dek)
    except Invalid as e:
        for line in str(e).splitlines():
            sys.stderr.write(f"kreader: {name}: {line}\n")
        return 1

    if args.json:
        out = {
            "version": version,
            "keys": [{"type": t, "id": i} for t, i in keys],
            "data": clear["data"],
            "stringData": clear["stringData"],
            "mac": "OK",
        }
        sys.stdout.write(json.dumps(out, ensure_ascii=False, indent=2) + "\n")
    else:
        names = ", ".join(f"{t}:{i}" for t, i in keys)
        sys.stdout.write(f"version {version} (keys: {names})\n")
        for section in SECTIONS:
            sys.stdout.write(f"{section} {clear[section]!r}\n")
        sys.stdout.write("MAC OK\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
