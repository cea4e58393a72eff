//! Result-cache keys: a content hash of a node's (type + version, config, handles, input
//! values, run input). What the plan decides (type, version, config, handles) is hashed once
//! per plan into a prefix; a run hashes only the prefix, the values and the run input. Every
//! variable-length field is length-prefixed, so different inputs cannot run together into the
//! same bytes, and JSON is written canonically (object keys sorted) whatever serde_json's
//! features are.

use super::plan::{HandlePlan, NodeRun, SlotPlan};
use crate::cache::CacheKey;
use crate::model::{Data, FileAsset};
use crate::node::{Inputs, RunInput};

/// The hash of what the plan decides about a node's cache key: its type and version, its
/// config (a kept plan implies an unchanged config: configs are part of its fingerprint), its
/// input slots and its output handles (with the data types each carries: a cached value was
/// checked against them, and is served only onto handles that carry the same).
pub(crate) fn key_prefix(
    node_type: &str,
    version: u32,
    config: &serde_json::Value,
    slots: &[SlotPlan],
    handles: &[HandlePlan],
) -> [u8; 32] {
    let mut h = KeyHasher::new();
    h.field(node_type.as_bytes());
    h.field(&version.to_le_bytes());
    h.json(config);
    h.field(&(slots.len() as u64).to_le_bytes());
    for slot in slots {
        h.field(slot.handle_id.as_bytes());
        h.field(slot.template_handle_id.as_deref().unwrap_or("").as_bytes());
        h.field(slot.label.as_bytes());
        h.field(&[slot.multiple as u8]);
    }
    for handle in handles.iter().filter(|h| h.is_output) {
        h.field(handle.id.as_bytes());
        h.field(
            handle
                .template_handle_id
                .as_deref()
                .unwrap_or("")
                .as_bytes(),
        );
        h.field(handle.label.as_bytes());
        let carries = handle
            .data_types
            .iter()
            .fold(0u8, |bits, t| bits | 1 << (t as u8));
        h.field(&[carries]);
    }
    h.finish()
}

/// The cache key of one execution: the plan's prefix, the run's cache scope (when it has
/// one), then the input values slot by slot (the slots are the plan's, in its order) and the
/// run input. A scope is written as two length-prefixed fields where an unscoped key has the
/// slot count (8 bytes) first, so no scoped key equals an unscoped one.
pub(crate) fn cache_key(
    prefix: [u8; 32],
    scope: Option<&str>,
    run: &NodeRun,
    inputs: &Inputs,
) -> CacheKey {
    let mut h = KeyHasher::new();
    h.write(&prefix);
    if let Some(scope) = scope {
        h.field(b"scope");
        h.field(scope.as_bytes());
    }
    h.field(&(inputs.slots().len() as u64).to_le_bytes());
    for slot in inputs.slots() {
        h.field(&(slot.values.len() as u64).to_le_bytes());
        for value in &slot.values {
            h.field(value.data_type.as_str().as_bytes());
            h.data(&value.data);
        }
    }
    match run.run_input.as_deref() {
        None => h.field(b"none"),
        Some(RunInput::Text(t)) => {
            h.field(b"text");
            h.field(t.as_bytes());
        }
        Some(RunInput::Bytes { bytes, name }) => {
            h.field(b"bytes");
            h.field(bytes);
            h.field(name.as_deref().unwrap_or("").as_bytes());
        }
        Some(RunInput::Url(u)) => {
            h.field(b"url");
            h.field(u.as_bytes());
        }
        Some(RunInput::Asset(a)) => {
            h.field(b"asset");
            h.json(&serde_json::to_value(a).unwrap_or_default());
        }
    }
    CacheKey(h.finish())
}

/// Writes fields into one buffer, each prefixed by its length; the buffer is hashed once.
struct KeyHasher {
    /// Bytes not yet handed to the hasher: small keys are hashed in one go, with no allocation
    /// (how the bytes are split between updates does not change the hash).
    buf: [u8; 256],
    len: usize,
    hasher: blake3::Hasher,
}

