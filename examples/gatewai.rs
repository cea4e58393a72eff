//! The command-line runner (filled in by the hosts issue).
fn main() {}
