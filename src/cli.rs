//! Command-line definitions (raw arguments) and their translation into a
//! validated plan. Nothing here touches a file.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{Args, CommandFactory as _, FromArgMatches as _, Parser, Subcommand};

use ksec::error::{Error, Result};
use ksec::io::{self, Source};
use ksec::keys::KeyChange;
use ksec::manifest::Section;

use crate::commands::Output;
use crate::commands::create::CreatePlan;
use crate::commands::decrypt::{DecryptPlan, TemplateSource};
use crate::commands::edit::EditPlan;
use crate::commands::encrypt::EncryptPlan;
use crate::commands::introspect::IntrospectPlan;
use crate::commands::patch::PatchPlan;
use crate::commands::recompute_mac::RecomputePlan;
use crate::commands::reseal::ResealPlan;
use crate::commands::seal::{SealMode, SealPlan};
use crate::commands::spec::{self, MetaSpec, ValueSource, ValueSpec};
use crate::commands::unseal::UnsealPlan;

/// Keep Kubernetes Secrets in git: encrypt the values of Secret manifests in
/// place (kubesec format), decrypt them for `kubectl apply -f -`.
#[derive(Debug, Parser)]
#[command(name = "ksec", version, about, long_about = None, max_term_width = 100)]
#[command(
    after_help = "Exit codes: 0 ok, 1 internal error, 2 usage, 3 invalid input, 4 wrong state \
(not encrypted, partly encrypted, exists), 5 integrity (MAC or value does not verify), \
6 no key could open or wrap the data key, 7 I/O error, 8 `check` found problems, \
9 a secret store failed or lacks a value (not found, denied, version or property missing, \
unreachable); `exec` exits with its command's code."
)]
pub struct Cli {
    /// Refuse inputs larger than this (e.g. 64MiB, 1GiB).
    #[arg(long, global = true, value_name = "SIZE", default_value = "64MiB", value_parser = io::parse_size)]
    pub max_input_size: u64,

    /// Show what ksec does on stderr (e.g. the gpg command lines; never key material).
    #[arg(short, long, global = true)]
    pub verbose: bool,

    /// Replace files that are read-only (with -i/-o, edit), and an existing
    /// `create -o` file.
    #[arg(long, global = true)]
    pub force: bool,

    /// Key rules to use for every file, instead of the nearest .ksec.yaml
    /// above each file.
    #[arg(long, global = true, value_name = "FILE", env = "KSEC_CONFIG")]
    pub config: Option<PathBuf>,

    /// Sign PGP-wrapped data keys with this key (default: gpg's default key).
    #[arg(long, global = true, value_name = "FPR", help_heading = "PGP")]
    pub pgp_signer: Option<String>,

    /// An additional gpg public keyring file.
    #[arg(long, global = true, value_name = "FILE", help_heading = "PGP")]
    pub keyring: Option<PathBuf>,

    /// Read the PGP key passphrase from FILE (gpg loopback pinentry). Never on the command line.
    #[arg(long, global = true, value_name = "FILE", help_heading = "PGP")]
    pub passphrase_file: Option<PathBuf>,

    /// Accept PGP-wrapped data keys whose signature is missing or cannot be verified (warns).
    #[arg(long, global = true, help_heading = "PGP")]
    pub pgp_allow_unsigned: bool,

    /// AWS shared-config profile for KMS keys (default: $AWS_PROFILE, else `default`).
    #[cfg(feature = "aws")]
    #[arg(long, global = true, value_name = "NAME", help_heading = "AWS KMS")]
    pub aws_profile: Option<String>,

    /// Give up on a key-service or store call (login and retries included)
    /// after this long, e.g. 10s, 500ms.
    #[arg(long, global = true, value_name = "DURATION", default_value = "10s", value_parser = parse_duration, help_heading = "Key services")]
    pub timeout: std::time::Duration,

    /// At most this many concurrent key-service or store calls.
    #[arg(long, global = true, value_name = "N", default_value_t = 16, value_parser = parse_jobs, help_heading = "Key services")]
    pub jobs: usize,