impl KeyHasher {
    fn new() -> Self {
        KeyHasher {
            buf: [0; 256],
            len: 0,
            hasher: blake3::Hasher::new(),
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        if self.len + bytes.len() > self.buf.len() {
            self.hasher.update(&self.buf[..self.len]);
            self.len = 0;
        }
        if bytes.len() > self.buf.len() {
            self.hasher.update(bytes);
        } else {
            self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
            self.len += bytes.len();
        }
    }

    fn finish(mut self) -> [u8; 32] {
        self.hasher.update(&self.buf[..self.len]);
        *self.hasher.finalize().as_bytes()
    }

    fn field(&mut self, bytes: &[u8]) {
        self.write(&(bytes.len() as u64).to_le_bytes());
        self.write(bytes);
    }

    fn data(&mut self, data: &Data) {
        match data {
            Data::Text(t) => {
                self.field(b"t");
                self.field(t.as_bytes());
            }
            Data::Number(n) => {
                self.field(b"n");
                self.number(n);
            }
            Data::Boolean(b) => {
                self.field(b"b");
                self.field(&[*b as u8]);
            }
            Data::File(f) => {
                self.field(b"f");
                // A file with a content hash is keyed by its content, so re-importing the same
                // bytes (a new asset id) still hits the cache downstream.
                match f.entity.as_ref().and_then(content_hash) {
                    Some((hash, asset)) => {
                        self.field(b"content");
                        self.field(hash.as_bytes());
                        self.field(asset.mime_type.as_bytes());
                    }
                    None => self.json(&serde_json::to_value(f).unwrap_or_default()),
                }
            }
        }
    }

    /// A number as its decimal text (as serde_json writes it), written on the stack: numbers
    /// flow by the thousand, and each used to cost an allocation.
    fn number(&mut self, n: &serde_json::Number) {
        use std::fmt::Write as _;
        let mut text = StackText::default();
        if write!(text, "{n}").is_ok() {
            self.field(text.as_bytes());
        } else {
            // Longer than any `f64` or integer is written: an arbitrary-precision number.
            self.field(n.to_string().as_bytes());
        }
    }

    /// Canonical JSON: object keys in sorted order, each token length-prefixed.
    fn json(&mut self, value: &serde_json::Value) {
        use serde_json::Value;
        match value {
            Value::Null => self.field(b"null"),
            Value::Bool(b) => self.field(if *b { b"true" } else { b"false" }),
            Value::Number(n) => {
                self.field(b"num");
                self.number(n);
            }
            Value::String(s) => {
                self.field(b"str");
                self.field(s.as_bytes());
            }
            Value::Array(items) => {
                self.field(b"arr");
                self.field(&(items.len() as u64).to_le_bytes());
                for item in items {
                    self.json(item);
                }
            }
            Value::Object(map) => {
                self.field(b"obj");
                self.field(&(map.len() as u64).to_le_bytes());
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort_unstable();
                for key in keys {
                    self.field(key.as_bytes());
                    if let Some(v) = map.get(key) {
                        self.json(v);
                    }
                }
            }
        }
    }
}

/// Text written into a fixed buffer; writing more than it holds fails.
struct StackText {
    buf: [u8; 48],
    len: usize,
}

impl Default for StackText {
    fn default() -> Self {
        StackText {
            buf: [0; 48],
            len: 0,
        }
    }
}

impl StackText {
    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl std::fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let room = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        room.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// The `metadata.contentHash` an asset store or node recorded for an asset's bytes.
fn content_hash(asset: &FileAsset) -> Option<(&str, &FileAsset)> {
    asset
        .metadata
        .as_ref()?
        .get("contentHash")?
        .as_str()
        .filter(|h| !h.is_empty())
        .map(|h| (h, asset))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write as _;

    #[test]
    fn numbers_written_on_the_stack_hash_as_their_text() {
        let numbers: Vec<serde_json::Number> = serde_json::from_str(
            "[0, 7, -42, 18446744073709551615, -9223372036854775808, 1.5, -0.25, 1e300, \
             2.2250738585072014e-308, 123456789.123456789]",
        )
        .unwrap();
        for n in &numbers {
            let mut on_stack = KeyHasher::new();
            on_stack.number(n);
            let mut as_text = KeyHasher::new();
            as_text.field(n.to_string().as_bytes());
            assert_eq!(on_stack.finish(), as_text.finish(), "{n}");
        }
    }

    #[test]
    fn stack_text_refuses_what_it_cannot_hold() {
        let mut text = StackText::default();
        assert!(write!(text, "{}", "9".repeat(48)).is_ok());
        assert!(write!(text, "9").is_err());
        assert_eq!(text.as_bytes(), "9".repeat(48).as_bytes());
    }
}
