//! The entries a worker holds (being handled or waiting for a retry), which
//! its heartbeat keeps from looking idle to other workers' `XAUTOCLAIM`.

use std::sync::Arc;

use super::GroupSpec;

/// An entry id in the held set: `<ms>-<seq>` as two numbers, which hash and
/// compare without an allocation and without hashing the id's text. Any
/// other id (never one of Redis's) is kept as its text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum HeldId {
    Parsed(u64, u64),
    Text(Box<str>),
}

impl HeldId {
    pub(super) fn of(id: &str) -> Self {
        Self::parse(id.as_bytes()).unwrap_or_else(|| HeldId::Text(id.into()))
    }

    /// `<ms>-<seq>` in the only form that prints back the same: digits, no
    /// sign, no leading zero, each part within `u64`. One pass, as it runs
    /// for every entry read.
    pub(super) fn parse(id: &[u8]) -> Option<Self> {
        let mut parts = [0u64; 2];
        let mut part = 0;
        let mut start = 0;
        for (i, &b) in id.iter().enumerate() {
            if b == b'-' && part == 0 {
                if i == start {
                    return None;
                }
                part = 1;
                start = i + 1;
                continue;
            }
            let digit = b.wrapping_sub(b'0');
            if digit > 9 || (i > start && id[start] == b'0') {
                return None;
            }
            parts[part] = parts[part].checked_mul(10)?.checked_add(u64::from(digit))?;
        }
        (part == 1 && start < id.len()).then_some(HeldId::Parsed(parts[0], parts[1]))
    }

    /// The id as Redis writes it.
    pub(super) fn text(&self) -> String {
        match self {
            HeldId::Parsed(ms, seq) => format!("{ms}-{seq}"),
            HeldId::Text(t) => t.to_string(),
        }
    }
}

/// Removes an entry from the held set when its task ends, however it ends.
pub(super) struct Held {
    pub(super) spec: Arc<GroupSpec>,
    pub(super) id: HeldId,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.spec.held().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::HeldId;

    #[test]
    fn held_ids_print_back_as_the_entry_id_they_were_read_from() {
        for id in [
            "0-0",
            "0-1",
            "1732442400000-7",
            "18446744073709551615-18446744073709551615",
            // Not in Redis's own form: kept as text, still the same id.
            "01-1",
            "1-01",
            "+1-1",
            "18446744073709551616-0",
            "1-",
            "-1",
            "1",
            "a-b",
            "",
        ] {
            assert_eq!(HeldId::of(id).text(), id);
        }
        assert_eq!(HeldId::of("5-3"), HeldId::Parsed(5, 3));
        assert_eq!(HeldId::of("05-3"), HeldId::Text("05-3".into()));
        assert_ne!(HeldId::of("5-3"), HeldId::of("5-30"));
    }
}
