//! Reading [`Data`] and [`FileData`] by hand, one visitor each, instead of serde's derives.
//!
//! `Data` is untagged on the wire (a string, number, boolean or file-data object). Serde's
//! derived untagged enums (and the fields `#[serde(flatten)]` takes) buffer the value in
//! serde's private `Content` before trying each variant, and under serde_json's
//! `arbitrary_precision` feature — which any crate of a host's build may turn on, cargo features
//! being unified — serde_json hands every number that is not a 64-bit integer (a fraction or
//! exponent, `-0`, an integer beyond 64 bits) as a one-entry map
//! `{"$serde_json::private::Number": "<text>"}`, which, once buffered, no `f64`, `u64` or struct
//! of numbers reads (serde-rs/serde#1998, serde-rs/json#559): a file's `fps` or `duration`
//! failed the whole document. The visitors here take a value as the deserializer gives it, with
//! no buffer: a number as `u64`/`i64`/`f64` (or `u128`/`i128`), or as that one-entry map, whose
//! text they read into the very number serde_json reads from that text without the feature. So
//! a document reads the same, and its values write back the same bytes, whichever features the
//! build has. (Serde's buffering also allocated for every value and an error for every variant
//! tried and missed: reading a canvas's values by hand takes half the time it took.)

use super::{Data, Extra, FileAsset, FileData};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Unexpected, Visitor};
use serde_json::Number;
use std::fmt;

/// The key of the one-entry map serde_json hands a number in under `arbitrary_precision`
/// (`serde_json::number::TOKEN`: private, but fixed, as serde_json's own `Value` reads it). An
/// object keyed by it reads as a number with or without the feature: with it, serde_json's own
/// `Value` reads such an object in a document as a number too.
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

/// The number serde_json reads from the JSON number `text` without `arbitrary_precision`: an
/// integer as `u64`, a negative one as `i64`, anything else (a fraction or exponent, `-0`, an
/// integer out of range) as the nearest `f64`. `None` when `text` is no number or out of the
/// range of `f64`.
fn number_from_text(text: &str) -> Option<Number> {
    if !text.bytes().any(|b| matches!(b, b'.' | b'e' | b'E')) {
        if let Ok(u) = text.parse::<u64>() {
            return Some(u.into());
        }
        // Only a negative integer is an i64 (`-0` reads as the float -0.0).
        if let Ok(i) = text.parse::<i64>()
            && i < 0
        {
            return Some(i.into());
        }
    }
    text.parse::<f64>().ok().and_then(Number::from_f64)
}

/// A number from its text (the value of serde_json's one-entry number map), read without a copy.
struct NumberText;

impl<'de> DeserializeSeed<'de> for NumberText {
    type Value = Number;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Number, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for NumberText {
    type Value = Number;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("the text of a JSON number")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Number, E> {
        number_from_text(text).ok_or_else(|| match text.parse::<f64>() {
            // As serde_json says it without the feature.
            Ok(_) => E::custom("number out of range"),
            Err(_) => E::invalid_value(Unexpected::Str(text), &self),
        })
    }
}

/// A key of a file-data object.
enum Key {
    Entity,
    ProcessData,
    /// serde_json's number token: the object is a number.
    NumberToken,
    /// Any other key, kept in [`FileData::extra`].
    Other(String),
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Key, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl KeyVisitor {
    fn known(key: &str) -> Option<Key> {
        match key {
            "entity" => Some(Key::Entity),
            "processData" => Some(Key::ProcessData),
            NUMBER_TOKEN => Some(Key::NumberToken),
            _ => None,
        }
    }
}

impl Visitor<'_> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
        Ok(Self::known(key).unwrap_or_else(|| Key::Other(key.to_owned())))
    }

    fn visit_string<E: de::Error>(self, key: String) -> Result<Key, E> {
        Ok(Self::known(&key).unwrap_or(Key::Other(key)))
    }
}