    /// Attempts of a key-service call that failed transiently (throttled,
    /// 5xx, dropped connection); 1 = no retry. Default 3 (AWS: its own
    /// AWS_MAX_ATTEMPTS, else 3).
    #[arg(long, global = true, value_name = "N", env = "KSEC_MAX_ATTEMPTS", value_parser = clap::value_parser!(u32).range(1..=20), help_heading = "Key services")]
    pub max_attempts: Option<u32>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands. Each one's arguments are defined only when it is the
/// one run (`defer`): start-up builds 1 of the 25, not all of them. The
/// argument structs below have plain comments, not doc comments: a
/// deferred struct's doc comment would replace its subcommand's help text.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Encrypt every data/stringData value of every Secret in a YAML stream.
    ///
    /// Only the values change; comments, order, quoting and other documents
    /// stay byte for byte. An already encrypted file keeps its data key, the
    /// ciphertext of every value and its MAC, so re-encrypting it changes
    /// nothing unless keys change. Without --key, new Secrets are encrypted to
    /// the local age identity, which is created on first use.
    Encrypt(EncryptArgs),
    /// Print the clear manifest (footer removed) for `kubectl apply -f -`.
    ///
    /// Every value and the MAC are verified before anything is printed; on
    /// any error nothing reaches stdout.
    Decrypt(DecryptArgs),
    /// Create an encrypted Secret from values on the command line.
    ///
    /// VALUE forms for -d/-s: KEY=VALUE, KEY=- (read standard input, so the
    /// secret is not in argv or shell history), file:PATH (key = the file's
    /// name), file:KEY=PATH. `data` values are given in clear and stored
    /// base64-encoded; files may hold any bytes.
    Create(CreateArgs),
    /// Change values or metadata of an encrypted Secret, non-interactively.
    ///
    /// Takes -d/-s like create, plus ~KEY to remove a key. Untouched values
    /// keep their exact ciphertext: only the changed, added or removed value
    /// lines, the metadata lines asked for and the footer change.
    Patch(PatchArgs),
    /// Edit an encrypted file in $VISUAL / $EDITOR / vi; re-encrypted on save.
    ///
    /// `data` values are shown base64-decoded (non-UTF-8 ones as `!!binary`)
    /// unless --base64. The clear text sits in a 0600 file in a private
    /// directory on tmpfs ($XDG_RUNTIME_DIR, /dev/shm) and is removed on
    /// every exit, SIGINT/SIGTERM/SIGHUP included (exit code 128+signal).
    /// Unchanged values keep their exact ciphertext; an unchanged text
    /// writes nothing. A save that does not encrypt re-opens the editor (on a
    /// terminal); save it unchanged or empty to give up. If FILE changes on
    /// disk meanwhile, the result is written to FILE.ksec-edit-TIME.yaml.
    Edit(EditArgs),
    /// Show, per document, its name, format version, the keys that can open
    /// it and whether it has a MAC. Needs no keys.
    Introspect(IntrospectArgs),
    /// Check files for pre-commit and CI: clear-text values, partly
    /// encrypted or damaged Secrets, keys that differ from .ksec.yaml, …
    ///
    /// Lists `path:line: problem` and exits 8 when there is any. Without
    /// --verify it needs no keys and makes no network calls.
    Check(CheckArgs),
    /// Bring files' keys (and encrypted sections) in line with their
    /// .ksec.yaml rules.
    ///
    /// Shows what changes and asks (--yes in CI). Adding a key keeps the
    /// data key; removing one rotates it. With --rewrap, key lines also move
    /// to their key's latest version after a rotation in Vault (transit
    /// rewrap: the data key and every value stay).
    Updatekeys(UpdatekeysArgs),
    /// Print a file for `git diff` (diff.ksec.textconv): decrypted when a
    /// key opens it, else each encrypted value as a short fingerprint.
    Textconv(TextconvArgs),
    /// The git merge driver (merge.ksec.driver "ksec merge-driver %O %A %B %P"):
    /// merges encrypted Secrets key by key.
    ///
    /// Writes the merged, re-encrypted file to OURS and exits 0; on a conflict
    /// leaves OURS as it was (encrypted), names the conflicting keys on stderr
    /// and exits 1.
    MergeDriver(MergeDriverArgs),
    /// Print a shell completion script (bash, zsh, fish).
    Completion(CompletionArgs),
    /// Print the man page (roff), e.g. `ksec man > ksec.1`.
    Man,
    /// Create the local age identity and print its public recipient.
    ///
    /// Written to $KSEC_AGE_KEY_FILE, else $XDG_CONFIG_HOME/ksec/age/keys.txt
    /// (~/.config/ksec/age/keys.txt), mode 0600 in a 0700 directory. Never
    /// overwrites an existing identity.
    Keygen,
    /// Run as a kustomize exec plugin: print the Secrets a SecretDecryptor
    /// configuration lists, decrypted.
    ///
    /// kustomize calls `$KUSTOMIZE_PLUGIN_HOME/ksec.dev/v1/secretdecryptor/SecretDecryptor
    /// CONFIG` (a link to this binary; under that name the subcommand is
    /// implied) in the kustomization root. Files are read relative to that
    /// root and never from outside it.
    KustomizePlugin(KustomizePluginArgs),
    /// Run as a KRM function: read a ResourceList on stdin, add the Secrets
    /// its SecretDecryptor functionConfig lists, decrypted, and write it on
    /// stdout (for kpt, kustomize, Argo CD and the like).
    ///
    /// Errors are reported in the list's `results` and the exit code. The
    /// output holds clear text: send it to kubectl, never back into the
    /// package (`kpt fn render -o stdout`, not in place).
    KrmFunction,
    /// Sign a file's current values with a new MAC (upgrades v1/v2 to v3/v4).
    ///
    /// For files without a MAC, and for repairing a file whose MAC no longer
    /// verifies after a change you trust. Shows the keys and value sizes it is
    /// about to sign and asks first.
    RecomputeMac(RecomputeArgs),
    /// Print the Secrets that ExternalSecrets would create, reading the
    /// stores they name (AWS Secrets Manager, Parameter Store, Vault KV).
    ///
    /// Reads External Secrets Operator ExternalSecrets (external-secrets.io
    /// v1, v1beta1) with the SecretStore / ClusterSecretStore they name, from
    /// the same stream or --store files, and kubernetes-external-secrets ones
    /// (kubernetes-client.io/v1). Every other document passes through
    /// unchanged. Nothing is printed unless every value was read; with
    /// --encrypt (or -k) the result is encrypted like `encrypt` does.
    Resolve(ResolveArgs),
    /// Make an encrypted Secret from the values in a store.
    ///
    /// STORE is aws-sm:NAME (a JSON object becomes one key per member),
    /// ssm:PATH (a parameter, or every parameter below a path ending in /)
    /// or vault:MOUNT/PATH. Clear values exist in memory only.
    Import(ImportArgs),
    /// Write an encrypted file's values into a store.
    ///
    /// aws-sm:NAME gets one JSON object (a new secret, or a new version);
    /// ssm:PREFIX one SecureString parameter per key, PREFIX/KEY;
    /// vault:MOUNT/PATH one KV secret. Unchanged values are not rewritten.
    /// --dry-run lists keys and sizes, never values, and calls nothing.
    Push(PushArgs),
    /// Run a command with Secrets' values as environment variables or files.
    ///
    /// --env: one variable per key (other characters than letters, digits
    /// and _ become _; collisions are refused). --files: one 0600 file per
    /// key in a private 0700 directory on tmpfs, named in $KSEC_SECRETS_DIR,
    /// removed when the command ends or ksec is signalled. The exit code is
    /// the command's.
    Exec(ExecArgs),
    /// Convert encrypted files between the kubesec and SOPS formats.
    ///
    /// Same keys and values, a new data key. The result is decrypted again
    /// and compared with the original's clear text before anything is
    /// written. Refused when the target cannot hold what the source
    /// protects (say, a sops file with encrypted comments to kubesec).
    Convert(ConvertArgs),
    /// Seal Secrets for a sealed-secrets controller: print SealedSecrets
    /// (bitnami.com/v1alpha1), offline, from the controller's certificate.
    ///
    /// Every Secret of the input becomes the SealedSecret kubeseal would
    /// make of it; encrypted Secrets (kubesec or SOPS format) are decrypted
    /// in memory first. Other documents, and comments outside the Secrets,
    /// stay byte for byte. Scope: --scope, else the Secret's
    /// sealedsecrets.bitnami.com/namespace-wide or cluster-wide annotation,
    /// else strict (the Secret's namespace and name are sealed into every
    /// value). --raw seals one value from standard input; --merge-into adds
    /// or replaces values in an existing SealedSecret.
    Seal(SealArgs),
    /// Open SealedSecrets with the controller's private keys: print the
    /// Secrets the controller would create.
    ///
    /// Keys: PEM files (PKCS#1 or PKCS#8) or the controller's key backup
    /// (`kubectl get secret -n kube-system -l
    /// sealedsecrets.bitnami.com/sealed-secrets-key -o yaml`), clear or
    /// encrypted with ksec; every key is tried. Other documents stay byte for
    /// byte. With --encrypt the Secrets are encrypted (-k or .ksec.yaml keys,
    /// kubesec or --format sops) before anything is written, so clear text
    /// never touches the disk.
    Unseal(UnsealArgs),
    /// Seal SealedSecrets again for a new controller certificate, offline
    /// (kubeseal --re-encrypt needs the cluster).
    ///
    /// Every value is opened with the old keys and sealed for --cert under
    /// the same name, namespace and scope; only the values change, the
    /// template, comments and layout stay.
    Reseal(ResealArgs),
    /// Internal: the guardian `ksec edit` starts, which removes its scratch
    /// directory when ksec dies.
    #[command(name = "__scratch-guard", hide = true)]
    ScratchGuard {
        /// The scratch directory.
        dir: PathBuf,
    },
}

