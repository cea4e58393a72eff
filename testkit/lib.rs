//! Test support shared by the Gatewai crates' test suites. A dev-dependency only: no library
//! crate depends on it.
//!
//! [`fuzz_runner`] makes the proptest runner of the generated-input suites
//! (`gatewai-nodes/tests/untrusted.rs`, `gatewai-store/tests/differential.rs`), so that they
//! read the same settings from the environment:
//!
//! - `GATEWAI_FUZZ_CASES=n` runs `n` cases instead of the suite's own count;
//! - `GATEWAI_FUZZ_SEED=random` draws a fresh seed; otherwise the cases are the same on every
//!   run (a fixed seed), so that CI is repeatable.
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

/// A proptest runner with `cases` cases (or `GATEWAI_FUZZ_CASES`), seeded with a fixed seed
/// unless `GATEWAI_FUZZ_SEED=random`; failures are not persisted to files.
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
    if std::env::var("GATEWAI_FUZZ_SEED").as_deref() == Ok("random") {
        TestRunner::new(config)
    } else {
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha))
    }
}
