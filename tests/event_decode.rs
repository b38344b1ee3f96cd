//! Decoding of every version of an event through its `upcast_from` chain,
//! and the errors of payloads that do not decode.

use tidings::{event, DecodeError, Event};

/// v1: a file landed.
#[event(stream = "test-uploads", version = 1)]
#[derive(Debug, Clone, PartialEq)]
pub struct FileUploadedV1 {
    /// Name as uploaded.
    pub filename: String,
}

/// v2: adds the MIME type.
#[event(stream = "test-uploads", version = 2, upcast_from = FileUploadedV1)]
#[derive(Debug, Clone, PartialEq)]
pub struct FileUploadedV2 {
    /// Name as uploaded.
    pub filename: String,
    /// MIME type, when the client sent one.
    pub mime_type: Option<String>,
}

/// v3: adds the size.
#[event(stream = "test-uploads", version = 3, upcast_from = FileUploadedV2)]
#[derive(Debug, Clone, PartialEq)]
pub struct FileUploadedV3 {
    /// Name as uploaded.
    pub filename: String,
    /// MIME type, when the client sent one.
    pub mime_type: Option<String>,
    /// Size in bytes.
    pub size: u64,
}

/// v4, the current one: the name is split into a path and a base name.
#[event(stream = "test-uploads", version = 4, upcast_from = FileUploadedV3)]
#[derive(Debug, Clone, PartialEq)]
pub struct FileUploaded {
    /// Directory of the file.
    pub dir: String,
    /// Base name of the file.
    pub name: String,
    /// MIME type, when the client sent one.
    pub mime_type: Option<String>,
    /// Size in bytes.
    pub size: u64,
    /// Tags of the file.
    pub tags: Vec<Tag>,
}

/// A tag of a file.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Tag {
    /// Tag key.
    pub key: String,
    /// Tag value.
    pub value: u32,
}

impl From<FileUploadedV1> for FileUploadedV2 {
    fn from(old: FileUploadedV1) -> Self {
        FileUploadedV2 {
            filename: old.filename,
            mime_type: None,
        }
    }
}

impl From<FileUploadedV2> for FileUploadedV3 {
    fn from(old: FileUploadedV2) -> Self {
        FileUploadedV3 {
            filename: old.filename,
            mime_type: old.mime_type,
            size: 0,
        }
    }
}

impl From<FileUploadedV3> for FileUploaded {
    fn from(old: FileUploadedV3) -> Self {
        let (dir, name) = match old.filename.rsplit_once('/') {
            Some((dir, name)) => (dir.to_owned(), name.to_owned()),
            None => (String::new(), old.filename),
        };
        FileUploaded {
            dir,
            name,
            mime_type: old.mime_type,
            size: old.size,
            tags: Vec::new(),
        }
    }
}

/// A gate opened; no payload.
#[event(channel = "test-gates", version = 1)]
#[derive(Debug, Clone, PartialEq)]
pub struct GateOpened;

#[test]
fn versions_list_the_whole_chain_ascending() {
    assert_eq!(FileUploadedV1::versions(), [1]);
    assert_eq!(FileUploadedV2::versions(), [1, 2]);
    assert_eq!(FileUploadedV3::versions(), [1, 2, 3]);
    assert_eq!(FileUploaded::versions(), [1, 2, 3, 4]);
}

#[test]
fn current_version_decodes_directly() {
    let e = FileUploaded::decode(
        4,
        br#"{"dir":"in","name":"a.pdf","mime_type":"application/pdf","size":7,"tags":[{"key":"k","value":1}]}"#,
    )
    .unwrap();
    assert_eq!(
        e,
        FileUploaded {
            dir: "in".into(),
            name: "a.pdf".into(),
            mime_type: Some("application/pdf".into()),
            size: 7,
            tags: vec![Tag {
                key: "k".into(),
                value: 1
            }],
        }
    );
}

