//! In-process benchmarks of SealedSecrets (issue 14): sealing one Secret
//! with 1,000 values of 32 random bytes for an RSA-4096 certificate (one
//! RSA-OAEP public-key operation per value: the cost), the same values
//! sealed one by one without the manifest work, and opening them again
//! (one RSA-4096 private-key operation per value).
//!
//! `cargo bench --bench sealed`; `benches/kubesealpy_seal.py` times
//! kubesealpy on the same input. See PERFORMANCE.md.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use divan::Bencher;
use divan::counter::ItemsCount;
use ksec::keys::Keyring;
use ksec::pipeline::{self, Session};
use ksec::sealed::{self, Certificate, Format, RecoveryKeys, SealOptions, UnsealOptions};
use rand::RngCore as _;

fn main() {
    divan::main();
}

/// Values per Secret.
const VALUES: usize = 1_000;

fn testdata(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/sealed")
        .join(name);
    std::fs::read_to_string(path).expect("testdata/sealed")
}

fn cert() -> Certificate {
    Certificate::from_pem(&testdata("tls.crt")).expect("certificate")
}

/// One Secret, `VALUES` `data` values of 32 random bytes each.
fn secret() -> String {
    let mut s = String::from(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: bench\n  namespace: prod\ndata:\n",
    );
    let mut rng = rand::thread_rng();
    for i in 0..VALUES {
        let mut v = [0u8; 32];
        rng.fill_bytes(&mut v);
        s.push_str(&format!("  k{i:04}: {}\n", STANDARD.encode(v)));
    }
    s
}

fn session() -> Session {
    Session::quiet(Keyring::with_age_identities("").expect("empty keyring"))
}

fn options(cert: &Certificate) -> SealOptions<'_> {
    SealOptions {
        cert,
        scope: None,
        namespace: None,
        name: None,
        allow_empty_data: false,
        format: Format::Yaml,
    }
}

#[divan::bench(sample_count = 10)]
fn seal_secret_1000_values(bencher: Bencher) {
    let cert = cert();
    let stream = pipeline::parse("bench.yaml", secret()).expect("stream");
    let session = session();
    bencher.counter(ItemsCount::new(VALUES)).bench_local(|| {
        sealed::seal_streams(&session, std::slice::from_ref(&stream), &options(&cert))
            .expect("seal")
    });
}

#[divan::bench(sample_count = 10)]
fn seal_1000_values_alone(bencher: Bencher) {
    let cert = cert();
    let value = [7u8; 32];
    bencher.counter(ItemsCount::new(VALUES)).bench_local(|| {
        for _ in 0..VALUES {
            divan::black_box(sealed::seal_value(&cert, "prod/bench", &value).expect("seal"));
        }
    });
}

#[divan::bench(sample_count = 3)]
fn unseal_secret_1000_values(bencher: Bencher) {
    let cert = cert();
    let session = session();
    let stream = pipeline::parse("bench.yaml", secret()).expect("stream");
    let sealed = sealed::seal_streams(&session, std::slice::from_ref(&stream), &options(&cert))
        .expect("seal")
        .remove(0);
    let sealed = pipeline::parse("bench.sealed.yaml", sealed.text).expect("stream");
    let dir = tempfile::tempdir().expect("temp dir");
    let key = dir.path().join("tls.key");
    std::fs::write(&key, testdata("tls.key")).expect("key file");
    let keys = RecoveryKeys::load(&session, &[ksec::io::Source::File(key)], 1 << 20).expect("key");
    bencher.counter(ItemsCount::new(VALUES)).bench_local(|| {
        sealed::unseal_streams(
            std::slice::from_ref(&sealed),
            &keys,
            &UnsealOptions::default(),
        )
        .expect("unseal")
    });
}
