//! Shamir secret sharing of the data key over GF(2⁸), as sops splits it
//! between key groups.
//!
//! The field is the AES field (x⁸ + x⁴ + x³ + x + 1). Each byte of the
//! secret gets its own random polynomial of degree `threshold − 1` whose
//! constant term is the byte; share `i` (0-based group) is the 32
//! evaluations at `x = i + 1` followed by that `x` byte. Recovery is
//! Lagrange interpolation at 0 over any `threshold` shares.

use rand::RngCore as _;
use zeroize::Zeroizing;

/// Why shares could not be made or combined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShamirError {
    /// Bad parameters.
    #[error("{0}")]
    Parameters(&'static str),
    /// Shares of different lengths, too short, or with the same `x`.
    #[error("{0}")]
    Shares(&'static str),
}

/// Multiplication in GF(2⁸) with the AES reduction polynomial (constant
/// time: no branches or table lookups on secret bytes).
fn mul(a: u8, b: u8) -> u8 {
    let mut acc = 0u8;
    for i in (0..8).rev() {
        let bit = (b >> i) & 1;
        let a_or_zero = 0u8.wrapping_sub(bit) & a;
        let reduce = 0u8.wrapping_sub(acc >> 7) & 0x1b;
        acc = a_or_zero ^ (reduce ^ acc.wrapping_add(acc));
    }
    acc
}

/// The inverse: a²⁵⁴.
fn inv(a: u8) -> u8 {
    let mut result = 1u8;
    let mut base = a;
    let mut e = 254u8;
    while e > 0 {
        if e & 1 == 1 {
            result = mul(result, base);
        }
        base = mul(base, base);
        e >>= 1;
    }
    result
}

/// Splits `secret` into `parts` shares, any `threshold` of which recover it.
pub fn split(
    secret: &[u8],
    parts: usize,
    threshold: usize,
) -> Result<Vec<Zeroizing<Vec<u8>>>, ShamirError> {
    if parts < threshold {
        return Err(ShamirError::Parameters(
            "the threshold is larger than the number of key groups",
        ));
    }
    if parts > 255 {
        return Err(ShamirError::Parameters("at most 255 key groups"));
    }
    if threshold < 2 {
        return Err(ShamirError::Parameters("the threshold must be at least 2"));
    }
    if secret.is_empty() {
        return Err(ShamirError::Parameters("cannot split an empty secret"));
    }
    let mut out: Vec<Zeroizing<Vec<u8>>> = (0..parts)
        .map(|i| {
            let mut v = vec![0u8; secret.len() + 1];
            v[secret.len()] = i as u8 + 1;
            Zeroizing::new(v)
        })
        .collect();
    let mut coefficients = Zeroizing::new(vec![0u8; threshold]);
    for (idx, &byte) in secret.iter().enumerate() {
        coefficients[0] = byte;
        rand::thread_rng().fill_bytes(&mut coefficients[1..]);
        for (i, share) in out.iter_mut().enumerate() {
            let x = i as u8 + 1;
            // Horner's rule.
            let mut y = coefficients[threshold - 1];
            for c in coefficients[..threshold - 1].iter().rev() {
                y = mul(y, x) ^ c;
            }
            share[idx] = y;
        }
    }
    Ok(out)
}

/// Recovers the secret from shares (each ending in its `x` byte).
pub fn combine(shares: &[&[u8]]) -> Result<Zeroizing<Vec<u8>>, ShamirError> {
    if shares.len() < 2 {
        return Err(ShamirError::Shares("less than two shares"));
    }
    let len = shares[0].len();
    if len < 2 || shares.iter().any(|s| s.len() != len) {
        return Err(ShamirError::Shares("the shares differ in length"));
    }
    let xs: Vec<u8> = shares.iter().map(|s| s[len - 1]).collect();
    for (i, x) in xs.iter().enumerate() {
        if xs[..i].contains(x) {
            return Err(ShamirError::Shares("two shares of the same key group"));
        }
    }
    let mut secret = Zeroizing::new(vec![0u8; len - 1]);
    for (idx, out) in secret.iter_mut().enumerate() {
        let mut acc = 0u8;
        for (i, share) in shares.iter().enumerate() {
            let mut basis = 1u8;
            for (j, &xj) in xs.iter().enumerate() {
                if i != j {
                    // (0 − xj) / (xi − xj); subtraction is xor.
                    basis = mul(basis, mul(xj, inv(xs[i] ^ xj)));
                }
            }
            acc ^= mul(share[idx], basis);
        }
        *out = acc;
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_and_round_trips() {
        // AES field facts: 0x53 · 0xCA = 1 (FIPS-197 §4.2 example inverse).
        assert_eq!(mul(0x53, 0xca), 1);
        assert_eq!(inv(0x53), 0xca);
        assert_eq!(mul(0x57, 0x83), 0xc1);
        let secret: Vec<u8> = (0..32).collect();
        for (parts, threshold) in [(2, 2), (3, 2), (5, 3)] {
            let shares = split(&secret, parts, threshold).unwrap();
            assert!(shares.iter().all(|s| s.len() == 33));
            for skip in 0..parts {
                let some: Vec<&[u8]> = shares
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| parts == threshold || *i != skip)
                    .take(threshold)
                    .map(|(_, s)| s.as_slice())
                    .collect();
                assert_eq!(*combine(&some).unwrap(), secret);
            }
        }
        assert!(split(&secret, 1, 2).is_err());
        assert!(split(&secret, 3, 1).is_err());
        let shares = split(&secret, 2, 2).unwrap();
        assert!(combine(&[&shares[0], &shares[0]]).is_err());
        assert!(combine(&[&shares[0]]).is_err());
    }
}
