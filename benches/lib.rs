//! Shared code for the criterion benchmarks.
