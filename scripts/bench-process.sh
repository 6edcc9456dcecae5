#!/usr/bin/env bash
# Whole-process benchmarks of the release `ksec` binary: start-up, reading the
# file and the key file, the work, writing stdout. Times come from hyperfine
# (medians), peak memory from GNU time's "Maximum resident set size".
#
#   scripts/bench-process.sh            # build, generate inputs, measure
#   KEEP=1 scripts/bench-process.sh     # keep the work directory (inputs, JSON)
#
# Runs in an isolated temporary HOME with its own age identity made by
# `ksec keygen`; nothing of the user's keys or config is used. Installs the
# Debian packages hyperfine and time when they are missing. See PERFORMANCE.md.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# ---------------------------------------------------------------------------
section() { printf '\n===== %s =====\n' "$*"; }

scripts/bench-prereqs

section "cargo build --release"
cargo build --release --locked
TARGET_DIR=${CARGO_TARGET_DIR:-target}
BIN=$(realpath "$TARGET_DIR/release/ksec")

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ksec-bench.XXXXXX")
cleanup() {
    if [[ -n "${KEEP:-}" ]]; then
        echo "work directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

# Isolated environment: nothing from the user's HOME or config.
mkdir -p "$WORK/home"
export HOME="$WORK/home"
export KSEC_AGE_KEY_FILE="$WORK/key.txt"
unset KSEC_AGE_KEY XDG_CONFIG_HOME
RECIPIENT=$("$BIN" keygen 2>/dev/null)

section "environment"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "cpu: $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "binary: $BIN ($(stat -c %s "$BIN") bytes)"
hyperfine --version
echo "recipient: $RECIPIENT"
# Other work on the machine inflates wall-clock times; the CPU column (user +
# system) is much less sensitive to it.
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------------------
section "generating inputs in $WORK"
# Secrets with N `data` values of 24 random bytes (32 base64 characters), and
# one with a single value of 1 MiB of base64 text. Fixed seed: same inputs
# every run.
python3 - "$WORK" <<'PY'
import base64, random, sys
work = sys.argv[1]
rng = random.Random(7)
header = ("apiVersion: v1\nkind: Secret\nmetadata:\n  name: bench\n"
          "  namespace: default\ntype: Opaque\ndata:\n")
for n in (5, 1_000, 10_000, 100_000):
    with open(f"{work}/plain-{n}.yaml", "w") as f:
        f.write(header)
        for i in range(n):
            f.write(f"  key-{i:06}: {base64.b64encode(rng.randbytes(24)).decode()}\n")
big = base64.b64encode(rng.randbytes(3 << 18)).decode()  # 1 MiB of base64
assert len(big) == 1 << 20
with open(f"{work}/plain-1mib.yaml", "w") as f:
    f.write(header + f"  blob: {big}\n")
PY
for c in 5 1000 10000 100000 1mib; do
    "$BIN" encrypt -k "age:$RECIPIENT" "$WORK/plain-$c.yaml" >"$WORK/sealed-$c.yaml"
    # Every sealed file must decrypt back to its input, or the timings lie.
    "$BIN" decrypt "$WORK/sealed-$c.yaml" | cmp -s - "$WORK/plain-$c.yaml" ||
        { echo "error: sealed-$c.yaml does not decrypt to plain-$c.yaml" >&2; exit 1; }
done
ls -l "$WORK"/*.yaml | awk '{printf "  %-18s %10d bytes\n", $NF, $5}' | sed "s|$WORK/||"

# ---------------------------------------------------------------------------
# case name | command | input file
CASES=(
    "decrypt 5 values|$BIN decrypt $WORK/sealed-5.yaml|$WORK/sealed-5.yaml"
    "encrypt 1,000 values|$BIN encrypt -k age:$RECIPIENT $WORK/plain-1000.yaml|$WORK/plain-1000.yaml"
    "encrypt 10,000 values|$BIN encrypt -k age:$RECIPIENT $WORK/plain-10000.yaml|$WORK/plain-10000.yaml"
    "encrypt 100,000 values|$BIN encrypt -k age:$RECIPIENT $WORK/plain-100000.yaml|$WORK/plain-100000.yaml"
    "decrypt 1,000 values|$BIN decrypt $WORK/sealed-1000.yaml|$WORK/sealed-1000.yaml"
    "decrypt 10,000 values|$BIN decrypt $WORK/sealed-10000.yaml|$WORK/sealed-10000.yaml"
    "decrypt 100,000 values|$BIN decrypt $WORK/sealed-100000.yaml|$WORK/sealed-100000.yaml"
    "encrypt one 1 MiB value|$BIN encrypt -k age:$RECIPIENT $WORK/plain-1mib.yaml|$WORK/plain-1mib.yaml"
    "decrypt one 1 MiB value|$BIN decrypt $WORK/sealed-1mib.yaml|$WORK/sealed-1mib.yaml"
)

section "hyperfine (output to /dev/null, no shell)"
i=0
: >"$WORK/cases.tsv"
for c in "${CASES[@]}"; do
    IFS='|' read -r name cmd input <<<"$c"
    i=$((i + 1))
    printf '%s\t%s\n' "$name" "$(stat -c %s "$input")" >>"$WORK/cases.tsv"
    # -N: no intermediate shell, so a 2 ms process is not measured as 4 ms.
    hyperfine -N --warmup 3 --min-runs 10 --style basic \
        --export-json "$WORK/hf-$i.json" --command-name "$name" "$cmd"
done

section "peak memory (GNU time, max RSS)"
MEM_CASES=(
    "encrypt 100,000 values|$BIN encrypt -k age:$RECIPIENT $WORK/plain-100000.yaml|$WORK/plain-100000.yaml"
    "decrypt 100,000 values|$BIN decrypt $WORK/sealed-100000.yaml|$WORK/sealed-100000.yaml"
    "encrypt one 1 MiB value|$BIN encrypt -k age:$RECIPIENT $WORK/plain-1mib.yaml|$WORK/plain-1mib.yaml"
    "decrypt one 1 MiB value|$BIN decrypt $WORK/sealed-1mib.yaml|$WORK/sealed-1mib.yaml"
)
: >"$WORK/mem.tsv"
for c in "${MEM_CASES[@]}"; do
    IFS='|' read -r name cmd input <<<"$c"
    # shellcheck disable=SC2086 # $cmd is a word list on purpose
    /usr/bin/time -v -o "$WORK/time.txt" $cmd >/dev/null
    rss_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/time.txt")
    printf '%s\t%s\t%s\n' "$name" "$(stat -c %s "$input")" "$rss_kb" >>"$WORK/mem.tsv"
done

# ---------------------------------------------------------------------------
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

section "results (markdown)"
python3 - "$WORK" <<'PY'
import json, sys
work = sys.argv[1]
MB = 1_000_000
def ms(s): return f"{s * 1000:.1f} ms" if s < 1 else f"{s:.2f} s"
def size(b): return f"{b / MB:.2f} MB" if b >= 100_000 else f"{b / 1000:.1f} kB"
rows = []
print("| case | input | median | mean ± σ | min … max | CPU (user + sys, mean) | runs |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for i, line in enumerate(open(f"{work}/cases.tsv"), 1):
    name, input_bytes = line.rstrip("\n").split("\t")
    r = json.load(open(f"{work}/hf-{i}.json"))["results"][0]
    rows.append(r)
    print(f"| {name} | {size(int(input_bytes))} | {ms(r['median'])} | {ms(r['mean'])} ± {ms(r['stddev'] or 0)} "
          f"| {ms(r['min'])} … {ms(r['max'])} | {ms(r['user'] + r['system'])} | {len(r['times'])} |")
med = {r["command"]: r["median"] for r in rows}

print("\n| peak memory | input | max RSS | target: 3 × input + 20 MB | |")
print("| --- | ---: | ---: | ---: | --- |")
mem_ok = True
for line in open(f"{work}/mem.tsv"):
    name, nbytes, rss_kb = line.rstrip("\n").split("\t")
    nbytes, rss = int(nbytes), int(rss_kb) * 1024
    limit = 3 * nbytes + 20 * MB
    ok = rss < limit
    mem_ok &= ok
    print(f"| {name} | {size(nbytes)} | {rss / MB:.1f} MB | {limit / MB:.1f} MB "
          f"| {'pass' if ok else 'FAIL'} |")

print("\nTargets:")
small = med["decrypt 5 values"]
print(f"- 5-value Secret decrypted in under 5 ms: {ms(small)} -> "
      f"{'pass' if small < 0.005 else 'FAIL'}")
for op in ("encrypt", "decrypt"):
    t = [med[f"{op} {k} values"] for k in ("1,000", "10,000", "100,000")]
    per = [t[0] / 1e3, t[1] / 1e4, t[2] / 1e5]
    ok = t[2] < 1.0
    print(f"- {op} 100,000 values in under 1 s: {ms(t[2])} -> {'pass' if ok else 'FAIL'}; "
          f"per value 1k/10k/100k: " + " / ".join(f"{p * 1e6:.1f} µs" for p in per)
          + f" (10k/1k = {t[1] / t[0]:.1f}×, 100k/10k = {t[2] / t[1]:.1f}×; linear is 10×)")
print(f"- peak memory under 3 × input + 20 MB: {'pass' if mem_ok else 'FAIL'}")
PY
