//! `ksec keygen`: create the local age identity.

use crate::error::{Exit, Failure, Result};
use crate::io;
use crate::keys::age::{self, GenerateError};

/// Runs `keygen`: writes a new identity and prints its recipient on stdout.
pub fn run() -> Result<()> {
    let path = age::identity_path().map_err(|m| Failure::new(Exit::Usage, m))?;
    match age::generate_identity_file(&path) {
        Ok(recipient) => {
            super::note(&format!(
                "wrote a new age identity to {}; back it up: files encrypted to it cannot be opened without it",
                path.display()
            ));
            io::write_stdout(format!("{recipient}\n").as_bytes())
        }
        Err(GenerateError::Exists) => Err(Failure::new(
            Exit::State,
            format!(
                "{}: an identity exists already; not overwriting it",
                path.display()
            ),
        )
        .hint("set KSEC_AGE_KEY_FILE to write a new identity elsewhere")),
        Err(GenerateError::Io(m)) => Err(Failure::new(Exit::Io, m)),
    }
}

/// The current UTC time as RFC 3339 (`2006-01-02T15:04:05Z`), as age-keygen
/// writes it in the `# created:` line.
pub fn rfc3339_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn civil_dates() {
        assert_eq!(super::civil_from_days(0), (1970, 1, 1));
        assert_eq!(super::civil_from_days(20_513), (2026, 3, 1));
        assert_eq!(super::civil_from_days(11_016), (2000, 2, 29));
    }
}
