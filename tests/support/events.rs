//! Test events with `Event` written by hand, in one place, so that they can
//! be replaced by `#[event]` in one change.

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
            const DATASCHEMA: &'static str = $schema;

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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FileUploadedV1 {
    pub file_id: String,
    pub filename: String,
}
hand_event!(FileUploadedV1, stream = Some("contextual"), channel = None, type = "file.uploaded", version = 1, schema = "schemas/contextual/file.uploaded/v1.json");

/// `file.uploaded` v2, upcast from v1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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

impl Event for FileUploaded {
    const STREAM: Option<&'static str> = Some("contextual");
    const CHANNEL: Option<&'static str> = None;
    const TYPE: &'static str = "file.uploaded";
    const VERSION: u32 = 2;
    const COMPAT: Compat = Compat::Backward;
    const DATASCHEMA: &'static str = "schemas/contextual/file.uploaded/v2.json";

    fn decode(version: u32, data: &[u8]) -> Result<Self, DecodeError> {
        if version == 2 {
            tidings::__private::decode_json::<Self>(version, data)
        } else {
            tidings::__private::decode_older::<Self, FileUploadedV1>(version, data)
        }
    }

    fn versions() -> Vec<u32> {
        vec![1, 2]
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
hand_event!(FileUploadedV9, stream = Some("contextual"), channel = None, type = "file.uploaded", version = 9, schema = "schemas/contextual/file.uploaded/v9.json");

/// A `file.uploaded` v2 whose `filename` has the wrong type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BrokenFileUploaded {
    pub file_id: String,
    pub filename: u64,
}
hand_event!(BrokenFileUploaded, stream = Some("contextual"), channel = None, type = "file.uploaded", version = 2, schema = "schemas/contextual/file.uploaded/v2.json");

/// `file.indexed`: published by a handler as a consequence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FileIndexed {
    pub file_id: String,
}
hand_event!(FileIndexed, stream = Some("indexing"), channel = None, type = "file.indexed", version = 1, schema = "schemas/indexing/file.indexed/v1.json");

/// `gate.opened` on the `notifications` channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GateOpened {
    pub gate: String,
}
hand_event!(GateOpened, stream = None, channel = Some("notifications"), type = "gate.opened", version = 1, schema = "schemas/notifications/gate.opened/v1.json");

/// `gate.closed` on the `notifications` channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GateClosed {
    pub gate: String,
}
hand_event!(GateClosed, stream = None, channel = Some("notifications"), type = "gate.closed", version = 1, schema = "schemas/notifications/gate.closed/v1.json");

/// `door.opened` on the `notifications` channel: not matched by `gate.*`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DoorOpened {
    pub door: String,
}
hand_event!(DoorOpened, stream = None, channel = Some("notifications"), type = "door.opened", version = 1, schema = "schemas/notifications/door.opened/v1.json");

/// `audit.logged`: both on a stream and a channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AuditLogged {
    pub line: String,
}
hand_event!(AuditLogged, stream = Some("audit"), channel = Some("audit"), type = "audit.logged", version = 1, schema = "schemas/audit/audit.logged/v1.json");
