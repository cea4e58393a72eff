//! Test support shared by the Gatewai crates' test suites. A dev-dependency only: no library
//! crate depends on it.
//!
//! [`fuzz_runner`] makes the proptest runner of the generated-input suites
//! (`gatewai-nodes/tests/untrusted.rs`, `gatewai-store/tests/differential.rs` and the server's
//! generated requests in `examples/tests/server.rs`), so that they read the same settings from
//! the environment:
//!
//! - `GATEWAI_FUZZ_CASES=n` runs `n` cases instead of the suite's own count;
//! - `GATEWAI_FUZZ_SEED=random` draws a fresh seed and prints it (a test's output is shown
//!   when it fails), `GATEWAI_FUZZ_SEED=<64 hex digits>` replays that seed; otherwise the cases
//!   are the same on every run (a fixed seed), so that CI is repeatable.
//!
//! ```
//! use proptest::strategy::Strategy;
//! let mut runner = gatewai_testkit::fuzz_runner(8);
//! runner
//!     .run(&(0u32..100).prop_map(|n| n * 2), |even| {
//!         proptest::prop_assert_eq!(even % 2, 0);
//!         Ok(())
//!     })
//!     .unwrap();
//! ```

use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use std::hash::{BuildHasher, Hasher};

/// A proptest runner with `cases` cases (or `GATEWAI_FUZZ_CASES`), seeded as the crate docs
/// say; failures are not persisted to files.
///
/// # Panics
/// If `GATEWAI_FUZZ_SEED` is neither `random` nor 64 hex digits.
pub fn fuzz_runner(cases: u32) -> TestRunner {
    let cases = std::env::var("GATEWAI_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let rng = match std::env::var("GATEWAI_FUZZ_SEED") {
        Err(_) => TestRng::deterministic_rng(RngAlgorithm::ChaCha),
        Ok(seed) => {
            let seed = match seed.as_str() {
                "random" => random_seed(),
                hex => parse_seed(hex).unwrap_or_else(|| {
                    panic!("GATEWAI_FUZZ_SEED is `random` or 64 hex digits, not `{hex}`")
                }),
            };
            let hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
            eprintln!("GATEWAI_FUZZ_SEED={hex} replays these cases");
            TestRng::from_seed(RngAlgorithm::ChaCha, &seed)
        }
    };
    TestRunner::new_with_rng(config, rng)
}

/// 32 bytes from the standard library's randomly keyed hasher (fresh keys for each).
fn random_seed() -> [u8; 32] {
    let mut seed = [0; 32];
    for (i, chunk) in seed.chunks_mut(8).enumerate() {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_usize(i);
        chunk.copy_from_slice(&hasher.finish().to_le_bytes());
    }
    seed
}

/// A seed written as 64 hex digits.
fn parse_seed(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut seed = [0; 32];
    for (byte, pair) in seed.iter_mut().zip(hex.as_bytes().chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_reads_back_from_its_hex_digits() {
        let seed = random_seed();
        let hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(parse_seed(&hex), Some(seed));
        assert_ne!(random_seed(), seed, "fresh keys each time");
        assert_eq!(parse_seed(&hex[1..]), None);
        assert_eq!(parse_seed(&format!("{}zz", &hex[2..])), None);
        assert_eq!(parse_seed(&"é".repeat(32)), None);
    }
}
