//! Random tokens from the operating system's generator: payment keys,
//! order ids for the gateway, idempotency keys, and retry jitter.

use std::fmt::Write;

/// `bytes` random bytes as lowercase hex (`2 × bytes` characters).
pub(crate) fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    fill(&mut buf);
    buf.iter()
        .fold(String::with_capacity(bytes * 2), |mut out, byte| {
            let _ = write!(out, "{byte:02x}");
            out
        })
}

/// A random `u64`.
pub(crate) fn random_u64() -> u64 {
    let mut buf = [0u8; 8];
    fill(&mut buf);
    u64::from_le_bytes(buf)
}

fn fill(buf: &mut [u8]) {
    // The OS generator fails only on platforms without one, where nothing
    // sensible can go on: a payment key must never be guessable.
    getrandom::fill(buf).expect("the operating system's random generator failed");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_hex_of_the_asked_length_and_differ() {
        let a = random_hex(16);
        let b = random_hex(16);
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