// `resolve` arguments.
#[derive(Debug, Args)]
pub struct ResolveArgs {
    /// Manifests with ExternalSecrets; `-` or nothing reads stdin.
    /// Directories are walked; several inputs print one stream.
    #[arg(value_name = "PATH")]
    pub files: Vec<PathBuf>,
    /// A file with more SecretStores and ClusterSecretStores (repeatable).
    #[arg(long = "store", value_name = "FILE")]
    pub stores: Vec<PathBuf>,
    /// Write the result to FILE (atomically) instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Encrypt the Secrets made: -k keys, else the .ksec.yaml rule of the
    /// output file (or of the one input), else the local age key.
    #[arg(long)]
    pub encrypt: bool,
    /// Key to encrypt to, TYPE:ID (repeatable; implies --encrypt).
    #[arg(short, long = "key", value_name = "KEY", allow_hyphen_values = true)]
    pub keys: Vec<String>,
    /// The on-disk format with --encrypt: kubesec (default) or sops.
    #[arg(long, value_name = "FORMAT", value_parser = ["kubesec", "sops"])]
    pub format: Option<String>,
}

// `import` arguments.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Where the values are: aws-sm:NAME, ssm:PATH or vault:MOUNT/PATH.
    #[arg(long, value_name = "STORE")]
    pub from: String,
    /// The Secret's name.
    #[arg(long, value_name = "NAME")]
    pub name: String,
    /// The Secret's namespace.
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// The Secret type.
    #[arg(long = "type", value_name = "TYPE", default_value = "Opaque")]
    pub kind: String,
    /// Keep a value whole under this key (default: a JSON object's members
    /// become keys, another value gets the last part of its name).
    #[arg(long, value_name = "KEY")]
    pub data_key: Option<String>,
    /// Key to encrypt to, TYPE:ID (repeatable).
    #[arg(short, long = "key", value_name = "KEY", allow_hyphen_values = true)]
    pub keys: Vec<String>,
    /// The on-disk format: kubesec (default) or sops.
    #[arg(long, value_name = "FORMAT", value_parser = ["kubesec", "sops"])]
    pub format: Option<String>,
    /// Write to FILE (atomically) instead of stdout; refused when FILE
    /// exists, unless --force.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

// `push` arguments.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// The encrypted manifest (one Secret); `-` reads stdin.
    #[arg(value_name = "PATH")]
    pub file: PathBuf,
    /// Where to write: aws-sm:NAME, ssm:PREFIX or vault:MOUNT/PATH.
    #[arg(long, value_name = "STORE")]
    pub to: String,
    /// Show the keys and sizes that would be written; call nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the SecretStore and ExternalSecret (external-secrets.io/v1)
    /// that read the values back.
    #[arg(long)]
    pub emit_externalsecret: bool,
    /// The KMS key of SecureString parameters, or of a new Secrets Manager secret.
    #[arg(long, value_name = "ID")]
    pub kms_key: Option<String>,
}

// `exec` arguments.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("how").required(true).multiple(true).args(["env", "as_files"])))]
pub struct ExecArgs {
    /// Encrypted manifests; `-` reads stdin. Directories are walked.
    #[arg(value_name = "PATH", required = true)]
    pub files: Vec<PathBuf>,
    /// Pass each value as an environment variable.
    #[arg(long)]
    pub env: bool,
    /// Pass each value as a file in $KSEC_SECRETS_DIR.
    #[arg(long = "files")]
    pub as_files: bool,
    /// The command and its arguments, after `--`.
    #[arg(value_name = "COMMAND", last = true, required = true)]
    pub command: Vec<std::ffi::OsString>,
}

// `convert` arguments.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// Encrypted manifests; `-` or nothing reads stdin. Directories are
    /// walked; several inputs need -i.
    #[arg(value_name = "PATH")]
    pub files: Vec<PathBuf>,
    /// The target format.
    #[arg(long, value_name = "FORMAT", value_parser = ["kubesec", "sops"])]
    pub to: String,
    /// Where the result goes.
    #[command(flatten)]
    pub out: OutputArgs,
}

// Where the result goes.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Write the result to FILE (atomically) instead of stdout.
    #[arg(short, long, value_name = "FILE", conflicts_with = "in_place")]
    pub output: Option<PathBuf>,
    /// Rewrite the input file (atomically); unchanged files are not touched.
    #[arg(short, long)]
    pub in_place: bool,
}

// `encrypt` arguments.
#[derive(Debug, Args)]
pub struct EncryptArgs {
    /// Manifests to encrypt; `-` or nothing reads stdin. Directories are
    /// walked (*.yaml, *.yml, *.json); several inputs need -i.
    #[arg(value_name = "PATH")]
    pub files: Vec<PathBuf>,
    /// Where the result goes.
    #[command(flatten)]
    pub out: OutputArgs,
    /// Key to encrypt to, as TYPE:ID: age:age1…, pgp:FINGERPRINT (or key id,
    /// user id, email, `default`). Repeat for several keys.
    /// `+KEY` adds a key and keeps the data key; `-KEY` removes one and rotates
    /// the data key; a plain list replaces the keys.
    #[arg(short, long = "key", value_name = "KEY", allow_hyphen_values = true)]
    pub keys: Vec<String>,
    /// Input `data` values are plain text: base64-encode them first.
    #[arg(short = 'x', long)]
    pub cleartext: bool,
    /// Generate a new data key for every Secret and re-encrypt every value.
    #[arg(long)]
    pub rotate: bool,
    /// An earlier encrypted version of the same file: clear Secrets take its
    /// keys, data key and ciphertexts, so values equal to the parent's keep
    /// their exact ciphertext. Secrets are matched by namespace/name, then
    /// by position. The parent's MACs must verify.
    #[arg(long, value_name = "OLD.enc.yaml")]
    pub parent: Option<PathBuf>,
    /// The on-disk format for files not encrypted yet: kubesec (the
    /// default) or sops (what Flux, ksops and helm-secrets decrypt).
    /// Encrypted files keep theirs; `ksec convert` changes it.
    #[arg(long, value_name = "FORMAT", value_parser = ["kubesec", "sops"])]
    pub format: Option<String>,
}

