//! sops' MAC: a SHA-512 over the bytes of the values (no keys, no
//! separators), in file order across all documents, as upper-case hex,
//! encrypted under the data key with `lastmodified` as associated data.
//! With `mac_only_encrypted` only encrypted values count, after a fixed
//! prefix (SHA-256 of `sops`).

use sha2::{Digest as _, Sha256, Sha512};

/// The running hash.
pub struct Mac {
    hash: Sha512,
    only_encrypted: bool,
}

impl Mac {
    /// A MAC for a file with or without `mac_only_encrypted`.
    pub fn new(only_encrypted: bool) -> Mac {
        let mut hash = Sha512::new();
        if only_encrypted {
            hash.update(Sha256::digest(b"sops"));
        }
        Mac {
            hash,
            only_encrypted,
        }
    }

    /// Adds a value (not a comment, not null): `encrypted` when the rule
    /// encrypts it.
    pub fn add(&mut self, bytes: &[u8], encrypted: bool) {
        if encrypted || !self.only_encrypted {
            self.hash.update(bytes);
        }
    }

    /// The digest as sops writes it.
    pub fn hex(self) -> String {
        self.hash
            .finalize()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked vector of the SOPS notes (sample 02: the values of a
    /// Secret under `encrypted_regex`, clear ones included).
    #[test]
    fn sample_digest() {
        let mut m = Mac::new(false);
        for v in [
            "v1",
            "Secret",
            "db-credentials",
            "prod",
            "team-db",
            "3",
            "Opaque",
            "czNjcjN0IQ==",
            "YWRtaW4=",
            "5432",
            "True",
            "0.5",
            "",
            "host: db.prod.svc\nport: 5432\n",
        ] {
            m.add(v.as_bytes(), true);
        }
        assert_eq!(
            m.hex(),
            "6329D28E07FC0B4F7DA13ED1B09D0C8E432C91C72DCE7B012988FA046932789ABA0E2B564373375C9F12ADA67B884436A811DAEFD5C6997218DE5043267A0BB0"
        );
        let mut only = Mac::new(true);
        for v in [
            "czNjcjN0IQ==",
            "YWRtaW4=",
            "5432",
            "True",
            "0.5",
            "host: db.prod.svc\nport: 5432\n",
        ] {
            only.add(v.as_bytes(), true);
        }
        only.add(b"not counted", false);
        assert!(only.hex().starts_with("F211C4DB6E76818BA39B084BB632977E"));
    }
}
