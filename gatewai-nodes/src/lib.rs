//! Built-in Gatewai node types, each behind a cargo feature.