// `decrypt` arguments.
#[derive(Debug, Args)]
pub struct DecryptArgs {
    /// Manifests to decrypt; `-` or nothing reads stdin. Directories are
    /// walked (*.yaml, *.yml, *.json); several inputs print one stream.
    #[arg(value_name = "PATH")]
    pub files: Vec<PathBuf>,
    /// Where the result goes.
    #[command(flatten)]
    pub out: OutputArgs,
    /// Write `data` values base64-decoded (non-UTF-8 ones as `!!binary`).
    #[arg(short = 'x', long)]
    pub cleartext: bool,
    /// Accept v1/v2 files, which carry no MAC (tampering is not detected).
    #[arg(long)]
    pub allow_missing_mac: bool,
    /// Do not check the MAC (recovering a damaged file; each value is still
    /// authenticated, but deleted, reordered or swapped values are not
    /// detected). A warning says so.
    #[arg(long, conflicts_with = "require_binding")]
    pub ignore_mac: bool,
    /// Refuse Secrets without a binding (`# ksec:bind:`, or a sops file's
    /// `ksec_binding`), as a `.ksec.yaml` rule's `binding: required` does.
    #[arg(long)]
    pub require_binding: bool,
    /// Do not warn when decrypted Secrets go to a pipe or file (client-side
    /// `kubectl apply` keeps a clear copy in an annotation; -x output is not for kubectl).
    #[arg(short, long)]
    pub quiet: bool,
    /// Print this Go text/template, rendered once per Secret, instead of the
    /// manifest, e.g. '{{ .data.password | base64decode }}' or
    /// '{{ range $k, $v := .data }}{{ $k }}={{ $v | b64dec }}{{ "\n" }}{{ end }}'.
    /// A missing key is an error. The supported subset is in the README.
    #[arg(long, value_name = "TEMPLATE", conflicts_with = "template_file")]
    pub template: Option<String>,
    /// Read the --template from FILE.
    #[arg(long, value_name = "FILE")]
    pub template_file: Option<PathBuf>,
}

// Values and metadata, shared by `create` and `patch`.
#[derive(Debug, Args)]
pub struct ValueArgs {
    /// A `data` value: KEY=VALUE, KEY=-, file:PATH or file:KEY=PATH (patch: ~KEY removes).
    #[arg(short, long = "data", value_name = "VALUE", allow_hyphen_values = true)]
    pub data: Vec<String>,
    /// A `stringData` value, same forms as --data.
    #[arg(
        short,
        long = "string-data",
        value_name = "VALUE",
        allow_hyphen_values = true
    )]
    pub string_data: Vec<String>,
    /// Metadata: name=NAME or namespace=NS (patch: ~namespace removes it).
    #[arg(short, long = "metadata", value_name = "KEY=VALUE")]
    pub metadata: Vec<String>,
    /// An annotation, KEY=VALUE (patch: ~KEY removes it).
    #[arg(short, long = "annotation", value_name = "KEY=VALUE")]
    pub annotations: Vec<String>,
    /// A label, KEY=VALUE (patch: ~KEY removes it).
    #[arg(short, long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Keys to encrypt to (TYPE:ID), or changes (+KEY, -KEY) as for encrypt.
    #[arg(short, long = "key", value_name = "KEY", allow_hyphen_values = true)]
    pub keys: Vec<String>,
}

// `create` arguments.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The Secret's name (metadata.name).
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Values and metadata.
    #[command(flatten)]
    pub values: ValueArgs,
    /// The Secret type.
    #[arg(long = "type", value_name = "TYPE", default_value = "Opaque")]
    pub kind: String,
    /// Write to FILE (atomically) instead of stdout; refused when FILE
    /// exists, unless --force.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// The on-disk format: kubesec (the default) or sops.
    #[arg(long, value_name = "FORMAT", value_parser = ["kubesec", "sops"])]
    pub format: Option<String>,
}

// `patch` arguments.
#[derive(Debug, Args)]
pub struct PatchArgs {
    /// The encrypted manifest (one Secret); `-` reads stdin.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Values and metadata.
    #[command(flatten)]
    pub values: ValueArgs,
    /// Set the Secret type.
    #[arg(long = "type", value_name = "TYPE")]
    pub kind: Option<String>,
    /// Generate a new data key and re-encrypt every value.
    #[arg(long)]
    pub rotate: bool,
    /// Where the result goes.
    #[command(flatten)]
    pub out: OutputArgs,
}

// `edit` arguments.
#[derive(Debug, Args)]
pub struct EditArgs {
    /// The encrypted manifest, rewritten in place.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Show `data` values base64-encoded, as stored.
    #[arg(short, long)]
    pub base64: bool,
    /// Create FILE from a template when it does not exist (a Secret named
    /// after the file with one placeholder value).
    #[arg(short = 'f', long)]
    pub create: bool,
    /// Keys for a new file, or key changes (+KEY, -KEY) as for encrypt.
    #[arg(short, long = "key", value_name = "KEY", allow_hyphen_values = true)]
    pub keys: Vec<String>,
    /// Generate a new data key and re-encrypt every value.
    #[arg(long)]
    pub rotate: bool,
}

// `introspect` arguments.
#[derive(Debug, Args)]
pub struct IntrospectArgs {
    /// Manifests to inspect; `-` or nothing reads stdin. Directories are walked.
    #[arg(value_name = "PATH")]
    pub files: Vec<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// A sealed-secrets controller certificate: say whether each
    /// SealedSecret's values fit its key. Repeatable.
    #[arg(long, value_name = "FILE|URL")]
    pub cert: Vec<String>,
    /// A sealed-secrets controller private key (PEM or key backup): say
    /// which opens each SealedSecret. Repeatable, or comma-separated.
    #[arg(long, value_name = "FILE", value_delimiter = ',')]
    pub recovery_key: Vec<PathBuf>,
}

// `kustomize-plugin` arguments.
#[derive(Debug, Args)]
pub struct KustomizePluginArgs {
    /// The SecretDecryptor configuration file kustomize wrote.
    // Its own id: the global `--config` has `config`, and a deferred
    // subcommand's arguments are added after the globals reach it.
    #[arg(id = "plugin_config", value_name = "CONFIG")]
    pub config: PathBuf,
    /// Arguments from the configuration's `argsOneLiner`/`argsFromFile`
    /// (none are defined; refused so that a typo is not ignored).
    #[arg(hide = true)]
    pub extra: Vec<String>,
}

// `recompute-mac` arguments.
#[derive(Debug, Args)]
pub struct RecomputeArgs {
    /// Encrypted manifests (or directories), rewritten in place.
    #[arg(value_name = "PATH", required = true)]
    pub files: Vec<PathBuf>,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub yes: bool,
}

// `check` arguments.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Files and directories to check (default: the current directory).
    #[arg(value_name = "PATH")]
    pub files: Vec<PathBuf>,
    /// Also open every Secret: each MAC and value must verify and an
    /// available key must open each data key (needs keys; may call KMS).
    #[arg(long)]
    pub verify: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: CheckFormat,
}

/// `check --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CheckFormat {
    /// `path:line: problem`, one per line.
    Text,
    /// One JSON object: the problems and counts.
    Json,
}

// `updatekeys` arguments.
#[derive(Debug, Args)]
pub struct UpdatekeysArgs {
    /// Files and directories to bring in line with their rules.
    #[arg(value_name = "PATH", required = true)]
    pub files: Vec<PathBuf>,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub yes: bool,
    /// Also move every Vault key line to the key's latest version (transit
    /// rewrap; the data key never leaves Vault), in files with or without
    /// a rule.
    #[arg(long)]
    pub rewrap: bool,
}

