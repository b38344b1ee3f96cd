//! Declares, decodes and registers events with `tidings` as the only
//! dependency, and prints what it saw for the test to compare.

use tidings::{event, Event};

/// A file landed.
#[event(stream = "contextual", version = 1)]
#[derive(Debug)]
pub struct FileUploadedV1 {
    /// Name as uploaded.
    #[serde(rename = "fileName")]
    pub filename: String,
}

/// A file landed, with its MIME type.
#[event(stream = "contextual", version = 2, upcast_from = FileUploadedV1)]
#[derive(Debug)]
pub struct FileUploaded {
    /// Name as uploaded.
    #[serde(rename = "fileName")]
    pub filename: String,
    /// MIME type, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
}

impl From<FileUploadedV1> for FileUploaded {
    fn from(old: FileUploadedV1) -> Self {
        FileUploaded {
            filename: old.filename,
            mime_type: None,
        }
    }
}

/// A gate opened.
#[event(channel = "gates", version = 1)]
#[derive(Debug)]
pub struct GateOpened;

/// A checksum: a nested type, declared with `#[payload]`.
#[tidings::payload]
#[derive(Debug)]
pub struct Checksum {
    /// Algorithm name.
    pub algorithm: String,
    /// Hex digest.
    pub hex: String,
}

/// Where an artifact came from.
#[tidings::payload]
#[derive(Debug)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Uploaded by a person.
    Upload,
    /// Fetched from elsewhere.
    Fetch,
}

/// An artifact was stored.
#[event(stream = "artifacts", version = 1)]
#[derive(Debug)]
pub struct ArtifactStored {
    /// Its checksum.
    pub checksum: Checksum,
    /// Its origin.
    pub origin: Origin,
}

fn main() {
    let e = FileUploaded::decode(1, br#"{"fileName":"a.pdf"}"#).expect("v1 decodes");
    println!("decoded {} v{:?}: {}", FileUploaded::TYPE, FileUploaded::versions(), e.filename);
    let err = FileUploaded::decode(3, b"{}").expect_err("v3 is unknown");
    println!("error {err}");
    tidings::registry::check().expect("no conflict");
    for info in tidings::registry::sorted() {
        let schema = (info.schema)();
        println!("registered {} v{} {}", info.type_name, info.version, schema["$id"]);
    }
    let _ = GateOpened::decode(1, b"{}").expect("unit event decodes");
    let a = ArtifactStored::decode(1, br#"{"checksum":{"algorithm":"sha256","hex":"ab"},"origin":"fetch"}"#)
        .expect("nested payload types decode");
    println!("artifact {} {} {:?}", a.checksum.algorithm, a.checksum.hex, a.origin);
    schema_check();
}

/// The schema check outside a test build: the registry holds no decoders, so
/// the committed samples fail the check until the check is given them.
fn schema_check() {
    let dir = std::env::temp_dir().join(format!("tidings-standalone-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let check = || tidings::schemas::Check::new(&dir);
    let written = check().overwrite(true).run().expect("schemas written");
    println!("written {} files", written.written.len());
    let decoders = tidings::registry::all().filter(|i| i.decode.is_some()).count();
    println!("registry decoders {decoders}");
    match check().run() {
        Ok(_) => println!("check passed without decoders"),
        Err(err) => {
            for problem in &err.problems {
                println!("problem {problem}");
            }
        }
    }
    let summary = check()
        .decoder::<FileUploaded>()
        .decoder::<GateOpened>()
        .sample(&ArtifactStored {
            checksum: Checksum { algorithm: "sha256".into(), hex: "ab".into() },
            origin: Origin::Upload,
        })
        .run()
        .expect("every sample decodes");
    println!("checked {} versions", summary.versions);
    let _ = std::fs::remove_dir_all(&dir);
}
