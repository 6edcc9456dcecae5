//! In-process benchmarks of the library pipeline: `encrypt_text` and
//! `decrypt_text` on one Secret with 1, 1,000, 10,000 and 100,000 `data`
//! values (the middle two show whether time grows linearly), and with one
//! 1 MiB value; the data key is wrapped for a fresh age X25519 key.
//!
//! `cargo bench --bench codec`; whole-process timings (start-up, file I/O,
//! key file) are in `scripts/bench-process.sh`. See PERFORMANCE.md.
//!
//! Inputs are generated here, before timing starts. Each case stops after
//! `MAX_TIME` seconds of sampling, so the 100,000-value cases take a few
//! samples instead of the default hundred.

use age::secrecy::ExposeSecret as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use divan::Bencher;
use divan::counter::{BytesCount, ItemsCount};
use ksec::keys::{KeyChange, Keyring};
use ksec::pipeline::{self, DecryptOptions, KeyPolicy, SealOptions, Session};

fn main() {
    divan::main();
}

/// Value counts of the many-values cases.
const COUNTS: [usize; 4] = [1, 1_000, 10_000, 100_000];

/// Length of the big value: 1 MiB of base64 text (768 KiB decoded).
const BIG: usize = 1 << 20;

/// Per-case sampling budget, in seconds.
const MAX_TIME: f64 = 5.0;

/// One age identity and the `--key` change that names its recipient.
///
/// Each iteration gets a fresh [`Session`] (made outside the timing), as one
/// `ksec` run does: a keyring remembers the data keys it has unwrapped, so
/// reusing one would leave the age unwrap out of every decrypt but the first.
struct Key {
    identity: String,
    change: KeyChange,
}

impl Key {
    fn new() -> Key {
        let identity = age::x25519::Identity::generate();
        let recipient = identity.to_public().to_string();
        Key {
            identity: format!(
                "# public key: {recipient}\n{}\n",
                identity.to_string().expose_secret()
            ),
            change: KeyChange::parse(&[format!("age:{recipient}")]).expect("key change"),
        }
    }

    fn session(&self) -> Session {
        Session::quiet(Keyring::with_age_identities(&self.identity).expect("identity text"))
    }

    fn encrypt(&self, session: &Session, text: &str) -> String {
        let options = SealOptions {
            policy: KeyPolicy {
                change: Some(&self.change),
                ..KeyPolicy::default()
            },
            ..SealOptions::default()
        };
        pipeline::encrypt_text(session, "bench.yaml", text, options)
            .unwrap_or_else(|e| panic!("encrypt: {e:?}"))
            .text
    }

    fn decrypt(&self, session: &Session, text: &str) -> String {
        pipeline::decrypt_text(session, "bench.yaml", text, DecryptOptions::default())
            .unwrap_or_else(|e| panic!("decrypt: {e:?}"))
            .text
            .to_string()
    }
}

/// Deterministic filler bytes (xorshift), so runs see the same input.
fn filler(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

const HEADER: &str = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: bench\n  namespace: default\ntype: Opaque\ndata:\n";

/// A Secret with `n` `data` values of 24 bytes each (32 base64 characters).
fn many_values(n: usize) -> String {
    let mut s = String::from(HEADER);
    for i in 0..n {
        let value = STANDARD.encode(filler(24, i as u64 + 1));
        s.push_str(&format!("  key-{i:06}: {value}\n"));
    }
    s
}

/// A Secret with one `data` value of `BIG` base64 characters.
fn one_big_value() -> String {
    let value = STANDARD.encode(filler(BIG / 4 * 3, 42));
    assert_eq!(value.len(), BIG);
    format!("{HEADER}  blob: {value}\n")
}

fn bench_encrypt(bencher: Bencher, text: &str, values: usize) {
    let key = Key::new();
    bencher
        .counter(BytesCount::of_str(text))
        .counter(ItemsCount::new(values))
        .with_inputs(|| key.session())
        .bench_local_refs(|session| key.encrypt(session, divan::black_box(text)));
}

fn bench_decrypt(bencher: Bencher, text: &str, values: usize) {
    let key = Key::new();
    let sealed = key.encrypt(&key.session(), text);
    assert_eq!(key.decrypt(&key.session(), &sealed), text, "round trip");
    bencher
        .counter(BytesCount::of_str(&sealed))
        .counter(ItemsCount::new(values))
        .with_inputs(|| key.session())
        .bench_local_refs(|session| key.decrypt(session, divan::black_box(&sealed)));
}

/// `encrypt_text`, one Secret with `n` values.
#[divan::bench(args = COUNTS, max_time = MAX_TIME)]
fn encrypt_values(bencher: Bencher, n: usize) {
    bench_encrypt(bencher, &many_values(n), n);
}

/// `decrypt_text`, one Secret with `n` values.
#[divan::bench(args = COUNTS, max_time = MAX_TIME)]
fn decrypt_values(bencher: Bencher, n: usize) {
    bench_decrypt(bencher, &many_values(n), n);
}

/// `encrypt_text`, one Secret with one 1 MiB value.
#[divan::bench(max_time = MAX_TIME)]
fn encrypt_1mib_value(bencher: Bencher) {
    bench_encrypt(bencher, &one_big_value(), 1);
}

/// `decrypt_text`, one Secret with one 1 MiB value.
#[divan::bench(max_time = MAX_TIME)]
fn decrypt_1mib_value(bencher: Bencher) {
    bench_decrypt(bencher, &one_big_value(), 1);
}