// `textconv` arguments.
#[derive(Debug, Args)]
pub struct TextconvArgs {
    /// The file git wants to show.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

// `merge-driver` arguments (git's %O %A %B %P).
#[derive(Debug, Args)]
pub struct MergeDriverArgs {
    /// The common ancestor's version (%O).
    #[arg(value_name = "BASE")]
    pub base: PathBuf,
    /// Our version (%A); the result is written here.
    #[arg(value_name = "OURS")]
    pub ours: PathBuf,
    /// Their version (%B).
    #[arg(value_name = "THEIRS")]
    pub theirs: PathBuf,
    /// The path in the repository (%P), for messages.
    #[arg(value_name = "PATH")]
    pub path: Option<String>,
}

/// `--scope` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScopeArg {
    /// Only as the same name in the same namespace (kubeseal's default).
    Strict,
    /// Under any name in the same namespace.
    NamespaceWide,
    /// Under any name in any namespace.
    ClusterWide,
}

impl ScopeArg {
    fn scope(self) -> ksec::sealed::Scope {
        match self {
            ScopeArg::Strict => ksec::sealed::Scope::Strict,
            ScopeArg::NamespaceWide => ksec::sealed::Scope::NamespaceWide,
            ScopeArg::ClusterWide => ksec::sealed::Scope::ClusterWide,
        }
    }
}

/// `--format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    /// YAML, keys sorted (kubeseal -o yaml).
    Yaml,
    /// JSON, in Go's field order (kubeseal -o json).
    Json,
}

// `seal` arguments.
#[derive(Debug, Args)]
pub struct SealArgs {
    /// Manifests with Secrets (clear or encrypted); `-` or nothing reads
    /// stdin. Directories are walked; several inputs print one stream.
    #[arg(value_name = "PATH")]
    pub files: Vec<PathBuf>,
    /// The controller's certificate: a PEM file, file://PATH or an
    /// http(s):// URL (`kubeseal --fetch-cert > cert.pem` saves it).
    #[arg(
        long,
        value_name = "FILE|URL",
        env = "SEALED_SECRETS_CERT",
        required = true
    )]
    pub cert: String,
    /// Where the values may be opened: the Secret's name and namespace
    /// (strict), its namespace, or anywhere. Replaces the Secret's scope
    /// annotations.
    #[arg(long, value_enum, value_name = "SCOPE")]
    pub scope: Option<ScopeArg>,
    /// The namespace of Secrets that have none (a Secret in another
    /// namespace is refused).
    #[arg(short, long, value_name = "NS")]
    pub namespace: Option<String>,
    /// The name of the Secret (the input's one Secret, or the --raw value's).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Seal one value (standard input, or --from-file) and print its
    /// base64, for assembling a SealedSecret by hand.
    #[arg(long, conflicts_with_all = ["merge_into", "in_place"])]
    pub raw: bool,
    /// With --raw: read the value from FILE ([KEY=]FILE as kubeseal; the
    /// key is ignored).
    #[arg(long, value_name = "[KEY=]FILE", requires = "raw")]
    pub from_file: Option<String>,
    /// Seal the input's Secret for this file's SealedSecret (its name,
    /// namespace and scope) and add its values there, replacing values of
    /// the same keys; FILE is rewritten atomically.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["output", "in_place"])]
    pub merge_into: Option<PathBuf>,
    /// Seal Secrets that have no values (kubeseal refuses them by default).
    #[arg(long)]
    pub allow_empty_data: bool,
    /// Write the result to FILE (atomically) instead of stdout; `-o json`
    /// and `-o yaml` choose the format instead, as in kubeseal (a file
    /// named so: `-o ./json`). FILE.json is written as JSON.
    #[arg(
        short,
        long,
        value_name = "FILE|json|yaml",
        conflicts_with = "in_place"
    )]
    pub output: Option<PathBuf>,
    /// Rewrite each input file (atomically): its Secrets become SealedSecrets.
    #[arg(short, long)]
    pub in_place: bool,
    /// How SealedSecrets are written.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<FormatArg>,
}

// `unseal` arguments.
#[derive(Debug, Args)]
pub struct UnsealArgs {
    /// Manifests with SealedSecrets; `-` or nothing reads stdin.
    /// Directories are walked; several inputs print one stream.
    #[arg(value_name = "PATH")]
    pub files: Vec<PathBuf>,
    /// The controller's private key: PEM (PKCS#1 or PKCS#8) or its key
    /// backup (a List of kubernetes.io/tls Secrets), clear or encrypted with
    /// ksec. Repeat, or separate with commas, for several; each is tried.
    #[arg(
        long,
        visible_alias = "recovery-private-key",
        value_name = "FILE",
        value_delimiter = ',',
        required = true
    )]
    pub recovery_key: Vec<PathBuf>,
    /// The namespace of SealedSecrets that name none (the one they are
    /// applied to): their label needs it unless they are cluster-wide.
    #[arg(short, long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Encrypt the Secrets (kubesec or --format sops) before writing them:
    /// keys from --key, else the .ksec.yaml rule, else the local age key.
    #[arg(long)]
    pub encrypt: bool,
    /// With --encrypt: a key to encrypt to (TYPE:ID, as for encrypt); repeat
    /// for several.
    #[arg(short, long = "key", value_name = "KEY", requires = "encrypt")]
    pub keys: Vec<String>,
    /// With --encrypt: the on-disk format, kubesec (the default) or sops;
    /// else the .ksec.yaml rule's.
    #[arg(long, value_name = "FORMAT", value_parser = ["kubesec", "sops"], requires = "encrypt")]
    pub format: Option<String>,
    /// Do not warn when clear Secrets go to a pipe or file.
    #[arg(short, long)]
    pub quiet: bool,
    /// Where the result goes.
    #[command(flatten)]
    pub out: OutputArgs,
}

// `reseal` arguments.
#[derive(Debug, Args)]
pub struct ResealArgs {
    /// Manifests with SealedSecrets; `-` or nothing reads stdin.
    /// Directories are walked; several inputs need -i or print one stream.
    #[arg(value_name = "PATH")]
    pub files: Vec<PathBuf>,
    /// The old controller's private key (as for unseal); repeat or separate
    /// with commas.
    #[arg(
        long,
        visible_alias = "recovery-private-key",
        value_name = "FILE",
        value_delimiter = ',',
        required = true
    )]
    pub recovery_key: Vec<PathBuf>,
    /// The new controller's certificate (file, file://PATH or http(s):// URL).
    #[arg(
        long,
        value_name = "FILE|URL",
        env = "SEALED_SECRETS_CERT",
        required = true
    )]
    pub cert: String,
    /// The namespace of SealedSecrets that name none.
    #[arg(short, long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Where the result goes.
    #[command(flatten)]
    pub out: OutputArgs,
}

