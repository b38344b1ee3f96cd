//! The id of an event: a ULID that also describes itself in JSON Schema.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

/// A ULID: the id of every event, and a good id for payload fields.
///
/// A thin wrapper over [`ulid::Ulid`] that also describes itself in JSON
/// Schema (a 26-character Crockford base32 string), which `ulid::Ulid` alone
/// cannot, so that `pub file_id: Ulid` works in an `#[event]` struct.
///
/// ```
/// use tidings::Ulid;
///
/// let id = Ulid::new();
/// let text = id.to_string();
/// assert_eq!(text.len(), 26);
/// assert_eq!(text.parse::<Ulid>().unwrap(), id);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Ulid(pub ulid::Ulid);

impl Ulid {
    /// A new ULID for the current time.
    pub fn new() -> Self {
        Ulid(ulid::Ulid::new())
    }

    /// Parses a 26-character ULID string (either case).
    pub fn from_string(s: &str) -> Result<Self, ulid::DecodeError> {
        ulid::Ulid::from_string(s).map(Ulid)
    }

    /// Writes the 26 characters into `buf` and returns them, without allocating.
    pub fn array_to_str<'a>(&self, buf: &'a mut [u8; ulid::ULID_LEN]) -> &'a mut str {
        self.0.array_to_str(buf)
    }

    /// Milliseconds since the Unix epoch encoded in the ULID.
    pub fn timestamp_ms(&self) -> u64 {
        self.0.timestamp_ms()
    }
}

impl fmt::Debug for Ulid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ulid({})", self.0)
    }
}

impl fmt::Display for Ulid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for Ulid {
    type Err = ulid::DecodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ulid::Ulid::from_string(s).map(Ulid)
    }
}

impl From<ulid::Ulid> for Ulid {
    fn from(u: ulid::Ulid) -> Self {
        Ulid(u)
    }
}

impl From<Ulid> for ulid::Ulid {
    fn from(u: Ulid) -> Self {
        u.0
    }
}

impl serde::Serialize for Ulid {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; ulid::ULID_LEN];
        s.serialize_str(self.0.array_to_str(&mut buf))
    }
}

impl<'de> serde::Deserialize<'de> for Ulid {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Ulid;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a 26-character ULID string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Ulid, E> {
                ulid::Ulid::from_string(v)
                    .map(Ulid)
                    .map_err(|e| E::custom(format_args!("invalid ULID `{v}`: {e}")))
            }
        }
        d.deserialize_str(V)
    }
}

impl schemars::JsonSchema for Ulid {
    fn schema_name() -> Cow<'static, str> {
        Cow::Borrowed("Ulid")
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "ULID: 26 characters of Crockford base32.",
            "pattern": "^[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$"
        })
    }
}
