//! The input snapshot of a node execution.

use crate::node::Inputs;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::sync::Arc;

/// The inputs a node ran with, as the workflow app stores them: `{ handleId: data }`, with a
/// list for a many-edge input (`null` when nothing arrived on a single input).
///
/// A record the engine made shares the run's resolved inputs and writes the JSON only when it
/// is serialised or asked for; a record read back from a store holds the JSON it was given.
/// Two snapshots are equal when their JSON is.
#[derive(Clone)]
pub struct InputSnapshot(Repr);

#[derive(Clone)]
enum Repr {
    Inputs(Arc<Inputs>),
    Json(Arc<serde_json::Value>),
}

impl InputSnapshot {
    /// A snapshot of resolved inputs, shared rather than copied.
    pub fn of(inputs: Arc<Inputs>) -> Self {
        InputSnapshot(Repr::Inputs(inputs))
    }

    /// The snapshot as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        match &self.0 {
            Repr::Json(value) => (**value).clone(),
            // Serialising plain data into a `Value` cannot fail.
            Repr::Inputs(_) => serde_json::to_value(self).unwrap_or(serde_json::Value::Null),
        }
    }

    /// The value recorded for one input handle, as JSON.
    pub fn get(&self, handle_id: &str) -> Option<serde_json::Value> {
        match &self.0 {
            Repr::Json(value) => value.get(handle_id).cloned(),
            Repr::Inputs(inputs) => inputs
                .slots()
                .iter()
                .find(|s| &*s.handle_id == handle_id)
                .and_then(|slot| serde_json::to_value(SlotValue(slot)).ok()),
        }
    }
}

impl From<serde_json::Value> for InputSnapshot {
    fn from(value: serde_json::Value) -> Self {
        InputSnapshot(Repr::Json(Arc::new(value)))
    }
}

/// One slot's value: the list for a many-edge input, else its first value or `null`.
struct SlotValue<'a>(&'a crate::node::InputSlot);

impl Serialize for SlotValue<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let slot = self.0;
        if slot.multiple {
            serializer.collect_seq(slot.values.iter().map(|item| &item.data))
        } else {
            match slot.values.first() {
                Some(item) => item.data.serialize(serializer),
                None => serializer.serialize_unit(),
            }
        }
    }
}

impl Serialize for InputSnapshot {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Repr::Json(value) => value.serialize(serializer),
            Repr::Inputs(inputs) => {
                let mut map = serializer.serialize_map(Some(inputs.slots().len()))?;
                for slot in inputs.slots() {
                    map.serialize_entry(&*slot.handle_id, &SlotValue(slot))?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for InputSnapshot {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        serde_json::Value::deserialize(deserializer).map(InputSnapshot::from)
    }
}

impl PartialEq for InputSnapshot {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Repr::Inputs(a), Repr::Inputs(b)) if Arc::ptr_eq(a, b) => true,
            (Repr::Json(a), Repr::Json(b)) => a == b,
            _ => self.to_json() == other.to_json(),
        }
    }
}

impl fmt::Debug for InputSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InputSnapshot({})", self.to_json())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Item;

    #[test]
    fn live_and_stored_snapshots_write_the_same_json() {
        let inputs = Inputs::default()
            .with("prompt", Item::text("a fox"))
            .with("n", Item::integer(1))
            .with("n", Item::integer(2));
        let live = InputSnapshot::of(Arc::new(inputs));
        let json = serde_json::to_value(&live).unwrap();
        assert_eq!(json, serde_json::json!({"prompt": "a fox", "n": [1, 2]}));
        let stored: InputSnapshot = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(stored, live);
        assert_eq!(live.to_json(), json);
        assert_eq!(live.get("n"), Some(serde_json::json!([1, 2])));
        assert_eq!(stored.get("prompt"), Some(serde_json::json!("a fox")));
        assert_eq!(live.get("missing"), None);
        assert_ne!(
            live,
            InputSnapshot::from(serde_json::json!({"prompt": "a cat"}))
        );
    }
}
