//! Every `#[event]` of a binary, discoverable at run time.
//!
//! Each `#[event]` submits one [`EventInfo`] through `inventory`; [`all`]
//! lists them and [`check`] reports conflicting declarations.

use std::collections::BTreeMap;
use std::fmt;

use crate::compat::Compat;
use crate::error::DecodeError;
use crate::event::Event;

/// What the registry knows about one `#[event]` struct (one version of a type).
///
/// Built by the `#[event]` macro; read it through [`all`], [`find`] and
/// [`EventInfo::history`].
#[derive(Clone, Copy)]
pub struct EventInfo {
    /// Rust path of the struct, such as `my_service::events::FileUploaded`.
    pub rust_name: &'static str,
    /// Type name on the wire.
    pub type_name: &'static str,
    /// Schema version of this struct.
    pub version: u32,
    /// Redis stream, if the event is durable.
    pub stream: Option<&'static str>,
    /// Pub/Sub channel, if the event fans out.
    pub channel: Option<&'static str>,
    /// Compatibility mode of the type.
    pub compat: Compat,
    /// The `dataschema` attribute of this version under the default schema
    /// base ([`Event::DATASCHEMA`]).
    pub dataschema: &'static str,
    /// Where its schema lives under a schema base ([`Event::SCHEMA_PATH`]).
    pub schema_path: &'static str,
    /// Version of the `upcast_from` struct, if any.
    pub upcast_from: Option<u32>,
    /// Type name of the reply, for a request (`reply = …`).
    pub reply: Option<&'static str>,
    /// The field whose value is the event's `partitionkey`
    /// (`#[event(…, key = field)]`), if it has one.
    pub partition_key: Option<&'static str>,
    /// JSON Schema (2020-12) of the payload of this version.
    pub schema: fn() -> serde_json::Value,
    /// Decodes a payload of any version this struct reads (as
    /// [`Event::decode`]), keeping only the outcome.
    ///
    /// Present in test builds (`cfg(test)`) of the crate that declares the
    /// event, absent from every other build: a decoder is a serde
    /// deserializer compiled for one event, and a crate that declares many
    /// events would compile all of them in every build, used or not.
    /// `tidings::schemas::check!` supplies those of a library's public
    /// events to its integration tests, and
    /// [`schemas::Check::decoder`](crate::schemas::Check::decoder) one from
    /// any test.
    pub decode: Option<DecodeFn>,
}

/// Decodes a payload of the given version, keeping only the outcome.
pub type DecodeFn = fn(u32, &[u8]) -> Result<(), DecodeError>;

/// The [`DecodeFn`] of `E`: [`Event::decode`], keeping only the outcome.
pub fn decode_erased<E: Event>(version: u32, data: &[u8]) -> Result<(), DecodeError> {
    E::decode(version, data).map(drop)
}

inventory::collect!(EventInfo);

impl fmt::Debug for EventInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventInfo")
            .field("rust_name", &self.rust_name)
            .field("type_name", &self.type_name)
            .field("version", &self.version)
            .field("stream", &self.stream)
            .field("channel", &self.channel)
            .field("compat", &self.compat)
            .field("dataschema", &self.dataschema)
            .field("schema_path", &self.schema_path)
            .field("upcast_from", &self.upcast_from)
            .field("reply", &self.reply)
            .field("partition_key", &self.partition_key)
            .finish_non_exhaustive()
    }
}

