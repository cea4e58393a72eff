//! Placeholder, filled in by its issue.

use gatewai_core::NodeRegistry;

/// Registers this module's node types.
pub fn register(registry: &mut NodeRegistry) -> gatewai_core::Result<()> {
    let _ = registry;
    Ok(())
}
