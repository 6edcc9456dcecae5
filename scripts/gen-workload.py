#!/usr/bin/env python3
"""Plain Secret streams for the speed and memory targets (issue 11, section 4).

    scripts/gen-workload.py DIR

writes, with a fixed seed (the same bytes every run):

  DIR/docs-1000x100.yaml   1,000 Secret documents of 100 `data` values each
  DIR/doc-1x100000.yaml    one Secret document of 100,000 `data` values
  DIR/doc-1x5.yaml         one Secret document of 5 `data` values

Each value is 18 random bytes in base64 (24 characters) under a key
`key-N` (numbered within its document), so the 100,000-value inputs are
about 3.7 and 3.9 MB, the ~3.8 MB of the issue. Encrypt them with `ksec encrypt` (kubesec format) or
`ksec encrypt --format sops`, or with `sops -e`, to get the decrypt inputs.
"""
import base64
import os
import random
import sys


def header(name):
    return ("apiVersion: v1\nkind: Secret\nmetadata:\n"
            f"  name: {name}\n  namespace: default\ntype: Opaque\ndata:\n")


def values(rng, n):
    width = len(str(n - 1))
    return "".join(f"  key-{i:0{width}}: {base64.b64encode(rng.randbytes(18)).decode()}\n"
                   for i in range(n))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = random.Random(11)
    with open(f"{out}/docs-1000x100.yaml", "w") as f:
        f.write("---\n".join(header(f"bench-{d:04}") + values(rng, 100) for d in range(1000)))
    with open(f"{out}/doc-1x100000.yaml", "w") as f:
        f.write(header("bench") + values(rng, 100_000))
    with open(f"{out}/doc-1x5.yaml", "w") as f:
        f.write(header("small") + values(rng, 5))


if __name__ == "__main__":
    main()