/// Reads the rest of a file-data object whose first key (if any) is `first`: `entity` and
/// `processData` (each at most once, `null` as absent) and every other field into `extra`, as
/// the derive with `#[serde(flatten)]` read it, minus the buffering.
fn file_data<'de, A: MapAccess<'de>>(first: Option<Key>, mut map: A) -> Result<FileData, A::Error> {
    let mut entity: Option<Option<FileAsset>> = None;
    let mut process_data: Option<Option<serde_json::Value>> = None;
    let mut extra = Extra::new();
    let mut key = first;
    while let Some(k) = key {
        match k {
            Key::Entity if entity.is_some() => return Err(de::Error::duplicate_field("entity")),
            Key::Entity => entity = Some(map.next_value()?),
            Key::ProcessData if process_data.is_some() => {
                return Err(de::Error::duplicate_field("processData"));
            }
            Key::ProcessData => process_data = Some(map.next_value()?),
            Key::NumberToken => {
                extra.insert(NUMBER_TOKEN.to_owned(), map.next_value()?);
            }
            Key::Other(name) => {
                extra.insert(name, map.next_value()?);
            }
        }
        key = map.next_key()?;
    }
    Ok(FileData {
        entity: entity.flatten(),
        process_data: process_data.flatten(),
        extra,
    })
}

struct DataVisitor;

impl<'de> Visitor<'de> for DataVisitor {
    type Value = Data;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string, a number, a boolean or file data (an object)")
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Data, E> {
        Ok(Data::Boolean(b))
    }

    fn visit_i64<E: de::Error>(self, i: i64) -> Result<Data, E> {
        Ok(Data::Number(i.into()))
    }

    fn visit_u64<E: de::Error>(self, u: u64) -> Result<Data, E> {
        Ok(Data::Number(u.into()))
    }

    /// An integer beyond 64 bits (serde_json's `Value` hands one in under
    /// `arbitrary_precision`): the nearest `f64`, as serde_json reads its text without it.
    fn visit_i128<E: de::Error>(self, i: i128) -> Result<Data, E> {
        match i64::try_from(i) {
            Ok(i) => self.visit_i64(i),
            Err(_) => self.visit_f64(i as f64),
        }
    }

