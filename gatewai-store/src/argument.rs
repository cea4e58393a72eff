//! Checks of caller-supplied arguments shared by the backends.
//!
//! Every backend refuses the same arguments with the same error, whatever its database would
//! take: PostgreSQL's `text` cannot hold a NUL character (SQLite's and the memory backend's
//! can), so a NUL in an id or a name is refused everywhere, naming the field; a number beyond
//! its column (an asset's width past `i32`, its size past `i64`) or one SQLite cannot keep (a
//! NaN becomes NULL there) is refused everywhere too, rather than stored changed by some
//! backends only.

use crate::error::{Error, Result};
use crate::model::{NewUser, NewWorkflow, WorkflowUpdate};
use gatewai_core::FileAsset;

/// Fails when an id is empty, longer than 255 bytes or holds a NUL character.
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
    text(field, value)
}

/// Fails when a text holds a NUL character.
pub(crate) fn text(field: &'static str, value: &str) -> Result<()> {
    match value.contains('\0') {
        true => Err(Error::InvalidInput {
            field,
            message: "must not contain a NUL character".into(),
        }),
        false => Ok(()),
    }
}

/// Whether an id a caller looks up could name a stored row: no backend stores a NUL, so a
/// lookup of an id with one finds nothing, on every backend, without asking the database
/// (PostgreSQL would refuse the NUL rather than find nothing).
#[cfg(feature = "sqlx")]
pub(crate) fn may_be_stored(id: &str) -> bool {
    !id.contains('\0')
}

/// Checks the ids of a grant of an asset to a user.
pub(crate) fn grant(asset_id: &str, user_id: &str) -> Result<()> {
    non_empty("asset id", asset_id)?;
    non_empty("user id", user_id)
}

/// [`text`] for an optional text.
fn optional_text(field: &'static str, value: Option<&str>) -> Result<()> {
    value.map_or(Ok(()), |v| text(field, v))
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

/// Checks a user to store.
pub(crate) fn user(user: &NewUser) -> Result<()> {
    non_empty("user id", &user.id)?;
    text("email", &user.email)?;
    optional_text("first name", user.first_name.as_deref())?;
    optional_text("last name", user.last_name.as_deref())
}

/// Checks a new workflow's name; returns its id (the caller's, checked, or a fresh UUID).
pub(crate) fn new_workflow(workflow: &NewWorkflow) -> Result<String> {
    text("workflow name", &workflow.name)?;
    new_id(workflow.id.clone())
}

/// Checks a workflow update.
pub(crate) fn workflow_update(update: &WorkflowUpdate) -> Result<()> {
    optional_text("workflow name", update.name.as_deref())
}

/// Checks an asset record to store, and its owner.
pub(crate) fn asset(asset: &FileAsset, owner_id: Option<&str>) -> Result<()> {
    non_empty("asset id", &asset.id)?;
    text("asset name", &asset.name)?;
    text("asset bucket", &asset.bucket)?;
    text("asset key", &asset.key)?;
    text("asset mime type", &asset.mime_type)?;
    optional_text("asset owner", owner_id)?;
    within("asset size", asset.size, i64::MAX as u64)?;
    for (field, value) in [("asset width", asset.width), ("asset height", asset.height)] {
        within(field, u64::from(value.unwrap_or(0)), i32::MAX as u64)?;
    }
    for (field, value) in [("asset fps", asset.fps), ("asset duration", asset.duration)] {
        match value {
            Some(v) if !v.is_finite() || v < 0.0 => {
                return Err(Error::InvalidInput {
                    field,
                    message: format!("is {v}; a finite number of at least 0 is needed"),
                });
            }
            _ => {}
        }
    }
    Ok(())
}

/// Fails when a number is beyond what its column holds.
fn within(field: &'static str, value: u64, max: u64) -> Result<()> {
    match value > max {
        true => Err(Error::InvalidInput {
            field,
            message: format!("is {value}; at most {max} can be stored"),
        }),
        false => Ok(()),
    }
}

/// Checks an execution record's ids and type (its label and error are free text, which the
/// store keeps without NULs).
pub(crate) fn execution(execution: &gatewai_core::NodeExecution) -> Result<()> {
    non_empty("node id", &execution.node_id)?;
    text("node type", &execution.node_type)
}

/// Checks a run record's ids and cache scope (its error is free text, which the store keeps without NULs).
pub(crate) fn run(run: &gatewai_core::RunRecord) -> Result<()> {
    non_empty("run id", &run.id)?;
    optional_text("workflow id", run.workflow_id.as_deref())?;
    optional_text("cache scope", run.cache_scope.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asset_numbers_beyond_their_columns_are_refused_naming_the_field() {
        let fine = FileAsset {
            id: "a".into(),
            size: i64::MAX as u64,
            width: Some(i32::MAX as u32),
            height: Some(0),
            fps: Some(0.0),
            duration: Some(1e300),
            ..FileAsset::default()
        };
        assert!(asset(&fine, None).is_ok());
        type Change = fn(&mut FileAsset);
        let cases: [(&str, Change); 7] = [
            ("asset size", |a| a.size = i64::MAX as u64 + 1),
            ("asset width", |a| a.width = Some(i32::MAX as u32 + 1)),
            ("asset height", |a| a.height = Some(u32::MAX)),
            ("asset fps", |a| a.fps = Some(f64::NAN)),
            ("asset fps", |a| a.fps = Some(-1.0)),
            ("asset duration", |a| a.duration = Some(f64::INFINITY)),
            ("asset duration", |a| a.duration = Some(f64::NEG_INFINITY)),
        ];
        for (field, change) in cases {
            let mut bad = fine.clone();
            change(&mut bad);
            let err = asset(&bad, None).unwrap_err();
            assert!(err.to_string().contains(field), "{field}: {err}");
            assert_eq!(err.kind(), crate::ErrorKind::InvalidInput);
        }
    }

    #[test]
    fn nul_characters_are_refused_naming_the_field() {
        let err = non_empty("run id", "a\0b").unwrap_err();
        assert!(err.to_string().contains("run id"), "{err}");
        assert!(err.to_string().contains("NUL"), "{err}");
        let mut u = NewUser::new("u1", "u1@example.com");
        assert!(user(&u).is_ok());
        u.last_name = Some("Nul\0".into());
        assert!(user(&u).unwrap_err().to_string().contains("last name"));
        let update = WorkflowUpdate {
            name: Some("\0".into()),
            ..WorkflowUpdate::default()
        };
        assert!(
            workflow_update(&update)
                .unwrap_err()
                .to_string()
                .contains("workflow name")
        );
    }
}
