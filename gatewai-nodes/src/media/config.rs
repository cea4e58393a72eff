//! Reading and checking config fields; every problem names its field.

use gatewai_core::NodeError;
use serde_json::Value;
use std::ops::RangeInclusive;

/// A problem with a config field: (field, message).
pub(crate) type FieldError = (String, String);

/// Turns a field problem into a config error.
pub(crate) fn field_error((field, message): FieldError) -> NodeError {
    NodeError::config(&field, message)
}

/// The number in `field` (a JSON number or a numeric string); `None` when absent or null.
/// NaN, infinities and non-numbers are errors.
pub(crate) fn number(config: &Value, field: &str) -> Result<Option<f64>, FieldError> {
    let value = match config.get(field) {
        None | Some(Value::Null) => return Ok(None),
        Some(v) => v,
    };
    let n = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) if s.trim().is_empty() => return Ok(None),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if n.is_finite() => Ok(Some(n)),
        _ => Err((
            field.to_owned(),
            format!("expected a number, got {}", crate::error::shown(value)),
        )),
    }
}

/// The number in `field`, which must lie in `range` when present.
pub(crate) fn number_in(
    config: &Value,
    field: &str,
    range: RangeInclusive<f64>,
) -> Result<Option<f64>, FieldError> {
    match number(config, field)? {
        Some(n) if !range.contains(&n) => Err((
            field.to_owned(),
            format!("{n} is outside {}–{}", range.start(), range.end()),
        )),
        other => Ok(other),
    }
}

/// The whole number of pixels in `field` (1–`max`), when present.
pub(crate) fn pixels(config: &Value, field: &str, max: u32) -> Result<Option<u32>, FieldError> {
    match number(config, field)? {
        None => Ok(None),
        Some(n) if n.fract() == 0.0 && n >= 1.0 && n <= f64::from(max) => Ok(Some(n as u32)),
        Some(n) => Err((
            field.to_owned(),
            format!("{n} is not a whole number of pixels in 1–{max}"),
        )),
    }
}

/// The boolean in `field` (also "true"/"false" strings), when present.
pub(crate) fn boolean(config: &Value, field: &str) -> Result<Option<bool>, FieldError> {
    match config.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(other) => Err((
            field.to_owned(),
            format!("expected true or false, got {}", crate::error::shown(other)),
        )),
    }
}

/// Copies a React Flow node's `data` into a config, renaming fields from `renames`
/// ((from, to) pairs; the first found wins, an existing `to` field is kept) and dropping the
/// workflow app's display-only fields.
pub(crate) fn rename_fields(
    data: &serde_json::Map<String, Value>,
    renames: &[(&str, &str)],
) -> serde_json::Map<String, Value> {
    let mut config = data.clone();
    for field in ["label", "status", "error", "output"] {
        config.remove(field);
    }
    for (from, to) in renames {
        if let Some(v) = config.remove(*from)
            && !config.contains_key(*to)
        {
            config.insert((*to).to_owned(), v);
        }
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_are_checked() {
        let c = json!({"a": 5, "b": "7.5", "c": "NaN", "d": "x", "e": null, "f": 101});
        assert_eq!(number(&c, "a"), Ok(Some(5.0)));
        assert_eq!(number(&c, "b"), Ok(Some(7.5)));
        assert_eq!(number(&c, "c").unwrap_err().0, "c");
        assert_eq!(number(&c, "d").unwrap_err().0, "d");
        assert_eq!(number(&c, "e"), Ok(None));
        assert_eq!(number(&c, "missing"), Ok(None));
        assert_eq!(number_in(&c, "f", 0.0..=100.0).unwrap_err().0, "f");
        assert_eq!(pixels(&c, "a", 10), Ok(Some(5)));
        assert!(pixels(&c, "b", 10).is_err());
    }
}
