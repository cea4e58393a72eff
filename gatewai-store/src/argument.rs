//! Checks of caller-supplied arguments shared by the backends.

use crate::error::{Error, Result};

/// Fails when an id is empty or longer than 255 bytes.
pub(crate) fn non_empty(field: &'static str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::InvalidInput {
            field,
            message: "must not be empty".into(),
        });
    }
    if value.len() > 255 {
        return Err(Error::InvalidInput {
            field,
            message: format!("is {} bytes long; at most 255 are allowed", value.len()),
        });
    }
    Ok(())
}

/// The id a caller chose (checked), or a fresh UUID.
pub(crate) fn new_id(id: Option<String>) -> Result<String> {
    match id {
        Some(id) => {
            non_empty("id", &id)?;
            Ok(id)
        }
        None => Ok(uuid::Uuid::new_v4().to_string()),
    }
}
