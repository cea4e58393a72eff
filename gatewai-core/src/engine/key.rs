//! Result-cache keys: a content hash of a node's (type + version, config, handles, input
//! values, run input). What the plan decides (type, version, config, handles) is hashed once
//! per plan into a prefix; a run hashes only the prefix, the values and the run input. Every
//! variable-length field is length-prefixed, so different inputs cannot run together into the
//! same bytes, and JSON is written canonically (object keys sorted) whatever serde_json's
//! features are.

use super::plan::{HandlePlan, NodeRun, SlotPlan};
use crate::cache::CacheKey;
use crate::model::{Data, DataType, FileAsset};
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
    h.write(FORMAT);
    h.field(node_type.as_bytes());
    h.num(u64::from(version));
    h.json(config);
    h.num(slots.len() as u64);
    for slot in slots {
        h.field(slot.handle_id.as_bytes());
        h.field(slot.template_handle_id.as_deref().unwrap_or("").as_bytes());
        h.field(slot.label.as_bytes());
        h.tag(slot.multiple as u8);
    }
    let outputs = handles.iter().filter(|h| h.is_output);
    h.num(outputs.clone().count() as u64);
    for handle in outputs {
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
            .fold(0u8, |bits, t| bits | 1 << type_tag(t));
        h.tag(carries);
    }
    h.finish()
}

/// The version of the bytes keys are hashed from, hashed first into every prefix: a change
/// of the encoding changes every key, so a store never serves a result under a key that
/// meant something else.
const FORMAT: &[u8] = b"gatewai-key-2";

/// The cache key of one execution: the plan's prefix, the run's cache scope (when it has
/// one), then the input values slot by slot (the slots are the plan's, in its order) and the
/// run input. The common key (a few numbers or short texts) fits in one BLAKE3 block.
pub(crate) fn cache_key(
    prefix: [u8; 32],
    scope: Option<&str>,
    run: &NodeRun,
    inputs: &Inputs,
) -> CacheKey {
    CacheKey(key_fields(prefix, scope, run, inputs).finish())
}

/// The fields of [`cache_key`], written and not yet hashed.
fn key_fields(prefix: [u8; 32], scope: Option<&str>, run: &NodeRun, inputs: &Inputs) -> KeyHasher {
    let mut h = KeyHasher::new();
    h.write(&prefix);
    match scope {
        None => h.tag(0),
        Some(scope) => {
            h.tag(1);
            h.field(scope.as_bytes());
        }
    }
    h.num(inputs.slots().len() as u64);
    for slot in inputs.slots() {
        h.num(slot.values.len() as u64);
        for value in &slot.values {
            h.tag(type_tag(value.data_type));
            h.data(&value.data);
        }
    }
    match run.run_input.as_deref() {
        None => h.tag(0),
        Some(RunInput::Text(t)) => {
            h.tag(1);
            h.field(t.as_bytes());
        }
        Some(RunInput::Bytes { bytes, name }) => {
            h.tag(2);
            h.field(bytes);
            h.field(name.as_deref().unwrap_or("").as_bytes());
        }
        Some(RunInput::Url(u)) => {
            h.tag(3);
            h.field(u.as_bytes());
        }
        Some(RunInput::Asset(a)) => {
            h.tag(4);
            h.json(&serde_json::to_value(a).unwrap_or_default());
        }
    }
    h
}

/// The most bytes [`leb128`] writes.
pub(crate) const LEB128_MAX: usize = 10;

/// Writes `n` as LEB128 (seven bits per byte, low bits first, the high bit set on all but the
/// last) to the start of `out` (at least [`LEB128_MAX`] bytes) and returns how many bytes it
/// wrote. A prefix-free code: fields still cannot run together, and the lengths, counts and
/// tags that make up most fields cost one byte instead of eight.
pub(crate) fn leb128(mut n: u64, out: &mut [u8]) -> usize {
    let mut i = 0;
    while n >= 0x80 {
        out[i] = n as u8 | 0x80;
        n >>= 7;
        i += 1;
    }
    out[i] = n as u8;
    i + 1
}

/// A data type's tag in keys, fixed here (not the enum's declaration order, which may change).
fn type_tag(data_type: DataType) -> u8 {
    match data_type {
        DataType::Text => 0,
        DataType::Number => 1,
        DataType::Boolean => 2,
        DataType::Image => 3,
        DataType::Video => 4,
        DataType::Audio => 5,
        DataType::File => 6,
    }
}

