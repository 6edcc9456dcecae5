//! Tampering with an encrypted file must fail with the documented exit code
//! and print nothing to stdout, whatever part was changed.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::support::TestEnv;

const SECRET: &str = "\
apiVersion: v1
kind: Secret
metadata:
  name: tamper
data:
  username: YWRtaW4=
  password: czNjcjN0LXBAc3N3MHJkIQ==
  empty: \"\"
stringData:
  token: a-long-clear-token-value-that-spans-more-than-48-bytes-of-text
  short: hi
";

/// Exit codes from the README's table.
const INPUT: i32 = 3;
const STATE: i32 = 4;
const INTEGRITY: i32 = 5;
const KEY: i32 = 6;

struct Case {
    env: TestEnv,
    encrypted: String,
}

impl Case {
    fn new() -> Case {
        let env = TestEnv::new();
        let encrypted = env.encrypt(SECRET);
        Case { env, encrypted }
    }

    /// Decrypts `text` and asserts the exit code and an empty stdout.
    fn refuses(&self, text: &str, code: i32, what: &str) {
        let out = self
            .env
            .ksec()
            .arg("decrypt")
            .write_stdin(text)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{what}: wrong exit code; stderr: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{what}: something reached stdout");
        assert_eq!(
            stderr
                .lines()
                .filter(|l| l.starts_with("ksec: error:"))
                .count(),
            1,
            "{what}: {stderr}"
        );
        // Also through a file with -i: the file must stay as it was.
        let path = self.env.write("tampered.yaml", text);
        let out = self
            .env
            .ksec()
            .args(["decrypt", "-i"])
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(code), "{what} (-i)");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            text,
            "{what}: -i changed the file"
        );
    }

    /// (line index, value token) of every encrypted value.
    fn value_lines(&self) -> Vec<(usize, String)> {
        self.encrypted
            .lines()
            .enumerate()
            .filter_map(|(i, l)| Some((i, l.split_once(": ")?.1.to_owned())))
            .filter(|(_, v)| ksec::formats::kubesec::codec::looks_encrypted(v))
            .collect()
    }

    fn replace_line(&self, index: usize, new: &str) -> String {
        let mut lines: Vec<String> = self.encrypted.lines().map(str::to_owned).collect();
        lines[index] = new.to_owned();
        lines.join("\n") + "\n"
    }
}

/// Flips one bit of the `byte`-th decoded byte of a base64 part.
fn flip(part: &str, byte: usize, bit: u8) -> String {
    let mut b = B64.decode(part).unwrap();
    let i = byte % b.len();
    b[i] ^= 1 << bit;
    B64.encode(b)
}

#[test]
fn untouched_file_decrypts() {
    let c = Case::new();
    assert_eq!(c.env.decrypt(&c.encrypted), SECRET);
}

#[test]
fn any_flipped_bit_in_ciphertext_iv_or_tag_is_refused() {
    let c = Case::new();
    let lines: Vec<String> = c.encrypted.lines().map(str::to_owned).collect();
    for (index, token) in c.value_lines() {
        let parts: Vec<&str> = token.split('.').collect();
        for p in 0..parts.len() {
            for (byte, bit) in [(0, 0), (5, 3), (usize::MAX / 2, 7)] {
                let mut changed: Vec<String> = parts.iter().map(|s| s.to_string()).collect();
                changed[p] = flip(parts[p], byte, bit);
                let key = lines[index].split_once(": ").unwrap().0;
                let text = c.replace_line(index, &format!("{key}: {}", changed.join(".")));
                c.refuses(
                    &text,
                    INTEGRITY,
                    &format!("line {index} part {p} byte {byte} bit {bit}"),
                );
            }
        }
    }
}

#[test]
fn flipped_mac_is_refused() {
    let c = Case::new();
    let (index, line) = c
        .encrypted
        .lines()
        .enumerate()
        .find(|(_, l)| l.starts_with("# kubesec:mac:"))
        .unwrap();
    let mac = line.trim_start_matches("# kubesec:mac:");
    let (iv, tag) = mac.split_once('.').unwrap();
    for (iv2, tag2) in [
        (flip(iv, 0, 0), tag.to_owned()),
        (iv.to_owned(), flip(tag, 15, 7)),
    ] {
        let text = c.replace_line(index, &format!("# kubesec:mac:{iv2}.{tag2}"));
        c.refuses(&text, INTEGRITY, "mac");
    }
}

