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

/// Orders stream entry ids (`<ms>-<seq>`) as Redis does; a bare `<ms>` is
/// `<ms>-0`, and what does not parse sorts first.
pub(crate) fn order_entry_ids(a: &str, b: &str) -> std::cmp::Ordering {
    fn parts(id: &str) -> (u64, u64) {
        let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
        (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
    }
    parts(a).cmp(&parts(b))
}

/// Checks an entry id given at run time: `<ms>-<seq>`, both decimal. A bare
/// `<ms>` is refused too, as Redis reads it as every entry of that
/// millisecond in a range. `what` and `key` name it in the error; `example`
/// says where such ids are found.
pub(crate) fn check_entry_id(
    what: &'static str,
    id: &str,
    key: &str,
    example: &str,
) -> Result<(), crate::error::Error> {
    let number = |s: &str| {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && s.parse::<u64>().is_ok()
    };
    match id.split_once('-') {
        Some((ms, seq)) if number(ms) && number(seq) => Ok(()),
        _ => Err(crate::error::Error::InvalidEntryId {
            what,
            id: id.to_owned(),
            key: key.to_owned(),
            reason: format!(
                "not a stream entry id (`<milliseconds>-<sequence>`, such as `1732442400123-0`{example})"
            ),
        }),
    }
}