// `completion` arguments.
#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: crate::commands::shell::Shell,
}

/// A validated plan: the command, and what every command gets (how to
/// reach keys, where the key rules are).
pub struct Run {
    /// The command.
    pub plan: Plan,
    /// Keys, rules and the reporter.
    pub context: crate::commands::Context,
}

/// A validated command.
pub enum Plan {
    /// `encrypt`.
    Encrypt(EncryptPlan),
    /// `decrypt`.
    Decrypt(DecryptPlan),
    /// `create`.
    Create(CreatePlan),
    /// `patch`.
    Patch(PatchPlan),
    /// `edit`.
    Edit(EditPlan),
    /// `introspect`.
    Introspect(IntrospectPlan),
    /// `keygen`.
    Keygen,
    /// `recompute-mac`.
    RecomputeMac(RecomputePlan),
    /// `kustomize-plugin`: the configuration file.
    KustomizePlugin(PathBuf),
    /// `check`.
    Check(crate::commands::check::CheckPlan),
    /// `updatekeys`.
    Updatekeys(crate::commands::updatekeys::UpdatekeysPlan),
    /// `textconv`: the file.
    Textconv(PathBuf, u64),
    /// `merge-driver`.
    MergeDriver(crate::commands::merge::MergePlan),
    /// `completion`.
    Completion(crate::commands::shell::Shell),
    /// `man`.
    Man,
    /// `krm-function`, with the input size limit.
    KrmFunction(u64),
    /// `convert`.
    Convert(crate::commands::convert::ConvertPlan),
    /// `seal`.
    Seal(SealPlan),
    /// `unseal`.
    Unseal(UnsealPlan),
    /// `reseal`.
    Reseal(ResealPlan),
    /// The scratch guardian.
    ScratchGuard(PathBuf),
    /// `resolve`.
    Resolve(crate::commands::resolve::ResolvePlan),
    /// `import`.
    Import(crate::commands::import::ImportPlan),
    /// `push`.
    Push(crate::commands::push::PushPlan),
    /// `exec`.
    Exec(crate::commands::exec::ExecPlan),
}

/// Parses `10s`, `500ms`, `2m`, or plain seconds.
fn parse_duration(s: &str) -> std::result::Result<std::time::Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (examples: 10s, 500ms, 2m)"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        _ => return Err(format!("`{s}`: unknown unit (use ms, s or m)")),
    };
    if !(secs > 0.0 && secs < 86_400.0) {
        return Err(format!("`{s}`: must be more than 0 and less than a day"));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

/// Installed under this name (in PATH), ksec is the kubectl plugin `kubectl ksec`.
pub const KUBECTL_PLUGIN_NAME: &str = "kubectl-ksec";

/// `-o`/`-i` of a command that takes several inputs: `-i` rewrites each.
fn outputs(files: &[PathBuf], out: &OutputArgs) -> Result<Output> {
    if out.in_place {
        if files.is_empty() || files.iter().any(|f| f.as_os_str() == "-") {
            return Err(Error::usage("--in-place needs a FILE argument, not stdin"));
        }
        return Ok(Output::InPlaceEach);
    }
    output(&Source::Stdin, out)
}

fn output(source: &Source, out: &OutputArgs) -> Result<Output> {
    if out.in_place {
        return match source {
            Source::File(p) => Ok(Output::InPlace(p.clone())),
            Source::Stdin => Err(Error::usage("--in-place needs a FILE argument, not stdin")),
        };
    }
    Ok(match &out.output {
        Some(p) if p.as_os_str() == "-" => Output::Stdout,
        Some(p) => Output::File(p.clone()),
        None => Output::Stdout,
    })
}

/// `--key` values, parsed.
fn key_change(specs: &[String]) -> Result<KeyChange> {
    KeyChange::parse(specs).map_err(|e| Error::usage(e.0))
}

/// Metadata and keys of `create`/`patch`, parsed.
struct MetaPlan {
    metadata: Vec<MetaSpec>,
    labels: Vec<MetaSpec>,
    annotations: Vec<MetaSpec>,
    keys: KeyChange,
}

fn value_plan(a: &ValueArgs, patch: bool) -> Result<(Vec<ValueSpec>, MetaPlan)> {
    let mut values = spec::parse_values(&a.data, Section::Data, patch)?;
    values.extend(spec::parse_values(
        &a.string_data,
        Section::StringData,
        patch,
    )?);
    spec::check_one_stdin(&values)?;
    let metadata = spec::parse_meta(&a.metadata, "--metadata", patch)?;
    spec::check_metadata(&metadata)?;
    Ok((
        values,
        MetaPlan {
            metadata,
            labels: spec::parse_meta(&a.labels, "--label", patch)?,
            annotations: spec::parse_meta(&a.annotations, "--annotation", patch)?,
            keys: key_change(&a.keys)?,
        },
    ))
}

impl Cli {
    /// Parses the process arguments, taking the name the binary was called
    /// by into account: as `kubectl-ksec` (a kubectl plugin) messages say
    /// `kubectl ksec`; as `SecretDecryptor` (a kustomize exec plugin, which
    /// kustomize calls with the configuration file only) it runs
    /// `kustomize-plugin`. Prints help or a usage error and exits as clap does.
    pub fn parse_invocation(args: impl IntoIterator<Item = OsString>) -> Cli {
        let mut args: Vec<OsString> = args.into_iter().collect();
        let name = args
            .first()
            .and_then(|a| Path::new(a).file_name())
            .and_then(|n| n.to_str())
            .unwrap_or("ksec")
            .to_owned();
        let mut command = Cli::command();
        if name == KUBECTL_PLUGIN_NAME {
            command = command.bin_name("kubectl ksec");
        } else if name == ksec::generator::KIND && args.len() > 1 {
            args.insert(1, "kustomize-plugin".into());
        }
        let matches = command.get_matches_from(args);
        Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }

    /// Turns raw arguments into a plan, before any file is touched.
    pub fn plan(self) -> Result<Run> {
        let max = self.max_input_size;
        let net = ksec::net::NetOptions {
            timeout: self.timeout,
            jobs: self.jobs.max(1),
            max_attempts: self.max_attempts.unwrap_or(ksec::net::DEFAULT_ATTEMPTS),
        };
        let keys = ksec::keys::KeyringOptions {
            net,
            pgp: ksec::keys::pgp::PgpOptions {
                signer: self.pgp_signer,
                keyring: self.keyring,
                passphrase_file: self.passphrase_file,
                allow_unsigned: self.pgp_allow_unsigned,
            },
            #[cfg(feature = "aws")]
            aws: ksec::keys::aws::AwsOptions {
                profile: self.aws_profile,
                timeout: self.timeout,
                jobs: self.jobs,
                max_attempts: self.max_attempts,
            },
            reporter: crate::commands::stderr(self.verbose),
        };
        let plan = match self.command {
            Command::Encrypt(a) => Plan::Encrypt(a.plan(max)?),
            Command::Decrypt(a) => Plan::Decrypt(a.plan(max)?),
            Command::Create(a) => Plan::Create(a.plan(max)?),
            Command::Patch(a) => Plan::Patch(a.plan(max)?),
            Command::Edit(a) => Plan::Edit(EditPlan {
                path: a.file,
                base64: a.base64,
                create: a.create,
                keys: key_change(&a.keys)?,
                rotate: a.rotate,
                max_input: max,
            }),
            Command::Introspect(a) => Plan::Introspect(IntrospectPlan {
                paths: a.files,
                json: a.json,
                max_input: max,
                certs: a.cert,
                recovery: a.recovery_key,
            }),
            Command::Keygen => Plan::Keygen,
            Command::KustomizePlugin(a) => Plan::KustomizePlugin(a.plan()?),
            Command::KrmFunction => Plan::KrmFunction(max),
            Command::RecomputeMac(a) => Plan::RecomputeMac(RecomputePlan {
                paths: a.files,
                yes: a.yes,
                max_input: max,
            }),
            Command::Check(a) => Plan::Check(crate::commands::check::CheckPlan {
                paths: a.files,
                verify: a.verify,
                json: a.format == CheckFormat::Json,
                max_input: max,
            }),
            Command::Updatekeys(a) => {
                Plan::Updatekeys(crate::commands::updatekeys::UpdatekeysPlan {
                    paths: a.files,
                    yes: a.yes,
                    rewrap: a.rewrap,
                    max_input: max,
                })
            }
            Command::Textconv(a) => Plan::Textconv(a.file, max),
            Command::MergeDriver(a) => Plan::MergeDriver(crate::commands::merge::MergePlan {
                base: a.base,
                ours: a.ours,
                theirs: a.theirs,
                name: a.path,
                max_input: max,
            }),
            Command::Completion(a) => Plan::Completion(a.shell),
            Command::Man => Plan::Man,
            Command::ScratchGuard { dir } => Plan::ScratchGuard(dir),
            Command::Convert(a) => Plan::Convert(crate::commands::convert::ConvertPlan {
                output: outputs(&a.files, &a.out)?,
                to: format(Some(&a.to)).ok_or_else(|| Error::usage("--to: unknown format"))?,
                paths: a.files,
                max_input: max,
            }),
            Command::Seal(a) => Plan::Seal(a.plan(max)?),
            Command::Unseal(a) => Plan::Unseal(a.plan(max)?),
            Command::Reseal(a) => Plan::Reseal(a.plan(max)?),
            Command::Resolve(a) => Plan::Resolve(crate::commands::resolve::ResolvePlan {
                output: match a.output {
                    Some(p) if p.as_os_str() != "-" => Output::File(p),
                    _ => Output::Stdout,
                },
                encrypt: a.encrypt || !a.keys.is_empty(),
                keys: key_change(&a.keys)?,
                format: match (a.format.as_deref(), a.encrypt || !a.keys.is_empty()) {
                    (Some(_), false) => {
                        return Err(Error::usage("--format needs --encrypt (or -k)"));
                    }
                    (f, _) => format(f),
                },
                paths: a.files,
                stores: a.stores,
                max_input: max,
            }),
            Command::Import(a) => Plan::Import(crate::commands::import::ImportPlan {
                from: ksec::stores::Address::parse(&a.from)
                    .map_err(|m| Error::usage(format!("--from {m}")))?,
                name: a.name,
                namespace: a.namespace,
                kind: a.kind,
                data_key: a.data_key,
                keys: key_change(&a.keys)?,
                format: format(a.format.as_deref()),
                output: a.output.filter(|p| p.as_os_str() != "-"),
            }),
            Command::Push(a) => Plan::Push(crate::commands::push::PushPlan {
                source: Source::from_arg(Some(&a.file)),
                to: ksec::stores::Address::parse(&a.to)
                    .map_err(|m| Error::usage(format!("--to {m}")))?,
                dry_run: a.dry_run,
                emit: a.emit_externalsecret,
                kms_key: a.kms_key,
                max_input: max,
            }),
            Command::Exec(a) => Plan::Exec(crate::commands::exec::ExecPlan {
                paths: a.files,
                env: a.env,
                files: a.as_files,
                command: a.command,
                max_input: max,
            }),
        };
        Ok(Run {
            plan,
            context: crate::commands::Context {
                keys,
                config: self.config,
                force: self.force,
            },
        })
    }
}

/// `--jobs N`: 1 to 1024 concurrent calls.
fn parse_jobs(s: &str) -> std::result::Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=1024).contains(&n) => Ok(n),
        _ => Err("expected a number of concurrent calls from 1 to 1024".into()),
    }
}