#[test]
fn swapped_values_are_refused() {
    let c = Case::new();
    let v = c.value_lines();
    let (a, b) = (&v[0], &v[1]);
    let lines: Vec<&str> = c.encrypted.lines().collect();
    let key_a = lines[a.0].split_once(": ").unwrap().0;
    let key_b = lines[b.0].split_once(": ").unwrap().0;
    let text = c.replace_line(a.0, &format!("{key_a}: {}", b.1));
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines[b.0] = format!("{key_b}: {}", a.1);
    c.refuses(&(lines.join("\n") + "\n"), INTEGRITY, "swap within data");
    // across sections: a data value moved under a stringData key name
    let last = v.last().unwrap();
    let key_last = c
        .encrypted
        .lines()
        .nth(last.0)
        .unwrap()
        .split_once(": ")
        .unwrap()
        .0
        .to_owned();
    c.refuses(
        &c.replace_line(last.0, &format!("{key_last}: {}", v[0].1)),
        INTEGRITY,
        "swap across sections",
    );
}

#[test]
fn renamed_key_is_refused() {
    let c = Case::new();
    let (index, token) = &c.value_lines()[0];
    c.refuses(
        &c.replace_line(*index, &format!("  renamed: {token}")),
        INTEGRITY,
        "renamed key",
    );
}

#[test]
fn deleted_value_line_is_refused() {
    let c = Case::new();
    for (index, _) in c.value_lines() {
        let text: String = c
            .encrypted
            .split_inclusive('\n')
            .enumerate()
            .filter(|(i, _)| *i != index)
            .map(|(_, l)| l)
            .collect();
        c.refuses(&text, INTEGRITY, &format!("deleted line {index}"));
    }
}

#[test]
fn value_from_another_file_is_refused() {
    let c = Case::new();
    let other = c.env.encrypt(SECRET);
    let theirs: Vec<String> = other.lines().map(str::to_owned).collect();
    let (index, _) = c.value_lines()[0];
    c.refuses(
        &c.replace_line(index, &theirs[index]),
        INTEGRITY,
        "value from another file (other data key)",
    );
}

#[test]
fn footer_changes_are_refused() {
    let c = Case::new();
    let lines: Vec<&str> = c.encrypted.lines().collect();
    let find = |prefix: &str| lines.iter().position(|l| l.starts_with(prefix)).unwrap();
    let without = |i: usize| -> String {
        lines
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, l)| format!("{l}\n"))
            .collect()
    };
    let v = find("# kubesec:v:");
    let mac = find("# kubesec:mac:");
    let key = find("# kubesec:age:");
    c.refuses(&without(v), INPUT, "deleted version line");
    c.refuses(&without(mac), INTEGRITY, "deleted MAC line");
    c.refuses(&without(key), INPUT, "deleted the only key line");
    // A downgrade to a format without MAC is refused by default.
    c.refuses(
        &c.replace_line(v, "# kubesec:v:1"),
        INTEGRITY,
        "downgrade to v1",
    );
    c.refuses(
        &c.replace_line(v, "# kubesec:v:7"),
        INPUT,
        "unknown version",
    );
    c.refuses(
        &c.replace_line(v, "# kubesec:nonsense"),
        INPUT,
        "garbled line",
    );
    // The key line names a recipient nobody has, or carries a damaged blob.
    let other = age::x25519::Identity::generate().to_public().to_string();
    let blob = lines[key].rsplit_once(':').unwrap().1;
    c.refuses(
        &c.replace_line(key, &format!("# kubesec:age:{other}:{blob}")),
        KEY,
        "key id changed",
    );
    let damaged = flip(blob, 40, 1);
    c.refuses(
        &c.replace_line(key, &format!("# kubesec:age:{}:{damaged}", c.env.recipient)),
        KEY,
        "wrapped data key damaged",
    );
    // Removing the kubesec lines but leaving ksec's own record is a broken footer.
    let kubesec_lines_removed: String = lines
        .iter()
        .filter(|l| !l.starts_with("# kubesec:"))
        .map(|l| format!("{l}\n"))
        .collect();
    c.refuses(
        &kubesec_lines_removed,
        INPUT,
        "kubesec footer lines removed",
    );
    // Removing the whole footer leaves encrypted values without a footer.
    let no_footer: String = lines
        .iter()
        .filter(|l| !l.starts_with("# kubesec:") && !l.starts_with("# ksec:"))
        .map(|l| format!("{l}\n"))
        .collect();
    c.refuses(&no_footer, INTEGRITY, "footer removed");
}

#[test]
fn injected_clear_value_is_refused() {
    let c = Case::new();
    let (index, token) = c.value_lines()[0].clone();
    let key = c
        .encrypted
        .lines()
        .nth(index)
        .unwrap()
        .split_once(": ")
        .unwrap()
        .0
        .to_owned();
    let text = c.replace_line(index, &format!("{key}: {token}\n  injected: aGVsbG8="));
    c.refuses(&text, STATE, "clear value injected among encrypted ones");
}
