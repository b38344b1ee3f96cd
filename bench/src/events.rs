//! The event every figure moves: `file.uploaded` in three versions, so that
//! decoding can be measured on the current version and through the
//! `upcast_from` chain.

use tidings::event;

/// `file.uploaded` v1, as the oldest writers still send it.
#[event(stream = "bench", version = 1)]
#[derive(Debug, Clone, PartialEq)]
pub struct FileUploadedV1 {
    /// The file.
    pub file_id: String,
    /// Its name.
    pub filename: String,
    /// Its size in bytes.
    pub size: u64,
}

/// `file.uploaded` v2 adds the MIME type.
#[event(stream = "bench", version = 2, upcast_from = FileUploadedV1)]
#[derive(Debug, Clone, PartialEq)]
pub struct FileUploadedV2 {
    /// The file.
    pub file_id: String,
    /// Its name.
    pub filename: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its MIME type, if known.
    pub mime_type: Option<String>,
}

/// `file.uploaded` v3, the current version: adds tags, a checksum and the
/// sender's clock, which the latency figures read.
#[event(stream = "bench", version = 3, upcast_from = FileUploadedV2)]
#[derive(Debug, Clone, PartialEq)]
pub struct FileUploaded {
    /// The file.
    pub file_id: String,
    /// Its name.
    pub filename: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its MIME type, if known.
    pub mime_type: Option<String>,
    /// Free-form labels.
    pub tags: Vec<String>,
    /// SHA-256 of the content, hex.
    pub checksum: Option<String>,
    /// Nanoseconds since the benchmark's origin when the event was sent.
    pub sent_ns: u64,
}

impl From<FileUploadedV1> for FileUploadedV2 {
    fn from(v1: FileUploadedV1) -> Self {
        let mime_type = v1
            .filename
            .ends_with(".pdf")
            .then(|| "application/pdf".to_owned());
        FileUploadedV2 {
            file_id: v1.file_id,
            filename: v1.filename,
            size: v1.size,
            mime_type,
        }
    }
}

impl From<FileUploadedV2> for FileUploaded {
    fn from(v2: FileUploadedV2) -> Self {
        FileUploaded {
            file_id: v2.file_id,
            filename: v2.filename,
            size: v2.size,
            mime_type: v2.mime_type,
            tags: Vec::new(),
            checksum: None,
            sent_ns: 0,
        }
    }
}

impl FileUploaded {
    /// The `i`-th sample event, stamped with `sent_ns`.
    pub fn sample(i: u64, sent_ns: u64) -> Self {
        FileUploaded {
            file_id: format!("01JD{i:022}"),
            filename: format!("reports/2026/quarterly-report-{i:06}.pdf"),
            size: 1_048_576 + i,
            mime_type: Some("application/pdf".to_owned()),
            tags: vec!["finance".to_owned(), "q3".to_owned()],
            checksum: Some(
                "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".to_owned(),
            ),
            sent_ns,
        }
    }
}

impl FileUploadedV1 {
    /// The `i`-th sample event in its v1 form.
    pub fn sample(i: u64) -> Self {
        FileUploadedV1 {
            file_id: format!("01JD{i:022}"),
            filename: format!("reports/2026/quarterly-report-{i:06}.pdf"),
            size: 1_048_576 + i,
        }
    }
}

/// A request for the request/response figure: its reply is
/// [`TextMeasured`].
#[event(stream = "bench-requests", version = 1, reply = TextMeasured)]
#[derive(Debug, Clone, PartialEq)]
pub struct MeasureText {
    /// The text.
    pub text: String,
}

/// The reply to [`MeasureText`].
#[event(stream = "bench-requests", version = 1)]
#[derive(Debug, Clone, PartialEq)]
pub struct TextMeasured {
    /// Its length in bytes.
    pub length: u64,
}

/// A Pub/Sub event of the live-view figures: the sender's clock, which the
/// browsers' side reads.
#[event(channel = "live", version = 1)]
#[derive(Debug, Clone, PartialEq)]
pub struct Tick {
    /// Nanoseconds since the benchmark's origin when the event was sent;
    /// 0 on the last one, which ends a stretch.
    pub sent_ns: u64,
}
