#!/usr/bin/env bash
# Whole-process benchmarks of many files in one run (release `ksec`,
# hyperfine medians):
#
#   1. decrypt a tree of 200 Secrets × 5 values, age key: one process
#      (`ksec decrypt DIR`) against one process per file (a shell loop);
#   2. the same with an AWS KMS key, against moto_server on 127.0.0.1;
#   3. `ksec check` of 1,000 files (no --verify: no keys, no network).
#
#   scripts/bench-tree.sh              # build, generate, measure
#   KEEP=1 scripts/bench-tree.sh       # keep the work directory
#   KSEC_TEST_MOTO_URL=http://127.0.0.1:PORT scripts/bench-tree.sh   # use a running moto
#
# Isolated HOME, age identity and AWS configuration (dummy credentials,
# metadata service off); nothing leaves 127.0.0.1. Needs hyperfine (the
# Debian package; installed when missing), python3 with boto3 and
# moto[server] (pinned in scripts/install-test-tools). See PERFORMANCE.md.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

section() { printf '\n===== %s =====\n' "$*"; }

as_root() {
    if [[ $EUID -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

if ! command -v hyperfine >/dev/null; then
    section "installing hyperfine"
    as_root apt-get update -q
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q --no-install-recommends hyperfine
fi

section "cargo build --release"
cargo build --release --locked
TARGET_DIR=${CARGO_TARGET_DIR:-target}
BIN=$(realpath "$TARGET_DIR/release/ksec")

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ksec-bench-tree.XXXXXX")
MOTO_PID=
cleanup() {
    if [[ -n "$MOTO_PID" ]]; then
        kill "$MOTO_PID" 2>/dev/null || true
        wait "$MOTO_PID" 2>/dev/null || true
    fi
    if [[ -n "${KEEP:-}" ]]; then
        echo "work directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

mkdir -p "$WORK/home"
export HOME="$WORK/home"
export KSEC_AGE_KEY_FILE="$WORK/key.txt"
unset KSEC_AGE_KEY XDG_CONFIG_HOME KSEC_CONFIG AWS_PROFILE
RECIPIENT=$("$BIN" keygen 2>/dev/null)

# AWS: moto on loopback (ours unless one is given), dummy credentials.
if [[ -n "${KSEC_TEST_MOTO_URL:-}" ]]; then
    MOTO_URL=$KSEC_TEST_MOTO_URL
else
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
    moto_server -H 127.0.0.1 -p "$port" >"$WORK/moto.log" 2>&1 &
    MOTO_PID=$!
    MOTO_URL="http://127.0.0.1:$port"
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.2
    done
fi
: >"$WORK/aws-config"
: >"$WORK/aws-credentials"
export AWS_CONFIG_FILE="$WORK/aws-config" AWS_SHARED_CREDENTIALS_FILE="$WORK/aws-credentials"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true AWS_ENDPOINT_URL="$MOTO_URL"
ARN=$(python3 -c "import boto3; print(boto3.client('kms', region_name='us-east-1', endpoint_url='$MOTO_URL').create_key()['KeyMetadata']['Arn'])")

section "environment"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "cpu: $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "binary: $BIN ($(stat -c %s "$BIN") bytes)"
hyperfine --version
echo "moto: $MOTO_URL (key $ARN)"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"

section "generating inputs in $WORK"
# 200 Secrets of 5 `data` values (24 random bytes each), in 10 directories;
# 1,000 files for check (every fifth a ConfigMap). Fixed seed.
python3 - "$WORK" <<'PY'
import base64, os, random, sys
work = sys.argv[1]
rng = random.Random(11)
def secret(i):
    lines = ["apiVersion: v1", "kind: Secret", "metadata:", f"  name: app-{i:04}",
             "  namespace: bench", "type: Opaque", "data:"]
    lines += [f"  key-{k}: {base64.b64encode(rng.randbytes(24)).decode()}" for k in range(5)]
    return "\n".join(lines) + "\n"
for tree, n in (("plain200", 200), ("plain1000", 1000)):
    for i in range(n):
        d = f"{work}/{tree}/team-{i % 10}"
        os.makedirs(d, exist_ok=True)
        with open(f"{d}/app-{i:04}.yaml", "w") as f:
            if tree == "plain1000" and i % 5 == 4:
                f.write(f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}\ndata:\n  a: b\n")
            else:
                f.write(secret(i))
PY
cp -r "$WORK/plain200" "$WORK/age200"
cp -r "$WORK/plain200" "$WORK/aws200"
cp -r "$WORK/plain1000" "$WORK/check1000"
"$BIN" encrypt -i -k "age:$RECIPIENT" "$WORK/age200" 2>/dev/null
"$BIN" encrypt -i -k "aws:$ARN" "$WORK/aws200" 2>/dev/null
"$BIN" encrypt -i -k "age:$RECIPIENT" "$WORK/check1000" 2>/dev/null
# The runs must be right before they are fast.
"$BIN" decrypt -q "$WORK/age200" >"$WORK/age.out"
"$BIN" decrypt -q "$WORK/aws200" >"$WORK/aws.out"
for f in "$WORK"/age200/*/*.yaml; do "$BIN" decrypt -q "$f"; echo ---; done >"$WORK/loop.out"
python3 - "$WORK" <<'PY'
import sys
work = sys.argv[1]
def docs(p): return [d.strip() for d in open(p).read().split("---\n") if d.strip()]
a, w, l = docs(f"{work}/age.out"), docs(f"{work}/aws.out"), docs(f"{work}/loop.out")
assert len(a) == 200 and a == w == l, (len(a), len(w), len(l))
print("outputs agree: 200 Secrets from one process, one process per file, age and AWS")
PY
"$BIN" check "$WORK/check1000" 2>/dev/null
echo "check: 1,000 files, no problems"

section "hyperfine"
LOOP_AGE="for f in $WORK/age200/*/*.yaml; do $BIN decrypt -q \"\$f\"; done"
LOOP_AWS="for f in $WORK/aws200/*/*.yaml; do $BIN decrypt -q \"\$f\"; done"
hyperfine --warmup 2 --min-runs 10 --style basic --export-json "$WORK/hf-age.json" \
    -N --command-name "age: one process, 200 files" "$BIN decrypt -q $WORK/age200"
hyperfine --warmup 1 --min-runs 5 --style basic --export-json "$WORK/hf-age-loop.json" \
    --command-name "age: 200 processes (shell loop)" "$LOOP_AGE"
hyperfine --warmup 2 --min-runs 10 --style basic --export-json "$WORK/hf-aws.json" \
    -N --command-name "aws: one process, 200 files" "$BIN decrypt -q $WORK/aws200"
hyperfine --warmup 1 --min-runs 3 --style basic --export-json "$WORK/hf-aws-loop.json" \
    --command-name "aws: 200 processes (shell loop)" "$LOOP_AWS"
hyperfine --warmup 2 --min-runs 10 --style basic --export-json "$WORK/hf-check.json" \
    -N --command-name "check: 1,000 files" "$BIN check $WORK/check1000"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

section "results (markdown)"
python3 - "$WORK" <<'PY'
import json, sys
work = sys.argv[1]
def r(name): return json.load(open(f"{work}/hf-{name}.json"))["results"][0]
def ms(s): return f"{s * 1000:.0f} ms" if s < 10 else f"{s:.1f} s"
rows = [("age", "age"), ("age-loop", "age"), ("aws", "aws"), ("aws-loop", "aws"), ("check", "-")]
print("| case | median | mean ± σ | CPU (user + sys) | runs |")
print("| --- | ---: | ---: | ---: | ---: |")
for name, _ in rows:
    x = r(name)
    print(f"| {x['command']} | {ms(x['median'])} | {ms(x['mean'])} ± {ms(x['stddev'] or 0)} "
          f"| {ms(x['user'] + x['system'])} | {len(x['times'])} |")
age, age_loop, aws, aws_loop, check = (r(n)["median"] for n, _ in rows)
sops = 200 * 0.021
print()
print(f"- age tree: {ms(age)} in one process vs {ms(age_loop)} for 200 processes "
      f"({age_loop / age:.0f}x); against 200 sops runs (~{ms(sops)}): {sops / age:.0f}x "
      f"-> target < 210 ms: {'pass' if age < 0.210 else 'FAIL'}")
print(f"- AWS tree: {ms(aws)} in one process vs {ms(aws_loop)} for 200 processes ({aws_loop / aws:.0f}x)")
print(f"- check of 1,000 files: {ms(check)} -> target < 1 s: {'pass' if check < 1.0 else 'FAIL'}")
PY
