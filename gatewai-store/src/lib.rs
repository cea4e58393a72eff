//! Storage backends for Gatewai.
