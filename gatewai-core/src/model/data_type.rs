use serde::{Deserialize, Serialize};
use std::fmt;

/// The kind of value that flows along an edge. A handle accepts a set of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DataType {
    /// A string.
    Text,
    /// A JSON number.
    Number,
    /// A boolean.
    Boolean,
    /// An image file asset.
    Image,
    /// A video file asset.
    Video,
    /// An audio file asset.
    Audio,
    /// Any other file asset (older Gatewai versions and the workflow app).
    File,
}

impl DataType {
    /// Every data type, in declaration order.
    pub const ALL: [DataType; 7] = [
        DataType::Text,
        DataType::Number,
        DataType::Boolean,
        DataType::Image,
        DataType::Video,
        DataType::Audio,
        DataType::File,
    ];

    /// Whether values of this type are file assets (Image, Video, Audio, File).
    pub fn is_media(self) -> bool {
        matches!(
            self,
            DataType::Image | DataType::Video | DataType::Audio | DataType::File
        )
    }

    /// The wire name (`"Text"`, `"Image"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            DataType::Text => "Text",
            DataType::Number => "Number",
            DataType::Boolean => "Boolean",
            DataType::Image => "Image",
            DataType::Video => "Video",
            DataType::Audio => "Audio",
            DataType::File => "File",
        }
    }

    const fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of [`DataType`]s as a bit set: what a handle accepts. Cheap to copy and intersect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DataTypeSet(u8);

impl DataTypeSet {
    /// The empty set.
    pub const EMPTY: DataTypeSet = DataTypeSet(0);

    /// The set of the given types.
    pub fn of(types: &[DataType]) -> Self {
        DataTypeSet(types.iter().fold(0, |acc, t| acc | t.bit()))
    }

    /// Whether `t` is in the set.
    pub fn contains(self, t: DataType) -> bool {
        self.0 & t.bit() != 0
    }

    /// Whether the two sets share at least one type. `File` is compatible with every media type
    /// (Image, Video, Audio), but two different media types are not compatible with each other.
    pub fn intersects(self, other: DataTypeSet) -> bool {
        if self.0 & other.0 != 0 {
            return true;
        }
        let media = DataType::Image.bit() | DataType::Video.bit() | DataType::Audio.bit();
        let file = DataType::File.bit();
        (self.0 & file != 0 && other.0 & media != 0) || (other.0 & file != 0 && self.0 & media != 0)
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The types in the set, in declaration order.
    pub fn iter(self) -> impl Iterator<Item = DataType> {
        DataType::ALL.into_iter().filter(move |t| self.contains(*t))
    }
}

impl fmt::Display for DataTypeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for t in self.iter() {
            if !first {
                f.write_str("/")?;
            }
            first = false;
            f.write_str(t.as_str())?;
        }
        if first {
            f.write_str("nothing")?;
        }
        Ok(())
    }
}

impl FromIterator<DataType> for DataTypeSet {
    fn from_iter<I: IntoIterator<Item = DataType>>(iter: I) -> Self {
        DataTypeSet(iter.into_iter().fold(0, |acc, t| acc | t.bit()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_is_compatible_with_media_only() {
        let file = DataTypeSet::of(&[DataType::File]);
        assert!(file.intersects(DataTypeSet::of(&[DataType::Image])));
        assert!(!file.intersects(DataTypeSet::of(&[DataType::Text])));
        assert!(
            !DataTypeSet::of(&[DataType::Image]).intersects(DataTypeSet::of(&[DataType::Video]))
        );
    }

    #[test]
    fn wire_names() {
        let json = serde_json::to_string(&DataType::ALL).unwrap();
        assert_eq!(
            json,
            r#"["Text","Number","Boolean","Image","Video","Audio","File"]"#
        );
    }
}