/// A `--format` value (checked by clap).
fn format(name: Option<&str>) -> Option<&'static dyn ksec::formats::Format> {
    name.and_then(ksec::formats::by_name)
}

impl EncryptArgs {
    fn plan(self, max_input: u64) -> Result<EncryptPlan> {
        Ok(EncryptPlan {
            output: outputs(&self.files, &self.out)?,
            keys: key_change(&self.keys)?,
            paths: self.files,
            cleartext: self.cleartext,
            rotate: self.rotate,
            parent: self.parent,
            format: format(self.format.as_deref()),
            max_input,
        })
    }
}

impl DecryptArgs {
    fn plan(self, max_input: u64) -> Result<DecryptPlan> {
        let template = match (self.template, self.template_file) {
            (Some(t), _) => Some(TemplateSource::Text(t)),
            (None, Some(f)) => Some(TemplateSource::File(f)),
            (None, None) => None,
        };
        if template.is_some() && self.out.in_place {
            return Err(Error::usage(
                "--template cannot write in place (-i): it would replace the file with the rendering",
            ));
        }
        Ok(DecryptPlan {
            output: outputs(&self.files, &self.out)?,
            paths: self.files,
            cleartext: self.cleartext,
            allow_missing_mac: self.allow_missing_mac,
            ignore_mac: self.ignore_mac,
            require_binding: self.require_binding,
            template,
            max_input,
            quiet: self.quiet,
        })
    }
}

impl CreateArgs {
    fn plan(self, max_input: u64) -> Result<CreatePlan> {
        let (values, meta) = value_plan(&self.values, false)?;
        if meta.metadata.iter().any(|m| m.key == "name") {
            return Err(Error::usage(
                "--metadata name=…: the name is create's NAME argument",
            ));
        }
        check_names(Some(&self.name), &meta)?;
        Ok(CreatePlan {
            name: self.name,
            namespace: meta
                .metadata
                .iter()
                .rev()
                .find(|m| m.key == "namespace")
                .and_then(|m| m.value.clone()),
            values,
            labels: meta.labels,
            annotations: meta.annotations,
            kind: self.kind,
            keys: meta.keys,
            output: self.output.filter(|p| p.as_os_str() != "-"),
            format: format(self.format.as_deref()),
            max_input,
        })
    }
}

