#!/usr/bin/env python3
"""Compares the values of two manifest streams (YAML or JSON), for the SOPS
tests: the clear text `sops decrypt` prints and the one `ksec decrypt`
prints must hold the same documents, keys and values.

sops re-emits the whole file (4-space indentation, typed scalars, comments
moved); ksec keeps the file's bytes and writes every value of a Secret as a
string, as Kubernetes requires. So values are compared by their text: 5432
and "5432" are the same value, true and "true" too, and 1.0 is 1 (sops
prints floats in Go's shortest form). Timestamps compare by their text in
RFC 3339. Comments are not compared (sops moves them).

Usage: same_values.py A B   (exit 0 when equal; else the difference)
"""
import datetime
import json
import re
import sys

import yaml


def text(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if v != v:
            return "nan"
        if v in (float("inf"), float("-inf")):
            return "inf" if v > 0 else "-inf"
        return str(int(v)) if v.is_integer() else repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, datetime.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=datetime.timezone.utc)
        return v.isoformat().replace("+00:00", "Z")
    if isinstance(v, datetime.date):
        return v.isoformat() + "T00:00:00Z"
    s = str(v)
    # A string that reads as a number or boolean compares as one.
    low = s.lower()
    if low in ("true", "false"):
        return low
    try:
        f = float(s)
        if s.strip() == s and not s.startswith("0x") and "_" not in s:
            return text(f)
    except ValueError:
        pass
    return s


def norm(v):
    if isinstance(v, dict):
        return {text(k): norm(x) for k, x in v.items()}
    if isinstance(v, list):
        return [norm(x) for x in v]
    if v is None:
        return None
    return text(v)


# sops prints a value `<<` as `!!merge <<`: a string like any other here.
yaml.SafeLoader.add_constructor(
    "tag:yaml.org,2002:merge", lambda loader, node: loader.construct_scalar(node)
)


def load(path):
    with open(path, encoding="utf-8") as f:
        data = f.read()
    # PyYAML (YAML 1.1) refuses a tab before a comment, which YAML 1.2
    # allows: make it a space.
    data = re.sub(r"\t+#", " #", data)
    if data.lstrip().startswith("{"):
        try:
            return [norm(json.loads(data))]
        except ValueError:
            pass
    return [norm(d) for d in yaml.safe_load_all(data) if d is not None]


def main():
    a, b = load(sys.argv[1]), load(sys.argv[2])
    if a != b:
        print("values differ:")
        print(json.dumps(a, indent=1, sort_keys=True)[:4000])
        print("---")
        print(json.dumps(b, indent=1, sort_keys=True)[:4000])
        sys.exit(1)


main()
