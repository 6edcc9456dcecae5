#!/usr/bin/env bash
# Benchmark (not a test): decrypting a stream of 50 Secrets whose data keys
# are wrapped by AWS KMS, against moto_server on 127.0.0.1, with the number of
# KMS calls counted from `ksec -v` (one line per call).
#
#   scripts/bench-aws.sh            # release build, 50 documents
#   DOCS=200 scripts/bench-aws.sh
#
# Needs moto_server (pip install 'moto[server]'; scripts/install-test-tools
# installs it and boto3, pinned), boto3 and hyperfine (Debian package).
# Nothing leaves the machine: dummy credentials, the metadata service
# disabled, the endpoint on loopback.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DOCS=${DOCS:-50}
RUNS=${RUNS:-20}

command -v hyperfine >/dev/null || { echo "hyperfine is missing (apt-get install hyperfine)" >&2; exit 1; }
command -v moto_server >/dev/null || { echo "moto_server is missing (pip install 'moto[server]')" >&2; exit 1; }

cargo build --release --quiet
KSEC=$PWD/target/release/ksec

work=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
moto_server -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
moto=$!
trap 'kill $moto 2>/dev/null; wait $moto 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done

export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_EC2_METADATA_DISABLED=true
export AWS_CONFIG_FILE="$work/none" AWS_SHARED_CREDENTIALS_FILE="$work/none"
export HOME="$work/home"
mkdir -p "$HOME"

arn=$(python3 -c "import boto3; print(boto3.client('kms', region_name='us-east-1', endpoint_url='$AWS_ENDPOINT_URL').create_key()['KeyMetadata']['Arn'])")

for i in $(seq 1 "$DOCS"); do
    [[ $i -gt 1 ]] && echo "---"
    printf 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: s%d\ndata:\n' "$i"
    for v in 1 2 3 4 5; do
        printf '  key%d: %s\n' "$v" "$(head -c 24 /dev/urandom | base64)"
    done
done >"$work/stream.yaml"

"$KSEC" encrypt -k "aws:$arn" -o "$work/stream.enc.yaml" "$work/stream.yaml"

calls() { "$KSEC" -v "$@" 2>&1 >/dev/null | grep -c "ksec: aws: \(Encrypt\|Decrypt\) " || true; }
echo "KMS calls, decrypt of $DOCS documents:            $(calls decrypt -q "$work/stream.enc.yaml")"
echo "KMS calls, re-encrypt (unchanged) of $DOCS documents: $(calls encrypt "$work/stream.enc.yaml")"

hyperfine --warmup 2 --runs "$RUNS" --export-markdown "$work/result.md" \
    "$KSEC decrypt -q $work/stream.enc.yaml" \
    "$KSEC --jobs 1 decrypt -q $work/stream.enc.yaml"
cat "$work/result.md"