/// A Secret name and namespace Kubernetes would accept (`create NAME`,
/// `-m name=`, `-m namespace=`).
fn check_names(name: Option<&str>, meta: &MetaPlan) -> Result<()> {
    let one_line = ksec::error::one_line;
    let names = name.into_iter().chain(
        meta.metadata
            .iter()
            .filter(|m| m.key == "name")
            .filter_map(|m| m.value.as_deref()),
    );
    for n in names {
        if !ksec::k8s::valid_name(n) {
            return Err(Error::usage(format!(
                "`{}` is not a valid Secret name",
                one_line(n)
            ))
            .hint("lowercase letters, digits, `-` and `.`, starting and ending with a letter or digit (at most 253)"));
        }
    }
    for m in meta.metadata.iter().filter(|m| m.key == "namespace") {
        if let Some(ns) = &m.value
            && !ksec::k8s::valid_namespace(ns)
        {
            return Err(Error::usage(format!(
                "`{}` is not a valid namespace",
                one_line(ns)
            ))
            .hint("lowercase letters, digits and `-`, starting and ending with a letter or digit (at most 63)"));
        }
    }
    Ok(())
}

impl PatchArgs {
    fn plan(self, max_input: u64) -> Result<PatchPlan> {
        let source = Source::from_arg(Some(&self.file));
        let (values, meta) = value_plan(&self.values, true)?;
        if source == Source::Stdin && values.iter().any(|v| v.source == Some(ValueSource::Stdin)) {
            return Err(Error::usage(
                "patch: standard input cannot be both the file and a value (KEY=-)",
            ));
        }
        check_names(None, &meta)?;
        Ok(PatchPlan {
            output: output(&source, &self.out)?,
            source,
            values,
            metadata: meta.metadata,
            labels: meta.labels,
            annotations: meta.annotations,
            kind: self.kind,
            keys: meta.keys,
            rotate: self.rotate,
            max_input,
        })
    }
}

impl KustomizePluginArgs {
    fn plan(self) -> Result<PathBuf> {
        if !self.extra.is_empty() {
            return Err(Error::usage(
                "the SecretDecryptor plugin takes no arguments besides its configuration file",
            )
            .hint("remove `argsOneLiner`/`argsFromFile` from the configuration"));
        }
        Ok(self.config)
    }
}

impl SealArgs {
    fn plan(self, max_input: u64) -> Result<SealPlan> {
        // `-o json` / `-o yaml` choose the format (kubeseal's -o); any
        // other -o is a file, written as JSON when it is FILE.json.
        let chosen = self.format.map(|f| match f {
            FormatArg::Yaml => ksec::sealed::Format::Yaml,
            FormatArg::Json => ksec::sealed::Format::Json,
        });
        let (file, named) = match self.output.as_deref().and_then(Path::to_str) {
            Some("json") => (None, Some(ksec::sealed::Format::Json)),
            Some("yaml") => (None, Some(ksec::sealed::Format::Yaml)),
            _ => (self.output.clone(), None),
        };
        if let (Some(a), Some(b)) = (chosen, named)
            && a != b
        {
            return Err(Error::usage(
                "-o and --format name different formats; give one of them",
            ));
        }
        let by_extension = file
            .as_deref()
            .filter(|f| f.extension().is_some_and(|e| e == "json"))
            .map(|_| ksec::sealed::Format::Json);
        let format = chosen.or(named).or(by_extension).unwrap_or_default();
        let mode = if self.raw {
            if !self.files.is_empty() {
                return Err(Error::usage(
                    "--raw seals standard input (or --from-file); it takes no PATH",
                ));
            }
            SealMode::Raw {
                from_file: self.from_file.map(|f| match f.split_once('=') {
                    Some((_, path)) if !path.is_empty() => PathBuf::from(path),
                    _ => PathBuf::from(f),
                }),
            }
        } else if let Some(target) = self.merge_into {
            if self.files.len() > 1 {
                return Err(Error::usage("--merge-into takes one input with one Secret"));
            }
            SealMode::MergeInto(target)
        } else {
            SealMode::Stream
        };
        let out = OutputArgs {
            output: file,
            in_place: self.in_place,
        };
        Ok(SealPlan {
            output: outputs(&self.files, &out)?,
            paths: self.files,
            format,
            cert: self.cert,
            scope: self.scope.map(ScopeArg::scope),
            namespace: self.namespace,
            name: self.name,
            mode,
            allow_empty_data: self.allow_empty_data,
            max_input,
        })
    }
}

/// `--recovery-key` names files: a private key is never read from stdin.
fn recovery_files(keys: &[PathBuf]) -> Result<()> {
    if keys.iter().any(|k| k.as_os_str() == "-") {
        return Err(Error::usage(
            "--recovery-key takes files, not standard input",
        ));
    }
    Ok(())
}

impl UnsealArgs {
    fn plan(self, max_input: u64) -> Result<UnsealPlan> {
        recovery_files(&self.recovery_key)?;
        Ok(UnsealPlan {
            output: outputs(&self.files, &self.out)?,
            paths: self.files,
            recovery: self.recovery_key,
            namespace: self.namespace,
            encrypt: self.encrypt,
            keys: key_change(&self.keys)?,
            format: format(self.format.as_deref()),
            quiet: self.quiet,
            max_input,
        })
    }
}

impl ResealArgs {
    fn plan(self, max_input: u64) -> Result<ResealPlan> {
        recovery_files(&self.recovery_key)?;
        Ok(ResealPlan {
            output: outputs(&self.files, &self.out)?,
            paths: self.files,
            recovery: self.recovery_key,
            cert: self.cert,
            namespace: self.namespace,
            max_input,
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::Cli;

    /// clap's own checks over every subcommand, built as `completion` and
    /// `man` build them: deferred subcommands are otherwise built (and
    /// checked, in debug builds only) when run, so an argument id that
    /// collides with a global one would go unnoticed until then.
    #[test]
    fn every_subcommand_passes_clap_checks() {
        Cli::command().debug_assert();
    }

    /// Each deferred subcommand gets the global arguments and its own, and
    /// keeps its own help text (a doc comment on its argument struct would
    /// replace it).
    #[test]
    fn deferred_subcommands_keep_their_help_and_the_globals() {
        let mut cmd = Cli::command();
        cmd.build();
        let ours = cmd
            .get_subcommands()
            .filter(|s| !s.is_hide_set() && s.get_name() != "help");
        for sub in ours {
            let about = sub.get_about().map(ToString::to_string).unwrap_or_default();
            assert!(
                !about.is_empty() && !about.contains("arguments"),
                "{}: about {about:?}",
                sub.get_name()
            );
            for global in ["config", "verbose", "timeout"] {
                assert!(
                    sub.get_arguments().any(|a| a.get_id() == global),
                    "{} lacks --{global}",
                    sub.get_name()
                );
            }
        }
    }
}