    /// As [`visit_i128`](Self::visit_i128).
    fn visit_u128<E: de::Error>(self, u: u128) -> Result<Data, E> {
        match u64::try_from(u) {
            Ok(u) => self.visit_u64(u),
            Err(_) => self.visit_f64(u as f64),
        }
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Data, E> {
        Number::from_f64(f)
            .map(Data::Number)
            .ok_or_else(|| E::invalid_value(Unexpected::Float(f), &"a finite number"))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Data, E> {
        Ok(Data::Text(s.to_owned()))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Data, E> {
        Ok(Data::Text(s))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Data, A::Error> {
        let first = map.next_key()?;
        if let Some(Key::NumberToken) = first {
            return map.next_value_seed(NumberText).map(Data::Number);
        }
        file_data(first, map).map(|file| Data::File(Box::new(file)))
    }
}

impl<'de> Deserialize<'de> for Data {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Data, D::Error> {
        deserializer.deserialize_any(DataVisitor)
    }
}

struct FileDataVisitor;

impl<'de> Visitor<'de> for FileDataVisitor {
    type Value = FileData;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("file data (an object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FileData, A::Error> {
        let first = map.next_key()?;
        if let Some(Key::NumberToken) = first {
            // A number a buffering deserializer (another type's derive) kept as serde_json's map.
            return Err(de::Error::invalid_type(Unexpected::Other("number"), &self));
        }
        file_data(first, map)
    }
}

impl<'de> Deserialize<'de> for FileData {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<FileData, D::Error> {
        deserializer.deserialize_map(FileDataVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether this build's serde_json has `arbitrary_precision` (it keeps `1.50` as written).
    fn serde_json_keeps_number_text() -> bool {
        serde_json::from_str::<Number>("1.50").unwrap().to_string() == "1.50"
    }

    /// What a number's text reads as without the feature.
    enum Kind {
        U(u64),
        I(i64),
        F(f64),
    }

    #[test]
    fn number_texts_read_as_serde_json_reads_them_without_arbitrary_precision() {
        use Kind::*;
        for (text, kind) in [
            ("0", U(0)),
            ("7", U(7)),
            ("-7", I(-7)),
            ("-0", F(-0.0)),
            ("2.5", F(2.5)),
            ("2.50", F(2.5)),
            ("3.0", F(3.0)),
            ("1e2", F(100.0)),
            ("1E+2", F(100.0)),
            ("-1.5e-3", F(-0.0015)),
            ("18446744073709551615", U(u64::MAX)),
            ("18446744073709551616", F(18446744073709551616.0)),
            ("-9223372036854775808", I(i64::MIN)),
            ("-9223372036854775809", F(-9223372036854775809.0)),
            ("123456789012345678901234567890", F(1.2345678901234568e29)),
            ("0.1000000000000000000001", F(0.1)),
        ] {
            let expected = match kind {
                U(u) => Number::from(u),
                I(i) => Number::from(i),
                F(f) => Number::from_f64(f).unwrap(),
            };
            let ours = number_from_text(text).unwrap();
            assert_eq!(ours.to_string(), expected.to_string(), "{text}");
            assert_eq!(
                (ours.as_u64(), ours.as_i64(), ours.is_f64()),
                (expected.as_u64(), expected.as_i64(), matches!(kind, F(_))),
                "{text}"
            );
            if !serde_json_keeps_number_text() {
                // serde_json's own reading, of which the table is a copy.
                let plain: Number = serde_json::from_str(text).unwrap();
                assert_eq!(ours, plain, "{text}");
            }
        }
        assert!(number_from_text("1e400").is_none());
        assert!(number_from_text("seven").is_none());
    }

    fn float(f: f64) -> Data {
        Data::Number(Number::from_f64(f).unwrap())
    }

    /// Reads `json` as `T` through every way in: text, bytes, a reader, an owned `Value` and a
    /// borrowed one (serde_json's `Value` deserializer hands numbers in differently under
    /// `arbitrary_precision`: as integers and floats when it can, else as its one-entry map).
    fn read_every_way<T: for<'de> Deserialize<'de> + PartialEq + fmt::Debug>(json: &str) -> T {
        let from_str: T = serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"));
        let from_slice: T = serde_json::from_slice(json.as_bytes()).unwrap();
        let from_reader: T = serde_json::from_reader(json.as_bytes()).unwrap();
        let value: serde_json::Value = serde_json::from_str(json).unwrap();
        let from_value_ref = T::deserialize(&value).unwrap_or_else(|e| panic!("{json}: {e}"));
        let from_value: T = serde_json::from_value(value).unwrap();
        for other in [from_slice, from_reader, from_value_ref, from_value] {
            assert_eq!(other, from_str, "{json}");
        }
        from_str
    }

    /// Every shape of `Data` reads as the variant it is and writes back as serde_json writes it
    /// without `arbitrary_precision`, with the feature on or off.
    #[test]
    fn every_data_shape_reads_and_writes_back_the_same_with_or_without_arbitrary_precision() {
        // The numbers of `metadata`, `processData` and unknown fields are serde_json `Value`s,
        // which keep their text under the feature: written here as serde_json writes them.
        let entity = r#"{"id":"v1","name":"clip.mp4","bucket":"b","key":"k","mimeType":"video/mp4","size":18446744073709551615,"width":1280,"height":720,"fps":29.97,"duration":4.0,"metadata":{"bitrate":-12,"ratio":1.5},"createdAt":1700000000123}"#;
        let file = format!(
            r#"{{"entity":{entity},"processData":{{"crop":[0,-1,2.5,{{"w":1000.0}}],"dataUrl":"data:,"}},"scale":0.25,"zIndex":-3}}"#
        );
        // (document, what it reads as, what it writes back as)
        let cases: Vec<(&str, Data, &str)> = vec![
            (r#""a fox""#, Data::Text("a fox".into()), r#""a fox""#),
            (r#""""#, Data::Text(String::new()), r#""""#),
            (
                r#""\u00e9\n""#,
                Data::Text("\u{e9}\n".into()),
                "\"\u{e9}\\n\"",
            ),
            ("true", Data::Boolean(true), "true"),
            ("false", Data::Boolean(false), "false"),
            ("0", Data::Number(0.into()), "0"),
            ("7", Data::Number(7.into()), "7"),
            ("-7", Data::Number((-7).into()), "-7"),
            ("2.5", float(2.5), "2.5"),
            ("-0.25", float(-0.25), "-0.25"),
            ("3.0", float(3.0), "3.0"),
            ("2.50", float(2.5), "2.5"),
            ("1e2", float(100.0), "100.0"),
            ("-1.5E-3", float(-0.0015), "-0.0015"),
            (
                "18446744073709551615",
                Data::Number(u64::MAX.into()),
                "18446744073709551615",
            ),
            (
                "-9223372036854775808",
                Data::Number(i64::MIN.into()),
                "-9223372036854775808",
            ),
            // Integers beyond 64 bits read as the nearest f64.
            (
                "18446744073709551616",
                float(1.8446744073709552e19),
                "1.8446744073709552e+19",
            ),
            (
                "-9223372036854775809",
                float(-9.223372036854776e18),
                "-9.223372036854776e+18",
            ),
            (
                "1.7976931348623157e308",
                float(1.7976931348623157e308),
                "1.7976931348623157e+308",
            ),
            ("{}", Data::File(Box::default()), "{}"),
            (r#"{"entity":null}"#, Data::File(Box::default()), "{}"),
            (&file, serde_json::from_str::<Data>(&file).unwrap(), &file),
        ];
        for (json, expected, written) in &cases {
            let data: Data = read_every_way(json);
            assert_eq!(&data, expected, "{json}");
            assert_eq!(serde_json::to_string(&data).unwrap(), *written, "{json}");
        }
        // The file data's numbers, at every depth.
        let Data::File(file_data) = read_every_way::<Data>(&file) else {
            panic!("file data")
        };
        let asset = file_data.entity.as_ref().unwrap();
        assert_eq!(asset.size, u64::MAX);
        assert_eq!((asset.width, asset.height), (Some(1280), Some(720)));
        assert_eq!((asset.fps, asset.duration), (Some(29.97), Some(4.0)));
        assert_eq!(asset.metadata.as_ref().unwrap()["bitrate"], -12);
        assert_eq!(asset.metadata.as_ref().unwrap()["ratio"], 1.5);
        assert_eq!(asset.extra["createdAt"], 1700000000123u64);
        assert_eq!(
            file_data.process_data.as_ref().unwrap()["crop"][3]["w"],
            1000.0
        );
        assert_eq!(file_data.extra["zIndex"], -3);
        assert_eq!(file_data.extra["scale"], 0.25);
        // Nested in lists, as a generation holds them.
        let list = cases
            .iter()
            .map(|(json, ..)| *json)
            .collect::<Vec<_>>()
            .join(",");
        let read: Vec<Data> = read_every_way(&format!("[{list}]"));
        let expected: Vec<Data> = cases.iter().map(|(_, data, _)| data.clone()).collect();
        assert_eq!(read, expected);
        let written = cases.iter().map(|(.., w)| *w).collect::<Vec<_>>().join(",");
        assert_eq!(
            serde_json::to_string(&read).unwrap(),
            format!("[{written}]")
        );
        let items = r#"{"selectedOutputIndex":0,"outputs":[{"items":[{"type":"Number","data":-2,"outputHandleId":"a"},{"type":"Number","data":0.5,"outputHandleId":"b"},{"type":"Number","data":1e300,"outputHandleId":"c"}]}]}"#;
        let result: super::super::NodeResult = read_every_way(items);
        let numbers: Vec<_> = result.outputs[0]
            .items
            .iter()
            .map(|i| i.data.clone())
            .collect();
        assert_eq!(
            numbers,
            [Data::Number((-2).into()), float(0.5), float(1e300)]
        );
    }

    /// Anything else is an error saying what a value may be (serde's untagged derive said "data
    /// did not match any variant of untagged enum Data").
    #[test]
    fn data_of_no_shape_is_an_error_saying_what_data_may_be() {
        let expected = "expected a string, a number, a boolean or file data (an object)";
        for (json, unexpected) in [("null", "null"), ("[1, 2]", "sequence")] {
            let err = serde_json::from_str::<Data>(json).unwrap_err().to_string();
            assert!(
                err.contains(&format!("invalid type: {unexpected}, {expected}")),
                "{err}"
            );
        }
        let err = serde_json::from_str::<Data>(r#"{"entity": {"id": "a"}, "entity": null}"#);
        assert!(
            err.unwrap_err()
                .to_string()
                .contains("duplicate field `entity`")
        );
        let err = serde_json::from_str::<Data>(r#"{"entity": {"id": "a", "size": -1}}"#);
        assert!(
            err.unwrap_err()
                .to_string()
                .contains("invalid value: integer `-1`")
        );
        let err = serde_json::from_str::<Data>("1e400")
            .unwrap_err()
            .to_string();
        assert!(err.contains("number out of range"), "{err}");
        let err = serde_json::from_str::<FileData>("7")
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected file data (an object)"), "{err}");
    }

    /// The way in of numbers under `arbitrary_precision`, taken with the feature off: serde_json's
    /// one-entry number map (its parser hands every number but a 64-bit integer this way, its
    /// `Value` every number it cannot hand as a 64-bit integer or an exact `f64`) and 128-bit
    /// integers (its `Value` hands an integer beyond 64 bits as one).
    #[test]
    fn serde_jsons_number_map_and_wide_integers_read_as_numbers() {
        use serde::de::value::{Error, I128Deserializer, U128Deserializer};
        for (text, expected) in [
            ("7", Data::Number(7.into())),
            ("-7", Data::Number((-7).into())),
            ("2.50", float(2.5)),
            ("1e+2", float(100.0)),
            ("18446744073709551616", float(1.8446744073709552e19)),
        ] {
            let json = format!(r#"{{"{NUMBER_TOKEN}":"{text}"}}"#);
            assert_eq!(read_every_way::<Data>(&json), expected, "{text}");
            // Also when a buffering deserializer (a host's untagged enum) holds it first.
            #[derive(Deserialize, Debug, PartialEq)]
            #[serde(untagged)]
            enum Host {
                Data(Data),
            }
            assert_eq!(
                serde_json::from_str::<Host>(&json).unwrap(),
                Host::Data(expected)
            );
        }
        // `-0` is the float -0.0 (read from a `Value` under the feature it is 0: serde_json's
        // `Value` hands it in as the integer its text parses as).
        let json = format!(r#"{{"{NUMBER_TOKEN}":"-0"}}"#);
        assert_eq!(serde_json::from_str::<Data>(&json).unwrap(), float(-0.0));
        let err = serde_json::from_str::<Data>(&format!(r#"{{"{NUMBER_TOKEN}":"seven"}}"#));
        let err = err.unwrap_err().to_string();
        assert!(err.contains("expected the text of a JSON number"), "{err}");
        let err = serde_json::from_str::<Data>(&format!(r#"{{"{NUMBER_TOKEN}":"1e400"}}"#));
        assert!(err.unwrap_err().to_string().contains("number out of range"));
        // Not as file data.
        let err = serde_json::from_str::<FileData>(&format!(r#"{{"{NUMBER_TOKEN}":"7"}}"#));
        let err = err.unwrap_err().to_string();
        assert!(
            err.contains("invalid type: number, expected file data"),
            "{err}"
        );
        let wide = |d: Result<Data, Error>| d.unwrap();
        assert_eq!(
            wide(Data::deserialize(U128Deserializer::new(7))),
            Data::Number(7.into())
        );
        assert_eq!(
            wide(Data::deserialize(U128Deserializer::new(1 << 64))),
            float(1.8446744073709552e19)
        );
        assert_eq!(
            wide(Data::deserialize(I128Deserializer::new(-7))),
            Data::Number((-7).into())
        );
        assert_eq!(
            wide(Data::deserialize(I128Deserializer::new(-(1 << 63) - 1))),
            float(-9.223372036854776e18)
        );
    }
}
