//! Test events. Two are written by hand on purpose: they stand for writers
//! this reader does not know (a newer version, a broken payload), which no
//! `#[event]` in this binary could declare next to the real `file.uploaded`.

use serde::{Deserialize, Serialize};
use tidings::{Compat, DecodeError, Event};

macro_rules! hand_event {
    ($ty:ident, stream = $stream:expr, channel = $channel:expr, type = $name:literal, version = $v:literal, schema = $schema:literal) => {
        impl Event for $ty {
            const STREAM: Option<&'static str> = $stream;
            const CHANNEL: Option<&'static str> = $channel;
            const TYPE: &'static str = $name;
            const VERSION: u32 = $v;
            const COMPAT: Compat = Compat::Backward;
            const SCHEMA_PATH: &'static str = $schema;
            const DATASCHEMA: &'static str = concat!("https://tidings.invalid/schemas/", $schema);

            fn decode(version: u32, data: &[u8]) -> Result<Self, DecodeError> {
                if version == $v {
                    tidings::__private::decode_json::<Self>(version, data)
                } else {
                    Err(tidings::__private::unknown_version::<Self>(version))
                }
            }

            fn versions() -> Vec<u32> {
                vec![$v]
            }
        }
    };
}

/// `file.uploaded` v1.
#[tidings::event(stream = "contextual", version = 1)]
#[derive(Debug, Clone, PartialEq)]
pub struct FileUploadedV1 {
    pub file_id: String,
    pub filename: String,
}

/// `file.uploaded` v2, upcast from v1.
#[tidings::event(stream = "contextual", version = 2, upcast_from = FileUploadedV1)]
#[derive(Debug, Clone, PartialEq)]
pub struct FileUploaded {
    pub file_id: String,
    pub filename: String,
    pub mime_type: Option<String>,
}

impl From<FileUploadedV1> for FileUploaded {
    fn from(v1: FileUploadedV1) -> Self {
        let mime_type = v1
            .filename
            .ends_with(".pdf")
            .then(|| "application/pdf".to_owned());
        FileUploaded {
            file_id: v1.file_id,
            filename: v1.filename,
            mime_type,
        }
    }
}

impl FileUploaded {
    pub fn new(file_id: impl Into<String>) -> Self {
        FileUploaded {
            file_id: file_id.into(),
            filename: "report.pdf".to_owned(),
            mime_type: Some("application/pdf".to_owned()),
        }
    }
}

/// A `file.uploaded` from a writer newer than every reader here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FileUploadedV9 {
    pub file_id: String,
}
hand_event!(FileUploadedV9, stream = Some("contextual"), channel = None, type = "file.uploaded", version = 9, schema = "contextual/file.uploaded/v9.json");

/// A `file.uploaded` v2 whose `filename` has the wrong type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BrokenFileUploaded {
    pub file_id: String,
    pub filename: u64,
}
hand_event!(BrokenFileUploaded, stream = Some("contextual"), channel = None, type = "file.uploaded", version = 2, schema = "contextual/file.uploaded/v2.json");

/// A `file.uploaded` whose payload cannot be written when its id is
/// `poison`: serialization fails at run time, as it can for a map with
/// non-string keys or a hand-written `Serialize`.
#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
pub struct FragileFileUploaded {
    pub file_id: String,
}
hand_event!(FragileFileUploaded, stream = Some("contextual"), channel = None, type = "file.uploaded", version = 1, schema = "contextual/file.uploaded/v1.json");

impl Serialize for FragileFileUploaded {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeStruct};
        if self.file_id == "poison" {
            return Err(S::Error::custom("poison cannot be written"));
        }
        let mut st = s.serialize_struct("FragileFileUploaded", 1)?;
        st.serialize_field("file_id", &self.file_id)?;
        st.end()
    }
}

/// `file.indexed`: published by a handler as a consequence.
#[tidings::event(stream = "indexing", version = 1)]
#[derive(Debug, Clone, PartialEq)]
pub struct FileIndexed {
    pub file_id: String,
}

/// `gate.opened` on the `notifications` channel.
#[tidings::event(channel = "notifications", version = 1)]
#[derive(Debug, Clone, PartialEq)]
pub struct GateOpened {
    pub gate: String,
}

/// `gate.closed` on the `notifications` channel.
#[tidings::event(channel = "notifications", version = 1)]
#[derive(Debug, Clone, PartialEq)]
pub struct GateClosed {
    pub gate: String,
}

/// `door.opened` on the `notifications` channel: not matched by `gate.*`.
#[tidings::event(channel = "notifications", version = 1)]
#[derive(Debug, Clone, PartialEq)]
pub struct DoorOpened {
    pub door: String,
}

/// `audit.logged`: both on a stream and a channel.
#[tidings::event(stream = "audit", channel = "audit", version = 1)]
#[derive(Debug, Clone, PartialEq)]
pub struct AuditLogged {
    pub line: String,
}