/// Where hashed fields go: the cache key's writer ([`KeyHasher`]) and the plan fingerprint's.
/// Every variable-length field is prefixed with its length, and every choice (a kind of
/// value, a variant) is written as a tag before what it chooses, so the bytes read back in
/// one way only: different inputs cannot run together into the same bytes. Lengths and
/// counts are LEB128 (one byte below 128). Numbers and JSON are written here, once, for both.
pub(crate) trait FieldSink {
    /// Raw bytes.
    fn write(&mut self, bytes: &[u8]);

    /// A length, a count or a small tag, as LEB128.
    fn num(&mut self, n: u64) {
        let mut bytes = [0u8; LEB128_MAX];
        let len = leb128(n, &mut bytes);
        self.write(&bytes[..len]);
    }

    /// A one-byte tag.
    fn tag(&mut self, tag: u8) {
        self.write(&[tag]);
    }

    /// Bytes prefixed with their length.
    fn field(&mut self, bytes: &[u8]) {
        self.num(bytes.len() as u64);
        self.write(bytes);
    }

    /// A number by its kind and value, each kind under its own tag (`1` and `1.0` stay
    /// different values, as their texts are): an integer as its value; a float as its value
    /// when it is a whole number below 2^53 (what nodes that count produce), else as its bits;
    /// a number serde_json holds as text of its own (its `arbitrary_precision` feature) that no
    /// `f64` is exactly, as that text (there `0.1` and `0.10000000000000000001` read as the
    /// same `f64`). Numbers flow by the thousand, and nothing is allocated for them, except
    /// under `arbitrary_precision` (checking a float's exactness allocates).
    fn number(&mut self, n: &serde_json::Number) {
        /// Whole floats from here on are written as their bits.
        const WHOLE_BELOW: f64 = (1u64 << 53) as f64;
        if let Some(u) = n.as_u64() {
            self.tag(b'u');
            self.num(u);
        } else if let Some(i) = n.as_i64() {
            // Negative: as its two's-complement bits.
            self.tag(b'i');
            self.num(i as u64);
        } else if let Some(f) = n
            .as_f64()
            .filter(|&f| serde_json::Number::from_f64(f).as_ref() == Some(n))
        {
            if f.fract() == 0.0 && f.is_sign_positive() && f < WHOLE_BELOW {
                self.tag(b'w');
                self.num(f as u64);
            } else {
                self.tag(b'f');
                self.write(&f.to_bits().to_le_bytes());
            }
        } else {
            self.tag(b's');
            with_number_text(n, |text| self.field(text));
        }
    }