#[test]
fn every_older_version_decodes_through_the_upcast_chain() {
    let v1 = FileUploaded::decode(1, br#"{"filename":"in/a.pdf"}"#).unwrap();
    assert_eq!(
        v1,
        FileUploaded {
            dir: "in".into(),
            name: "a.pdf".into(),
            mime_type: None,
            size: 0,
            tags: vec![],
        }
    );
    let v2 = FileUploaded::decode(2, br#"{"filename":"b.txt","mime_type":"text/plain"}"#).unwrap();
    assert_eq!(v2.name, "b.txt");
    assert_eq!(v2.dir, "");
    assert_eq!(v2.mime_type.as_deref(), Some("text/plain"));
    assert_eq!(v2.size, 0);
    let v3 = FileUploaded::decode(3, br#"{"filename":"x/y/c","mime_type":null,"size":9}"#).unwrap();
    assert_eq!(
        (v3.dir.as_str(), v3.name.as_str(), v3.size),
        ("x/y", "c", 9)
    );
}

#[test]
fn intermediate_versions_decode_their_own_older_versions() {
    let v3 = FileUploadedV3::decode(1, br#"{"filename":"a"}"#).unwrap();
    assert_eq!(
        v3,
        FileUploadedV3 {
            filename: "a".into(),
            mime_type: None,
            size: 0
        }
    );
}

#[test]
fn round_trip_through_json_keeps_every_field() {
    let e = FileUploaded {
        dir: "d".into(),
        name: "n".into(),
        mime_type: None,
        size: u64::MAX,
        tags: vec![Tag {
            key: "a".into(),
            value: 2,
        }],
    };
    let bytes = serde_json::to_vec(&e).unwrap();
    assert_eq!(
        FileUploaded::decode(FileUploaded::VERSION, &bytes).unwrap(),
        e
    );
    let v1 = FileUploadedV1 {
        filename: "z".into(),
    };
    let bytes = serde_json::to_vec(&v1).unwrap();
    assert_eq!(FileUploadedV1::decode(1, &bytes).unwrap(), v1);
}

#[test]
fn unknown_fields_are_ignored() {
    let e = FileUploadedV1::decode(1, br#"{"filename":"a","added_later":{"x":[1,2]}}"#).unwrap();
    assert_eq!(e.filename, "a");
    let e = FileUploaded::decode(1, br#"{"extra":true,"filename":"a"}"#).unwrap();
    assert_eq!(e.name, "a");
}

#[test]
fn newer_version_is_unknown_version_naming_what_the_reader_knows() {
    let err = FileUploaded::decode(5, br#"{}"#).unwrap_err();
    assert_eq!(
        err,
        DecodeError::UnknownVersion {
            type_name: "file.uploaded",
            version: 5,
            known: vec![1, 2, 3, 4],
        }
    );
    assert_eq!(
        err.to_string(),
        "cannot decode `file.uploaded` v5: this reader knows versions v1, v2, v3, v4"
    );
}

#[test]
fn version_below_the_chain_is_unknown_version_of_the_current_type() {
    let err = FileUploaded::decode(0, br#"{}"#).unwrap_err();
    assert_eq!(
        err,
        DecodeError::UnknownVersion {
            type_name: "file.uploaded",
            version: 0,
            known: vec![1, 2, 3, 4],
        }
    );
    let err = FileUploadedV1::decode(2, br#"{"filename":"a"}"#).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot decode `file.uploaded` v2: this reader knows versions v1"
    );
}

#[test]
fn wrong_field_type_names_type_version_and_field_path() {
    let err = FileUploaded::decode(
        4,
        br#"{"dir":"","name":"a","mime_type":null,"size":1,"tags":[{"key":"k","value":1},{"key":"k","value":"x"}]}"#,
    )
    .unwrap_err();
    match &err {
        DecodeError::Data {
            type_name,
            version,
            path,
            message,
        } => {
            assert_eq!(*type_name, "file.uploaded");
            assert_eq!(*version, 4);
            assert_eq!(path, "tags[1].value");
            assert!(
                message.starts_with("invalid type: string \"x\", expected u32"),
                "{message}"
            );
        }
        other => panic!("expected a data error, got {other:?}"),
    }
    assert!(
        err.to_string()
            .starts_with("cannot decode `file.uploaded` v4 at `tags[1].value`: invalid type"),
        "{err}"
    );
}

#[test]
fn error_in_an_older_payload_names_the_version_it_was_read_as() {
    let err = FileUploaded::decode(3, br#"{"filename":"a","size":-1}"#).unwrap_err();
    assert_eq!(err.type_name(), "file.uploaded");
    assert_eq!(err.version(), 3);
    match err {
        DecodeError::Data { path, .. } => assert_eq!(path, "size"),
        other => panic!("expected a data error, got {other:?}"),
    }
}

#[test]
fn missing_field_is_a_data_error_at_the_root() {
    let err = FileUploadedV1::decode(1, br#"{}"#).unwrap_err();
    assert_eq!(
        err,
        DecodeError::Data {
            type_name: "file.uploaded",
            version: 1,
            path: ".".into(),
            message: "missing field `filename` at line 1 column 2".into(),
        }
    );
}

#[test]
fn malformed_json_is_a_data_error() {
    for bad in [
        &b""[..],
        b"{",
        b"{\"filename\":",
        b"nul",
        b"\xff\xfe",
        b"{\"filename\":\"a\"} trailing",
    ] {
        match FileUploadedV1::decode(1, bad) {
            Err(DecodeError::Data {
                type_name: "file.uploaded",
                version: 1,
                ..
            }) => {}
            other => panic!("{bad:?}: expected a data error, got {other:?}"),
        }
    }
}

#[test]
fn unit_event_is_the_empty_object() {
    assert_eq!(serde_json::to_string(&GateOpened).unwrap(), "{}");
    assert_eq!(GateOpened::decode(1, b"{}").unwrap(), GateOpened);
    assert_eq!(
        GateOpened::decode(1, br#"{"later":1}"#).unwrap(),
        GateOpened
    );
    assert!(matches!(
        GateOpened::decode(1, b"3"),
        Err(DecodeError::Data {
            type_name: "gate.opened",
            ..
        })
    ));
}

/// xorshift64*: deterministic bytes without a dependency.
struct Bytes(u64);

impl Bytes {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[test]
fn random_and_truncated_bytes_never_panic() {
    let valid = br#"{"dir":"in","name":"a.pdf","mime_type":"application/pdf","size":7,"tags":[{"key":"k","value":1}]}"#;
    let mut rng = Bytes(0x9E37_79B9_7F4A_7C15);
    for version in 0..=6 {
        for cut in 0..valid.len() {
            let _ = FileUploaded::decode(version, &valid[..cut]);
        }
        for _ in 0..500 {
            let len = (rng.next() % 64) as usize;
            let mut data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            // Splice in JSON structure so that some inputs get past the first byte.
            if rng.next().is_multiple_of(2) {
                let at = (rng.next() as usize) % (valid.len() + 1);
                data.splice(0..0, valid[..at].iter().copied());
            }
            let _ = FileUploaded::decode(version, &data);
            let _ = GateOpened::decode(version, &data);
        }
    }
    // Only the complete payload decodes.
    assert!(FileUploaded::decode(4, &valid[..valid.len() - 1]).is_err());
    assert!(FileUploaded::decode(4, valid).is_ok());
}