impl EventInfo {
    /// Where the schema is published: the stream, else the channel.
    pub fn topic(&self) -> &'static str {
        self.stream.or(self.channel).unwrap_or("")
    }

    /// Whether no other registered version of this type upcasts from this one.
    pub fn is_current(&self) -> bool {
        !all().any(|o| o.type_name == self.type_name && o.upcast_from == Some(self.version))
    }

    /// Every version this struct decodes, ascending: its own and those of its
    /// `upcast_from` chain (as [`Event::versions`]).
    pub fn versions(&self) -> Vec<u32> {
        let mut out = vec![self.version];
        let mut next = self.upcast_from;
        while let Some(version) = next {
            if out.contains(&version) {
                break;
            }
            out.push(version);
            next = find(self.type_name, version).and_then(|i| i.upcast_from);
        }
        out.reverse();
        out
    }

    /// This version and every older one reachable through `upcast_from`,
    /// newest first.
    pub fn history(&self) -> Vec<&'static EventInfo> {
        let mut out = Vec::new();
        let mut next = find(self.type_name, self.version);
        while let Some(info) = next {
            if out.iter().any(|o: &&EventInfo| o.version == info.version) {
                break;
            }
            out.push(info);
            next = info.upcast_from.and_then(|v| find(info.type_name, v));
        }
        out
    }
}

/// Every registered event version, in no particular order.
pub fn all() -> impl Iterator<Item = &'static EventInfo> {
    inventory::iter::<EventInfo>.into_iter()
}

/// Every registered event version, sorted by type name then version.
pub fn sorted() -> Vec<&'static EventInfo> {
    let mut v: Vec<_> = all().collect();
    v.sort_by(|a, b| {
        (a.type_name, a.version, a.rust_name).cmp(&(b.type_name, b.version, b.rust_name))
    });
    v
}

/// The registered struct for a type name and version.
pub fn find(type_name: &str, version: u32) -> Option<&'static EventInfo> {
    all().find(|i| i.type_name == type_name && i.version == version)
}

/// The current (newest) version of every type, sorted by type name.
pub fn current() -> Vec<&'static EventInfo> {
    sorted().into_iter().filter(|i| i.is_current()).collect()
}

/// A conflict between `#[event]` declarations of one binary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// Two structs claim the same type and version.
    #[error("`{type_name}` v{version} is declared twice: by `{first}` and by `{second}`")]
    DuplicateVersion {
        /// Type name.
        type_name: &'static str,
        /// The version both claim.
        version: u32,
        /// One struct.
        first: &'static str,
        /// The other struct.
        second: &'static str,
    },
    /// One type has two versions that nothing upcasts from.
    #[error("`{type_name}` has two current versions, `{first}` (v{first_version}) and `{second}` (v{second_version}); link the older one with `upcast_from` or give one of them another `name`")]
    TwoCurrentVersions {
        /// Type name.
        type_name: &'static str,
        /// One struct.
        first: &'static str,
        /// Its version.
        first_version: u32,
        /// The other struct.
        second: &'static str,
        /// Its version.
        second_version: u32,
    },
}

/// Checks the given declarations for conflicts, reporting every one found.
pub fn check_infos(infos: &[&'static EventInfo]) -> Result<(), Vec<RegistryError>> {
    let mut errors = Vec::new();
    let mut by_key: BTreeMap<(&str, u32), &EventInfo> = BTreeMap::new();
    for info in infos {
        if let Some(first) = by_key.get(&(info.type_name, info.version)) {
            errors.push(RegistryError::DuplicateVersion {
                type_name: info.type_name,
                version: info.version,
                first: first.rust_name,
                second: info.rust_name,
            });
        } else {
            by_key.insert((info.type_name, info.version), info);
        }
    }
    let mut current: BTreeMap<&str, &EventInfo> = BTreeMap::new();
    for info in by_key.values() {
        let superseded = infos
            .iter()
            .any(|o| o.type_name == info.type_name && o.upcast_from == Some(info.version));
        if superseded {
            continue;
        }
        if let Some(first) = current.get(info.type_name) {
            errors.push(RegistryError::TwoCurrentVersions {
                type_name: info.type_name,
                first: first.rust_name,
                first_version: first.version,
                second: info.rust_name,
                second_version: info.version,
            });
        } else {
            current.insert(info.type_name, info);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Checks every event of this binary for conflicts: two structs claiming the
/// same (type, version), or two current versions of one type.
///
/// Call it once at start-up or in a test:
///
/// ```
/// tidings::registry::check().expect("conflicting #[event] declarations");
/// ```
pub fn check() -> Result<(), Vec<RegistryError>> {
    check_infos(&sorted())
}