    /// Canonical JSON: object keys in sorted order (whatever serde_json's features), each
    /// value behind its kind's tag.
    fn json(&mut self, value: &serde_json::Value) {
        use serde_json::Value;
        match value {
            Value::Null => self.tag(0),
            Value::Bool(b) => self.tag(1 + *b as u8),
            Value::Number(n) => {
                self.tag(3);
                self.number(n);
            }
            Value::String(s) => {
                self.tag(4);
                self.field(s.as_bytes());
            }
            Value::Array(items) => {
                self.tag(5);
                self.num(items.len() as u64);
                for item in items {
                    self.json(item);
                }
            }
            Value::Object(map) => {
                self.tag(6);
                self.num(map.len() as u64);
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

/// Gathers a key's fields into one buffer on the stack and hashes it once.
struct KeyHasher {
    /// Bytes not yet handed to the hasher: small keys are hashed in one go, with no allocation
    /// (how the bytes are split between updates does not change the hash).
    buf: [u8; 256],
    len: usize,
    hasher: blake3::Hasher,
}

impl FieldSink for KeyHasher {
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
}

impl KeyHasher {
    fn new() -> Self {
        KeyHasher {
            buf: [0; 256],
            len: 0,
            hasher: blake3::Hasher::new(),
        }
    }

    fn finish(mut self) -> [u8; 32] {
        self.hasher.update(&self.buf[..self.len]);
        *self.hasher.finalize().as_bytes()
    }

    fn data(&mut self, data: &Data) {
        match data {
            Data::Text(t) => {
                self.tag(b't');
                self.field(t.as_bytes());
            }
            Data::Number(n) => {
                self.tag(b'n');
                self.number(n);
            }
            Data::Boolean(b) => {
                self.tag(b'b');
                self.tag(*b as u8);
            }
            Data::File(f) => {
                self.tag(b'f');
                // A file with a content hash is keyed by its content, so re-importing the same
                // bytes (a new asset id) still hits the cache downstream.
                match f.entity.as_ref().and_then(content_hash) {
                    Some((hash, asset)) => {
                        self.tag(b'c');
                        self.field(hash.as_bytes());
                        self.field(asset.mime_type.as_bytes());
                    }
                    None => {
                        self.tag(b'j');
                        self.json(&serde_json::to_value(f).unwrap_or_default());
                    }
                }
            }
        }
    }
}

/// Calls `f` with a number's decimal text as serde_json writes it: the text it was parsed
/// from under `arbitrary_precision` (which another crate of a build may enable), else the
/// shortest text that reads back as the same value. Different numbers have different texts
/// either way. Written on the stack unless longer than any `f64` is written.
fn with_number_text<R>(n: &serde_json::Number, f: impl FnOnce(&[u8]) -> R) -> R {
    use std::fmt::Write as _;
    let mut text = StackText::default();
    if write!(text, "{n}").is_ok() {
        f(text.as_bytes())
    } else {
        f(n.to_string().as_bytes())
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

    /// Integers hash as their value under their sign's tag, whole floats below 2^53 as their
    /// value under a tag of their own, other floats as their bits, and no two numbers that
    /// differ in kind or value (`1` and `1.0`, `0.0` and `-0.0`) hash alike.
    #[test]
    fn numbers_hash_by_kind_and_value() {
        let numbers: Vec<serde_json::Number> = serde_json::from_str(
            "[0, 7, -42, 1, 1.0, 2.0, -0.0, 0.0, 9007199254740992.0, 9007199254740991.0, \
             18446744073709551615, -9223372036854775808, 1.5, -0.25, 1e300, \
             2.2250738585072014e-308, 123456789.123456789]",
        )
        .unwrap();
        let mut seen = std::collections::HashSet::new();
        for n in &numbers {
            let mut on_stack = KeyHasher::new();
            on_stack.number(n);
            let mut expected = KeyHasher::new();
            match (n.as_u64(), n.as_i64(), n.as_f64()) {
                (Some(u), _, _) => {
                    expected.tag(b'u');
                    expected.num(u);
                }
                (None, Some(i), _) => {
                    expected.tag(b'i');
                    expected.num(i as u64);
                }
                (None, None, Some(f))
                    if n.to_string() == serde_json::Number::from_f64(f).unwrap().to_string() =>
                {
                    if f >= 0.0
                        && f.fract() == 0.0
                        && f < 9007199254740992.0
                        && !(f == 0.0 && f.is_sign_negative())
                    {
                        expected.tag(b'w');
                        expected.num(f as u64);
                    } else {
                        expected.tag(b'f');
                        expected.write(&f.to_bits().to_le_bytes());
                    }
                }
                _ => {
                    expected.tag(b's');
                    expected.field(n.to_string().as_bytes());
                }
            }
            let hash = on_stack.finish();
            assert_eq!(hash, expected.finish(), "{n}");
            assert!(seen.insert(hash), "{n} hashes like another number");
        }
    }

    /// LEB128 writes seven bits per byte, low bits first, and one byte below 128.
    #[test]
    fn counts_are_written_as_leb128() {
        for (n, bytes) in [
            (0u64, vec![0u8]),
            (127, vec![0x7f]),
            (128, vec![0x80, 0x01]),
            (300, vec![0xac, 0x02]),
            (u64::MAX, [vec![0xff; 9], vec![0x01]].concat()),
        ] {
            let mut h = KeyHasher::new();
            h.num(n);
            assert_eq!(&h.buf[..h.len], &bytes[..], "{n}");
        }
    }

    /// A typical bench key (a prefix and three numbers) fits in one 64-byte BLAKE3 block.
    #[test]
    fn a_key_of_a_few_numbers_fits_in_one_block() {
        use crate::node::InputSlot;
        use std::sync::Arc;
        let slot = InputSlot {
            handle_id: Arc::from("in"),
            template_handle_id: Some(Arc::from("in")),
            label: Arc::from("in"),
            multiple: true,
            // As a node that counts produces them: whole floats, and integers.
            values: vec![
                crate::model::Item::number(123_456.0),
                crate::model::Item::number(7.0),
                crate::model::Item::integer(99_999),
            ],
        };
        let run = NodeRun {
            config: serde_json::Value::Null,
            previous: None,
            preset: None,
            resume_key: None,
            run_input: None,
            force: false,
        };
        let h = key_fields([0; 32], None, &run, &Inputs::new(vec![slot]));
        assert!(h.len <= 64, "{} bytes", h.len);
    }

    /// Every input a key is made of, changed in turn (including changes whose fields would
    /// run together were they not length-prefixed or tagged), gives a key of its own: config
    /// values of every JSON kind, input values of every `Data` kind, the scope (none against an
    /// empty one), the run input and the slots' values.
    #[test]
    fn different_inputs_make_different_keys() {
        use crate::model::{FileData, Item};
        use crate::node::InputSlot;
        use serde_json::json;
        use std::sync::Arc;

        let configs = [
            json!(null),
            json!(true),
            json!(false),
            json!(0),
            json!(-1),
            json!(0.5),
            json!(""),
            json!("0"),
            json!([]),
            json!([[]]),
            json!([null]),
            json!({}),
            json!({ "a": "bc" }),
            json!({ "ab": "c" }),
            json!({ "a": 1, "b": 2 }),
            json!({ "a": 2, "b": 1 }),
            json!({ "a": [1, 2] }),
            json!({ "a": [1], "b": [2] }),
            // Would run together were keys not length-prefixed.
            json!({ "a": { "b": null } }),
            json!({ "a\u{6}\u{1}b": null }),
        ];
        let mut seen = std::collections::HashSet::new();
        for config in &configs {
            let prefix = key_prefix("Node", 1, config, &[], &[]);
            assert!(seen.insert(prefix), "config {config}");
        }

        let file = |hash: Option<&str>, mime: &str, id: &str| {
            Data::File(Box::new(FileData {
                entity: Some(FileAsset {
                    id: id.to_owned(),
                    mime_type: mime.to_owned(),
                    metadata: hash.map(|h| json!({ "contentHash": h })),
                    ..FileAsset::default()
                }),
                ..FileData::default()
            }))
        };
        let item = |data_type: DataType, data: Data| Item { data_type, data };
        let text = |t: &str| item(DataType::Text, Data::Text(t.to_owned()));
        let values: Vec<Vec<Vec<Item>>> = vec![
            vec![vec![]],
            vec![vec![], vec![]],
            vec![vec![text("")]],
            vec![vec![text("ab")]],
            vec![vec![text("a"), text("b")]],
            vec![vec![text("a")], vec![text("b")]],
            vec![vec![text("a"), text("b")], vec![]],
            // Would run together were texts not length-prefixed.
            vec![vec![text("a\u{0}tb"), text("c")]],
            vec![vec![text("a"), text("b\u{0}tc")]],
            vec![vec![item(DataType::Boolean, Data::Boolean(true))]],
            vec![vec![item(DataType::Boolean, Data::Boolean(false))]],
            vec![vec![item(DataType::Number, Data::Number(1.into()))]],
            vec![vec![item(DataType::Number, Data::Number((-1).into()))]],
            vec![vec![item(DataType::Text, Data::Number(1.into()))]],
            vec![vec![item(
                DataType::Image,
                file(Some("h1"), "image/png", "a"),
            )]],
            vec![vec![item(
                DataType::Image,
                file(Some("h2"), "image/png", "a"),
            )]],
            vec![vec![item(
                DataType::Image,
                file(Some("h1"), "image/jpeg", "a"),
            )]],
            vec![vec![item(DataType::Image, file(None, "image/png", "a"))]],
            vec![vec![item(DataType::Image, file(None, "image/png", "b"))]],
            vec![vec![item(DataType::File, file(None, "image/png", "b"))]],
        ];
        let runs = [
            None,
            Some(RunInput::Text(String::new())),
            Some(RunInput::Text("a".to_owned())),
            Some(RunInput::Url("a".to_owned())),
            Some(RunInput::Bytes {
                bytes: b"a".to_vec().into(),
                name: None,
            }),
            Some(RunInput::Bytes {
                bytes: b"".to_vec().into(),
                name: Some("a".to_owned()),
            }),
            Some(RunInput::Asset(FileAsset::default())),
        ];
        let prefix = key_prefix("Node", 1, &json!(null), &[], &[]);
        let mut seen = std::collections::HashSet::new();
        for scope in [None, Some(""), Some("a")] {
            for slots in &values {
                let inputs = Inputs::new(
                    slots
                        .iter()
                        .map(|values| InputSlot {
                            handle_id: Arc::from("in"),
                            template_handle_id: None,
                            label: Arc::from("in"),
                            multiple: true,
                            values: values.clone(),
                        })
                        .collect(),
                );
                for run_input in &runs {
                    let run = NodeRun {
                        config: json!(null),
                        previous: None,
                        preset: None,
                        resume_key: None,
                        run_input: run_input.clone().map(Arc::new),
                        force: false,
                    };
                    let key = cache_key(prefix, scope, &run, &inputs).0;
                    assert!(
                        seen.insert(key),
                        "{scope:?} {slots:?} {run_input:?} keys like another"
                    );
                }
            }
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
